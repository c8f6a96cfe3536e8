"""The tables of answers to malformed photos and damaged packs (issue 16's closing note).

    PYTHONPATH=$PWD .venv/bin/python tests/hostile_report.py [--packs]

Feeds every malformed image of tests/hostile.py to ``POST /api/scan`` (a test app
with fake models) and to ``python -m device scan --image`` (in process, fake
models), and with ``--packs`` every damaged pack (made from a real tiny pack:
needs TensorFlow, a few seconds) to ``python -m device flash`` and
``POST /api/packs``. Prints one line per case and the count of each answer.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile import damaged_packs, malformed_images  # noqa: E402
from web_support import fake_models, logged_in, make_app, tiny_pack_file  # noqa: E402

from device.__main__ import main as device_main  # noqa: E402
from device.web.users import Role  # noqa: E402


def run_cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = device_main(argv)
        except Exception as exc:  # an uncaught exception is what a traceback would be
            return 99, f"UNCAUGHT {type(exc).__name__}: {exc}"
    return code, err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""


def image_rows(tmp: Path) -> list[tuple[str, str, int, str, int, str]]:
    import device.cli.scan as scan_cli

    scan_cli.load_models = lambda config, pack: fake_models()
    app = make_app(tmp / "app")
    client, token = logged_in(app, Role.STAFF)
    rows = []
    for name, (data, suffix, kind) in malformed_images().items():
        path = tmp / f"{name}{suffix}"
        path.write_bytes(data)
        resp = client.post("/api/scan", content_type="multipart/form-data",
                           headers={"X-CSRFToken": token},
                           data={"image": (io.BytesIO(data), path.name)})
        body = resp.get_json(silent=True) or {}
        code, message = run_cli(["scan", "--image", str(path)])
        rows.append((name, kind, resp.status_code, str(body.get("error", ""))[:90], code,
                     message[:90]))
    return rows


def pack_rows(tmp: Path) -> list[tuple[str, int, str, int, str]]:
    good = tiny_pack_file("2025.1.0")
    app = make_app(tmp / "papp", models=None)
    client, token = logged_in(app, Role.TECHNICIAN)
    rows = []
    for name, path in damaged_packs(good, tmp / "damaged").items():
        code, message = run_cli(["flash", str(path), "--packs-dir", str(tmp / "packs")])
        resp = client.post("/api/packs", content_type="multipart/form-data",
                           headers={"X-CSRFToken": token},
                           data={"pack": (io.BytesIO(path.read_bytes()), path.name)})
        body = resp.get_json(silent=True) or {}
        detail = "; ".join(body.get("problems") or []) or str(body.get("error", ""))
        rows.append((name, code, message[:80], resp.status_code, detail[:80]))
    return rows


def _counts(values) -> str:
    return ", ".join(f"{k}: {n}" for k, n in sorted(collections.Counter(values).items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", action="store_true", help="also the damaged packs (needs TF)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = image_rows(Path(tmp))
        print(f"{'image':<26} {'kind':<6} {'API':>4}  {'CLI':>3}  API error / CLI message")
        for name, kind, status, error, code, message in rows:
            print(f"{name:<26} {kind:<6} {status:>4}  {code:>3}  {error or '-'} | {message or '-'}")
        print(f"\n{len(rows)} images. POST /api/scan: {_counts(r[2] for r in rows)}")
        print(f"device scan --image exit codes: {_counts(r[4] for r in rows)}")
        both = collections.Counter((r[2], r[4]) for r in rows)
        print("pairs (API status, CLI exit): " + ", ".join(
            f"({s}, {c}): {n}" for (s, c), n in sorted(both.items())))
        if args.packs:
            prow = pack_rows(Path(tmp))
            print(f"\n{'pack':<26} {'flash':>5}  {'API':>4}  flash message | API problems")
            for name, code, message, status, detail in prow:
                print(f"{name:<26} {code:>5}  {status:>4}  {message or '-'} | {detail or '-'}")
            print(f"\n{len(prow)} damaged packs. device flash exit codes: "
                  f"{_counts(r[1] for r in prow)}")
            print(f"POST /api/packs: {_counts(r[3] for r in prow)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
