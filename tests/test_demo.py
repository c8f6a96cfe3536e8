"""The make-demo orchestrator: which commands it runs, and that a second run
skips every finished step. The real commands are replaced by a fake that
writes what each would have written."""

from __future__ import annotations

from pathlib import Path

import pytest

from convert import demo as demo_mod
from device.core.vocab import MODEL_SIGNS


class FakeCLI:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str, stdin: str | None = None) -> None:
        self.calls.append(args)
        def opt(name: str) -> str:
            return args[args.index(name) + 1]

        if args[:2] in (("trainer", "synth"), ("convert", "device-crops")):
            Path(opt("--out")).mkdir(parents=True)
        elif args[:2] == ("trainer", "train"):
            out = Path(opt("--out"))
            out.mkdir(parents=True)
            (out / "metrics.json").write_text("{}")
        elif args[:2] == ("convert", "pack"):
            Path(opt("--out")).write_bytes(b"pack")
        elif args[:2] == ("device", "adduser"):
            assert stdin and stdin.strip(), "the demo password goes through stdin"


def _demo(tmp_path: Path) -> tuple[demo_mod.Demo, FakeCLI]:
    data = tmp_path / "demo_data"
    demo = demo_mod.Demo(data, n_train=40, image_size=32, steps=6, backbone="mobilenet_v3_small",
                         host=None, port=None)
    fake = FakeCLI(data)
    demo.cli = fake
    return demo, fake


def test_first_run_does_every_step_in_order(tmp_path, capsys):
    demo, fake = _demo(tmp_path)
    assert demo.run(serve=False) == 0
    steps = [c[:2] for c in fake.calls]
    assert steps == [("convert", "device-crops"), ("trainer", "synth"), ("trainer", "train"),
                     ("convert", "pack"), ("device", "flash"), ("device", "adduser")]
    pack_call = fake.calls[3]
    for sign in MODEL_SIGNS:
        run_dir = pack_call[pack_call.index(f"--{sign.value}") + 1]
        assert run_dir.endswith(f"multi/{sign.value}")
    assert "--fallback" in pack_call and "int8" in pack_call
    assert pack_call[pack_call.index("--skip-mode") + 1] == "int8_selective"
    login = (demo.data / "demo-login.txt")
    assert login.stat().st_mode & 0o077 == 0, "the demo password file is private"


def test_second_run_skips_finished_steps_and_keeps_the_login(tmp_path):
    demo, fake = _demo(tmp_path)
    demo.run(serve=False)
    password = (demo.data / "demo-login.txt").read_text()
    demo2, fake2 = _demo(tmp_path)
    assert demo2.run(serve=False) == 0
    assert fake2.calls == []
    assert (demo.data / "demo-login.txt").read_text() == password


def test_a_new_pack_is_flashed_again(tmp_path):
    demo, fake = _demo(tmp_path)
    demo.run(serve=False)
    (demo.data / "demo.pack").write_bytes(b"another pack")
    demo2, fake2 = _demo(tmp_path)
    demo2.run(serve=False)
    assert [c[:2] for c in fake2.calls] == [("device", "flash")]


def test_interrupted_synthesis_leaves_no_half_data_set(tmp_path):
    demo, fake = _demo(tmp_path)

    def interrupted(*args, stdin=None):
        if args[:2] in (("trainer", "synth"), ("convert", "device-crops")):
            out = Path(args[args.index("--out") + 1])
            out.mkdir(parents=True)
            raise KeyboardInterrupt

    demo.cli = interrupted
    with pytest.raises(KeyboardInterrupt):
        demo.run(serve=False)
    assert not (demo.data / "train").exists()
    demo2, fake2 = _demo(tmp_path)
    demo2.run(serve=False)
    assert (demo.data / "train" / ".complete").exists()


def test_a_failing_step_stops_the_demo_with_its_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo_mod, "ROOT", tmp_path)
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 3))
    rc = demo_mod.main(["--data", str(tmp_path / "d"), "--no-serve"])
    assert rc == 1
    assert "step failed (exit 3)" in capsys.readouterr().err


def test_every_command_the_demo_runs_parses_with_the_real_cli(tmp_path):
    """The fake above accepts anything; the real parsers refuse an unknown option (exit 2)."""
    import importlib

    from device.core.cliutil import build_parser

    demo, fake = _demo(tmp_path)
    demo.run(serve=False)
    for call in fake.calls:
        commands = importlib.import_module(f"{call[0]}.__main__").COMMANDS
        args = build_parser(call[0], "", commands).parse_args(list(call[1:]))
        assert args.command == call[1] and args._module is not None


def test_a_data_folder_of_its_own_holds_the_device_too(tmp_path):
    """--data DIR: the device's photos, packs and store live in DIR, not in demo_data/."""
    from device.config import load_config

    demo, fake = _demo(tmp_path)
    demo.run(serve=False)
    flash = next(c for c in fake.calls if c[:2] == ("device", "flash"))
    config_path = Path(flash[flash.index("--config") + 1])
    assert config_path == demo.data / "device.yaml"
    config = load_config(config_path)  # the device's own schema accepts it
    assert Path(config.camera.folder).resolve() == (demo.data / "photos").resolve()
    assert Path(config.storage.data_dir).resolve() == (demo.data / "device").resolve()
    assert Path(config.packs.dir).resolve() == (demo.data / "device" / "packs").resolve()
    adduser = next(c for c in fake.calls if c[:2] == ("device", "adduser"))
    assert adduser[adduser.index("--config") + 1] == str(config_path)


def test_held_out_photos_come_from_a_seed_of_their_own(tmp_path):
    """--held-out renders full photos from a seed neither the training set nor the demo
    camera's photos use, and runs no other step."""
    demo, fake = _demo(tmp_path)
    out = demo.held_out(5)
    assert out == demo.data / "held-out" and (out / ".complete").exists()
    (call,) = fake.calls
    seed = int(call[call.index("--seed") + 1])
    assert call[:2] == ("trainer", "synth") and "--full-photo" in call
    assert seed == demo_mod.HELD_OUT_SEED
    assert seed not in (demo_mod.TRAIN_SEED, demo_mod.PHOTOS_SEED)
    demo.run(serve=False)
    used = {int(c[c.index("--seed") + 1]) for c in fake.calls[1:] if "--seed" in c}
    assert used == {demo_mod.TRAIN_SEED, demo_mod.PHOTOS_SEED}
