"""The layers, checked on the source: device imports neither trainer nor convert;
trainer imports only device's shared contracts; convert may import both.

Every import counts, including those inside functions (where heavy libraries live)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What trainer may use of device: vocabulary, card schema (and its human ceiling), image
#: reader, file writer, error types, CLI helpers (and ``device.__version__``), the colour
#: card, its maths and its scenes (the generator renders them), the request guards, and
#: the web sign-in mechanisms the labelling studio shares with the dashboard: server-side
#: sessions, the login limit, the CSRF setup (issue 27: one home per mechanism, not a
#: weaker copy).
TRAINER_MAY_IMPORT = {"device", "device.vocab", "device.card", "device.ceiling", "device.imageio",
                      "device.colour", "device.colourcard", "device.colourscene",
                      "device.atomic", "device.errors", "device.cliutil",
                      "device.web.sessions", "device.web.limiter", "device.web.csrf",
                      "device.request_guards"}


def imported_modules(source: str, package_dir: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in ``source``; ``from device import x`` counts as
    ``device.x`` when x is a module of the package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            base = package_dir.parent.joinpath(*node.module.split("."))
            for alias in node.names:
                sub = base / alias.name
                if top in ("device", "trainer", "convert") and (
                        sub.with_suffix(".py").is_file() or sub.is_dir()):
                    found.append((node.lineno, f"{node.module}.{alias.name}"))
                else:
                    found.append((node.lineno, node.module))
    return found


def violations(layer: str, source: str, where: str) -> list[str]:
    bad = []
    for line, module in imported_modules(source, ROOT / layer):
        top = module.split(".")[0]
        if layer == "device" and top in ("trainer", "convert"):
            bad.append(f"{where}:{line}: device imports {module}")
        if layer == "trainer" and top == "convert":
            bad.append(f"{where}:{line}: trainer imports {module}")
        if layer == "trainer" and top == "device" and module not in TRAINER_MAY_IMPORT:
            bad.append(f"{where}:{line}: trainer imports {module} (allowed: "
                       f"{', '.join(sorted(TRAINER_MAY_IMPORT))})")
    return bad


@pytest.mark.parametrize("layer", ["device", "trainer"])
def test_imports_run_one_way(layer):
    bad = []
    files = sorted((ROOT / layer).rglob("*.py"))
    assert len(files) > 10
    for path in files:
        bad += violations(layer, path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert bad == []


@pytest.mark.parametrize("layer,source,caught", [
    ("device", "def f():\n    from trainer.run import load_image\n", "device imports trainer.run"),
    ("device", "import convert.gate\n", "device imports convert.gate"),
    ("trainer", "from device import store\n", "trainer imports device.store"),
    ("trainer", "from device.web.scan import live\n", "trainer imports device.web.scan"),
    ("trainer", "from convert import packer\n", "trainer imports convert.packer"),
    ("trainer", "from device.vocab import Sign\nfrom device import imageio\nimport device\n", None),
])
def test_the_checker_catches_a_wrong_import(layer, source, caught):
    found = violations(layer, source, "x.py")
    assert (found == []) if caught is None else any(caught in v for v in found)
