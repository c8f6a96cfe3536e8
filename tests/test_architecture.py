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
TRAINER_MAY_IMPORT = {"device", "device.core.vocab", "device.core.card", "device.core.ceiling", "device.core.imageio",
                      "device.colour.maths", "device.colour.card", "device.colour.scene",
                      "device.core.atomic", "device.core.errors", "device.core.cliutil",
                      "device.web.sessions", "device.web.limiter", "device.web.csrf",
                      "device.web.request_guards"}

#: Where Flask may be imported: the dashboard, the device CLI (which serves it) and the
#: labelling studio's app. Everything else in device/ (pipeline, store, packs...) runs
#: without a web server, so the CLI, tests and the trainer can use it alone.
FLASK_HOMES = ("device/web/", "device/cli/", "trainer/label/web/")


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
    ("trainer", "from device.core.vocab import Sign\nfrom device import imageio\nimport device\n", None),
])
def test_the_checker_catches_a_wrong_import(layer, source, caught):
    found = violations(layer, source, "x.py")
    assert (found == []) if caught is None else any(caught in v for v in found)


def flask_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of each Flask import: flask, its extensions (flask_*), and werkzeug
    but for werkzeug.security (password hashing, used without a web app)."""
    return [(line, m) for line, m in imported_modules(source, ROOT / "device")
            if m.split(".")[0] == "flask" or m.startswith("flask_")
            or (m.split(".")[0] == "werkzeug" and not m.startswith("werkzeug.security"))]


def test_only_the_web_layers_import_flask():
    bad = []
    for layer in ("device", "trainer", "convert"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            if where.startswith(FLASK_HOMES):
                continue
            bad += [f"{where}:{line}: imports {m}"
                    for line, m in flask_imports(path.read_text(encoding="utf-8"))]
    assert bad == [], "Flask outside device/web, device/cli and the studio:\n" + "\n".join(bad)


def test_the_flask_finder_sees_a_function_import_and_spares_password_hashing():
    source = ("def f():\n    from flask import g\nimport flask_wtf.csrf\n"
              "from werkzeug.exceptions import NotFound\n"
              "from werkzeug.security import check_password_hash\n")
    assert sorted(m for _, m in flask_imports(source)) == ["flask", "flask_wtf.csrf",
                                                           "werkzeug.exceptions"]


# -- import cycles ------------------------------------------------------------------
PROJECT = ("device", "trainer", "convert")


def module_name(path: Path) -> str:
    """``device/web/scan.py`` -> ``device.web.scan``; a package's __init__ is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules ``source`` (module ``name``) imports, anywhere in the file:
    ``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``; relative
    imports resolved."""
    found = set()
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = here[:len(here) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def module_graph(roots: tuple[str, ...] = PROJECT) -> dict[str, set[str]]:
    files = {module_name(p): p for r in roots for p in sorted((ROOT / r).rglob("*.py"))}
    known = set(files)
    return {name: project_imports(path.read_text(encoding="utf-8"), name,
                                  path.name == "__init__.py", known)
            for name, path in files.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import each other in a ring (a strongly connected
    component of more than one module, Tarjan's algorithm), with one ring through it
    spelled out, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(_ring(graph, g) for g in groups)


def _ring(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest ring from the group's first module back to itself (breadth first)."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                ring = paths[v] + [start]
                rest = sorted(members - set(ring))
                return ring + ([f"(+ {', '.join(rest)})"] if rest else [])
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return group


def test_no_import_cycles():
    graph = module_graph()
    assert len(graph) > 100
    cycles = import_cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_ring_through_a_function_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c", "a"]]
    known = {"device.x", "device.y"}
    assert project_imports("def f():\n    from device import y\n", "device.x", False,
                           known) == {"device.y"}
    assert project_imports("from . import y\n", "device.x", False, known) == {"device.y"}


# -- the layers inside device/ ----------------------------------------------------------
#: device/'s packages (and its top-level modules) from the bottom up, with what each may
#: import besides itself. A layer uses those below it, never those above
#: (docs/ARCHITECTURE.md draws the same table).
DEVICE_LAYERS: dict[str, set[str]] = {
    "core": set(),                                           # the shared contracts
    "colour": {"core", "config"},                            # the card, its maths and record
    "config": {"core", "colour"},                            # device.config, the schema
    "grading": {"core", "packs"},                            # interpreter, models, abstention
    "packs": {"core", "grading"},                            # the pack format, verify, install
    "vision": {"core", "colour", "config", "grading"},       # grading: the face models' interpreter
    "cameras": {"core", "config"},
    "scan": {"core", "colour", "config", "vision", "grading", "cameras", "packs"},
    "store": {"core", "colour"},
    "export": {"core", "store", "vision"},
    "actions": {"core", "config", "scan", "store"},          # device.actions, device.followup
    "followup": {"core", "config", "scan", "store", "vision"},
    "tools": {"core", "colour", "config", "vision", "grading", "cameras", "scan", "store"},
    "web": None,                                             # None: anything in device/
    "cli": None,
}
#: What the store may take from colour: the record it keeps and the card kind it names, not
#: the code that finds a card in an image.
STORE_MAY_IMPORT_OF_COLOUR = {"device.colour.record", "device.colour.card", "device.colour.maths"}
TOP_LEVEL_MODULES_AT_MOST = 8


def device_layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "device"


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, imports in sorted(graph.items()):
        layer = device_layer(module)
        allowed = DEVICE_LAYERS.get(layer, set()) if layer not in ("device", "__main__") else None
        if layer not in DEVICE_LAYERS and layer not in ("device", "__main__"):
            bad.append(f"{module}: {layer} is in no layer of DEVICE_LAYERS")
            continue
        for target in sorted(imports):
            other = device_layer(target)
            if other in (layer, "device") or allowed is None:
                continue
            if other not in allowed:
                bad.append(f"{module} imports {target} ({layer} may not import {other})")
            elif layer == "store" and other == "colour" and target not in STORE_MAY_IMPORT_OF_COLOUR:
                bad.append(f"{module} imports {target} (the store keeps colour records; it "
                           "does not look at images)")
    return bad


def test_device_layers_import_only_downwards():
    graph = module_graph(("device",))
    assert len(graph) > 100
    bad = layer_violations(graph)
    assert bad == [], "device/ layer violations:\n" + "\n".join(bad)


def test_the_issue_22_rules_hold_in_the_table():
    """Vision and grading import neither the store nor the web; the store imports no vision."""
    for low in ("vision", "grading", "colour", "core"):
        assert not DEVICE_LAYERS[low] & {"store", "web", "cli", "scan", "export", "tools"}
    assert "vision" not in DEVICE_LAYERS["store"] and "scan" not in DEVICE_LAYERS["store"]


@pytest.mark.parametrize("graph,caught", [
    ({"device.vision.crop": {"device.store.db"}}, "vision may not import store"),
    ({"device.grading.models": {"device.web.common"}}, "grading may not import web"),
    ({"device.store.scans": {"device.vision.faces"}}, "store may not import vision"),
    ({"device.store.schema": {"device.colour.detect"}}, "does not look at images"),
    ({"device.core.card": {"device.config"}}, "core may not import config"),
    ({"device.newthing.x": set()}, "in no layer"),
    ({"device.web.api": {"device.store.db", "device.vision.crop"}}, None),
    ({"device.store.schema": {"device.colour.record"}}, None),
])
def test_the_layer_checker_catches_a_wrong_import(graph, caught):
    found = layer_violations(graph)
    assert (found == []) if caught is None else any(caught in v for v in found), found


def test_device_keeps_a_handful_of_top_level_modules():
    top = sorted(p.name for p in (ROOT / "device").glob("*.py")
                 if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= TOP_LEVEL_MODULES_AT_MOST, top


def unresolved_device_imports(source: str) -> list[tuple[int, str]]:
    """(line, 'module.name') for each ``from device... import name``, anywhere in the file
    (inside functions too, where nothing runs it until that path is taken), whose module
    does not define ``name`` and has no submodule of that name."""
    import importlib
    import importlib.util

    bad = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                and node.module.split(".")[0] == "device"):
            continue
        try:
            module = importlib.import_module(node.module)
        except ImportError:
            bad.append((node.lineno, node.module))
            continue
        for alias in node.names:
            if alias.name == "*" or hasattr(module, alias.name):
                continue
            is_package = hasattr(module, "__path__")
            if not is_package or importlib.util.find_spec(f"{node.module}.{alias.name}") is None:
                bad.append((node.lineno, f"{node.module}.{alias.name}"))
    return bad


def test_every_import_from_device_names_something_that_exists():
    """A name moved to another module (the re-layout moved many) fails here, not on the
    day someone takes the code path whose function imports it (the tests' own imports
    inside test functions included)."""
    bad = []
    for layer in (*PROJECT, "tests"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            bad += [f"{where}:{line}: {name}"
                    for line, name in unresolved_device_imports(path.read_text(encoding="utf-8"))]
    assert bad == [], "imports of names device does not have:\n" + "\n".join(bad)


def test_the_import_resolver_catches_a_moved_name():
    source = ("def f():\n    from device.core.cliutil import load_config_arg\n"
              "from device.config import load_config_arg\nfrom device.core import vocab\n")
    assert unresolved_device_imports(source) == [(2, "device.core.cliutil.load_config_arg")]
