"""``make demo``: from nothing to a running device in one command.

Generates a synthetic data set (lesion crops cut from full synthetic photos by the
device's own scan steps, convert.devicecrops, so the graders, their int8 calibration
and the abstention statistics see what the device will feed them), trains a small
mobile backbone with a head per sign (the trainer's default ``mobile`` recipe, see trainer/recipe.py),
converts each sign's model to int8 through the accuracy gate, packs, flashes,
and starts the device with the folder camera and the dashboard. It lives in ``convert``
because that is the one package allowed to use both the trainer and the device.

Each step runs the project's own CLI in a subprocess, so what the demo does is
exactly what an engineer would type, with the same progress output. A step
whose output is complete is skipped, so a second run goes straight to the
dashboard. Everything lands in ``demo_data/`` (git-ignored).

The demo's models are trained on synthetic images and are not for clinical use.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from device.core.vocab import MODEL_SIGNS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "firmware_config" / "desktop-demo.yaml"
DEMO_USER = "demo"
# Synthetic images, 80 % for training and 20 % held out. Each is a full photo rendered and
# then cut by the device's own scan steps: on 2 cores about 27 ms a photo, several times a
# bare lesion patch, so 1,750 of them where 6,000 bare patches were trained on before (see
# the notes of issue 23). They keep about 1,680 crops (the auto crop falls back on about
# 4 %), nearly what 2,000 kept when the generator's smaller body parts made false faces,
# and leave the build a margin under its 180 s (training alone varies by 10 s between
# identical runs on 2 cores, and a sign whose int8 copy fails the gate adds its fallbacks).
N_TRAIN = 1750
#: The demo camera's photos, the training photos and the held-out photos share one size:
#: the graders learn at the scale the demo device grades. 640x480 renders in a third of
#: the time, but measured worse: more held-out photos abstained and more real ones graded.
DEMO_PHOTO_SIZE = "1024x768"
VAL_FRACTION = 0.2
#: Simulated raters of the demo's training set (trainer.synth_raters): never clinical.
#: Seven, not three: the consensus of seven matches the generator's true grade on 98.5 %
#: of grades (three: 94 %), so the graders learn and are measured on cleaner labels.
DEMO_RATERS = 7
#: Seeds of the generator's plans: the training photos, the demo camera's photos, and
#: the held-out photos for measuring the pack (``--held-out``; never trained or
#: calibrated on). Image i of seed s is drawn from default_rng([s, i]): distinct seeds
#: give unrelated photos.
TRAIN_SEED, PHOTOS_SEED, HELD_OUT_SEED = 7, 8, 9
#: Share of the held-out split the pack's abstention accepts (both spaces together). The
#: goal is that at least 95 % of the generator's held-out full photos are graded: 98 %
#: leaves room for the quality check (which takes 2 % of the fuller synthetic frames for
#: blurred) and for sampling, and draws the thresholds in from the training crops' far
#: tail. Set from that goal on held-out synthetic photos (at 97 % 94 of 100 were graded),
#: not from any real photo.
DEMO_ABSTAIN_ACCEPT = 0.98
HELD_OUT_N = 100


class DemoError(RuntimeError):
    pass


class Demo:
    def __init__(self, data: Path, *, n_train: int, image_size: int | None = None,
                 steps: int | None = None, backbone: str | None = None, host: str | None,
                 port: int | None, verbose: int = 0) -> None:
        from trainer.recipe import RECIPES, RecipeName

        recipe = RECIPES[RecipeName.MOBILE]
        self.data = data
        self.n_train = n_train
        self.image_size = image_size or recipe.image_size
        self.steps = steps or recipe.steps
        self.backbone = backbone or recipe.backbone
        self.host = host
        self.port = port
        self.verbose = verbose
        self.started = time.monotonic()

    # -- helpers ---------------------------------------------------------
    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[demo {elapsed:6.1f}s] {text}", flush=True)

    def cli(self, *args: str, stdin: str | None = None) -> None:
        cmd = [sys.executable, "-m", args[0], *(["-" + "v" * self.verbose] if self.verbose else []),
               *args[1:]]
        self.say("$ " + " ".join(_short(a) for a in cmd[1:]))
        proc = subprocess.run(cmd, cwd=ROOT, input=stdin, text=True)
        if proc.returncode != 0:
            raise DemoError(f"step failed (exit {proc.returncode}): {' '.join(cmd[1:])}")

    def done(self, marker: Path, what: str) -> bool:
        if marker.exists():
            self.say(f"{what}: already done ({_short(str(marker))})")
            return True
        return False

    def config(self) -> Path:
        """The device configuration: the desktop-demo profile, its photo folder, packs and
        store moved into ``--data`` when that is not the default ``demo_data/``."""
        if self.data == (ROOT / "demo_data").resolve():
            return CONFIG
        import yaml

        path = self.data / "device.yaml"
        if not path.exists():
            config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
            # Relative to the written file, like the profile's own paths.
            config["camera"]["folder"] = "photos"
            config["packs"]["dir"] = "device/packs"
            config["storage"]["data_dir"] = "device"
            path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    # -- steps -------------------------------------------------------------
    def synth(self, name: str, *extra: str, command: tuple[str, str] = ("trainer", "synth")) -> Path:
        out = self.data / name
        if self.done(out / ".complete", f"synthetic set {name}"):
            return out
        tmp = self.data / f".{name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        self.cli(*command, "--out", str(tmp), *extra)
        (tmp / ".complete").write_text("ok\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        return out

    def train(self, train_dir: Path) -> dict[str, Path]:
        # One shared backbone with a head per sign (--multi-sign) trains the
        # three graders in about the time of one; the trainer also writes an
        # ordinary single-sign run per sign under the run, which convert takes.
        run = self.data / "runs" / "multi"
        runs = {sign.value: run / sign.value for sign in MODEL_SIGNS}
        if self.done(run / "metrics.json", "models"):
            return runs
        # Same command after a Ctrl-C: the trainer resumes from its checkpoint.
        # Two held-out evaluations: each grades 900 images four times (mirror views).
        self.cli("trainer", "train", "--multi-sign", "--recipe", "mobile", "--data", str(train_dir),
                 "--backbone", self.backbone, "--image-size", str(self.image_size),
                 "--steps", str(self.steps), "--eval-every", str(max(self.steps // 2, 1)),
                 "--val-fraction", str(VAL_FRACTION), "--out", str(run))
        return runs

    def pack(self, runs: dict[str, Path]) -> Path:
        pack = self.data / "demo.pack"
        if self.done(pack, "model pack"):
            return pack
        # Selective int8 keeps the layers with the largest rounding error in float; in
        # this six-layer network they all round alike, and where full int8 failed the
        # gate it failed by as much (77.22 % both, the issue 23 notes): ~4 s for nothing.
        args = ["convert", "pack", "--out", str(pack), "--mode", "int8", "--fallback",
                "--skip-mode", "int8_selective", "--brief",
                "--abstain-accept", str(DEMO_ABSTAIN_ACCEPT)]
        for sign, run in runs.items():
            args += [f"--{sign}", str(run)]
        self.cli(*args)
        return pack

    def flash(self, pack: Path) -> None:
        digest = hashlib.sha256(pack.read_bytes()).hexdigest()
        stamp = self.data / "device" / ".flashed"
        if stamp.exists() and stamp.read_text().strip() == digest:
            self.say("model pack: already installed")
            return
        self.cli("device", "flash", str(pack), "--config", str(self.config()))
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest + "\n")

    def login(self) -> str:
        secret = self.data / "demo-login.txt"
        if secret.exists():
            return secret.read_text().strip()
        # A random password made on this machine, never a default one.
        password = secrets.token_urlsafe(9)
        self.cli("device", "adduser", DEMO_USER, "--role", "admin", "--password-stdin",
                 "--config", str(self.config()), stdin=password + "\n")
        secret.write_text(password + "\n")
        os.chmod(secret, 0o600)
        return password

    def serve(self, password: str) -> int:
        args = [sys.executable, "-m", "device", "run", "--config", str(self.config())]
        if self.host:
            args += ["--host", self.host]
        if self.port:
            args += ["--port", str(self.port)]
        url = f"http://{self.host or '127.0.0.1'}:{self.port or 8080}"
        self.say(f"ready in {time.monotonic() - self.started:.1f}s")
        print(
            f"\n  Dashboard: {url}\n  Login:     {DEMO_USER} / {password}\n"
            "  (models trained on synthetic images: a demonstration, not for clinical use)\n"
            "  Ctrl-C stops the device.\n",
            flush=True,
        )
        return subprocess.run(args, cwd=ROOT).returncode

    def held_out(self, n: int = HELD_OUT_N) -> Path:
        """Full photos from a seed neither training nor the demo camera uses, for
        ``device evaluate-photos`` on what the pack never saw (DATA/held-out/images)."""
        self.data.mkdir(parents=True, exist_ok=True)
        return self.synth("held-out", "--n", str(n), "--seed", str(HELD_OUT_SEED),
                          "--full-photo", "--photo-size", DEMO_PHOTO_SIZE, "--layout", "manifest")

    def run(self, *, serve: bool) -> int:
        self.data.mkdir(parents=True, exist_ok=True)
        self.say(f"step 1/6: synthetic data in {_short(str(self.data))}")
        # Three simulated raters grade every image (the studio's export layout: consensus
        # beside each rater's grades), so the status page shows the model against them.
        # Each training crop is cut from a full photo as a scan cuts it, at the model's
        # input size, with the demo's own device profile (convert.devicecrops).
        train_dir = self.synth("train", "--n", str(self.n_train), "--seed", str(TRAIN_SEED),
                               "--size", str(self.image_size), "--config", str(CONFIG),
                               "--photo-size", DEMO_PHOTO_SIZE, "--drop-fallbacks",
                               "--raters", str(DEMO_RATERS),
                               command=("convert", "device-crops"))
        self.synth("photos", "--n", "24", "--seed", str(PHOTOS_SEED), "--full-photo",
                   "--photo-size", DEMO_PHOTO_SIZE, "--layout", "manifest")
        self.say(f"step 2/6: train {self.backbone}, one head per sign ({self.steps} steps)")
        runs = self.train(train_dir)
        self.say("step 3/6: convert to int8 through the accuracy gate, and pack")
        pack = self.pack(runs)
        self.say("step 4/6: flash the pack onto the demo device")
        self.flash(pack)
        self.say("step 5/6: dashboard login")
        password = self.login()
        if not serve:
            self.say("set-up complete (--no-serve)")
            return 0
        self.say("step 6/6: start the device and its dashboard")
        return self.serve(password)


def _short(text: str) -> str:
    try:
        return str(Path(text).relative_to(ROOT))
    except ValueError:
        return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "demo_data", help="where the demo keeps its files")
    parser.add_argument("--n-train", type=int, default=N_TRAIN, help="synthetic training images")
    parser.add_argument("--image-size", type=int, default=None,
                        help="model input size in pixels (default: the mobile recipe's)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    parser.add_argument("--backbone", default=None, help="trainer backbone name (default: the recipe's)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="pass -v to every step (shows TensorFlow's own log lines)")
    parser.add_argument("--host", default=None, help="dashboard address (default: the config's)")
    parser.add_argument("--port", type=int, default=None, help="dashboard port (default: the config's)")
    parser.add_argument("--no-serve", action="store_true", help="set everything up, then stop")
    parser.add_argument("--held-out", type=int, default=None, metavar="N", nargs="?",
                        const=HELD_OUT_N,
                        help=f"only render N (default {HELD_OUT_N}) held-out full photos into "
                             f"DATA/held-out/ (seed {HELD_OUT_SEED}: never trained on), for "
                             "python -m device evaluate-photos DATA/held-out/images")
    args = parser.parse_args(argv)
    demo = Demo(args.data.resolve(), n_train=args.n_train, image_size=args.image_size,
                steps=args.steps, backbone=args.backbone, host=args.host, port=args.port,
                verbose=args.verbose)
    try:
        if args.held_out is not None:
            out = demo.held_out(args.held_out)
            print(f"held-out photos: {out / 'images'}")
            return 0
        return demo.run(serve=not args.no_serve)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: stopped. Run `make demo` again to carry on where it left off.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
