"""Training beyond one device: the strategy plan, two workers of a cluster on
127.0.0.1, MirroredStrategy over two logical CPUs, Slurm array shards and the merged
sweep report. The real runs are subprocesses (a strategy or a logical-device split is
fixed for the life of a TensorFlow process)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sweep import fake_train
from trainer_fixtures import SUBPROCESS_MAIN, TINY_BACKBONE, TINY_SIZE

from device.core.vocab import MODEL_SIGNS, Sign
from trainer.strategy import StrategyError, StrategyKind, parse_tf_config, plan_strategy
from trainer.sweep import SweepConfig, SweepError, report_sweep, run_sweep, shard_from_env
from trainer.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
SBATCH = REPO / "trainer" / "cluster" / "paper_sweep.sbatch"
DIGEST = re.compile(r"weights sha256 ([0-9a-f]{64})")


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def test_plan_reads_the_cluster_and_the_devices():
    two = [19001, 19002]
    chief, other = (plan_strategy([], tf_config(two, i)) for i in (0, 1))
    assert chief.kind is StrategyKind.MULTI_WORKER and chief.is_chief and chief.worker.count == 2
    assert not other.is_chief and other.worker.index == 1
    assert plan_strategy([], None, cpu_devices=2).kind is StrategyKind.MIRRORED
    assert plan_strategy([], None, cpu_devices=2).cpu_devices == 2
    assert plan_strategy(["gpu0"], None, cpu_devices=2).cpu_devices == 0  # GPUs win
    assert plan_strategy([], None).kind is StrategyKind.DEFAULT
    assert plan_strategy(["gpu0"], None).jit_compile and not plan_strategy([], None).jit_compile
    assert plan_strategy([], None, jit_compile=True).jit_compile
    with_chief = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
                             "task": {"type": "worker", "index": 0}})
    assert not parse_tf_config(with_chief).is_chief and parse_tf_config(with_chief).count == 3
    with pytest.raises(StrategyError, match="task"):
        parse_tf_config(json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}))


def test_slurm_array_variables_give_the_shard():
    assert shard_from_env({}) is None
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "42"}) == (5, 42)
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "11", "SLURM_ARRAY_TASK_COUNT": "2",
                           "SLURM_ARRAY_TASK_MIN": "10"}) == (1, 2)
    for bad in ({"SLURM_ARRAY_TASK_ID": "42", "SLURM_ARRAY_TASK_COUNT": "42"},
                {"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}):
        with pytest.raises(SweepError):
            shard_from_env(bad)


def test_report_merges_shards_and_names_missing_pairs(tmp_path, capsys):
    from trainer.__main__ import main

    fake_train.calls = []
    base = TrainConfig(data=str(tmp_path), out="", image_size=224, steps=10)
    out = tmp_path / "sweep"
    cfg = SweepConfig(data=str(tmp_path), out=str(out), backbones=["resnet50_v1", "vgg16"],
                      signs=[Sign.ERYTHEMA, Sign.EXCORIATION], shard=(1, 2), base=base)
    run_sweep(cfg, train_fn=fake_train)  # shard 1 of 2 only
    best, missing = report_sweep(out)
    assert missing == ["erythema/resnet50_v1", "erythema/vgg16"]
    assert set(best["signs"]) == {"excoriation"}
    cfg.shard = (0, 2)
    run_sweep(cfg, train_fn=fake_train)
    assert main(["sweep", "--report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| resnet50_v1 |" in printed and "missing" not in printed
    assert json.loads((out / "best.json").read_text())["signs"]["erythema"]["backbone"] == "resnet50_v1"
    assert main(["sweep", "--report", str(tmp_path)]) == 2  # not a sweep directory


def test_slurm_script_covers_the_papers_table():
    text = SBATCH.read_text()
    first, last = map(int, re.search(r"^#SBATCH --array=(\d+)-(\d+)$", text, re.M).groups())
    assert last - first + 1 == 14 * len(MODEL_SIGNS)  # one task per (backbone, sign) pair
    assert re.search(r"^#SBATCH --gres=gpu:1$", text, re.M)
    assert "BACKBONES=${BACKBONES:-paper}" in text and "IMAGE_SIZE=${IMAGE_SIZE:-224}" in text


# --- real training in subprocesses (slow) ---------------------------------------------


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _train_args(data: Path, out: Path, steps: int = 6) -> list[str]:
    return ["train", "--data", str(data), "--sign", "erythema", "--backbone", TINY_BACKBONE,
            "--image-size", str(TINY_SIZE), "--steps", str(steps), "--eval-every", "2",
            "--batch", "16", "--out", str(out), "--quiet"]


def _start(args: list[str], log: Path, **env) -> subprocess.Popen:
    code = SUBPROCESS_MAIN.format(tests=str(REPO / "tests"))
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **env)
    with open(log, "wb") as f:
        return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=full_env,
                                stdout=f, stderr=subprocess.STDOUT)


def _workers(data: Path, outs: list[Path], logs: list[Path], steps: int = 6) -> list[subprocess.Popen]:
    ports = _free_ports(2)
    return [_start(_train_args(data, outs[i], steps), logs[i], TF_CONFIG=tf_config(ports, i))
            for i in range(2)]


def _finish(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 400) -> None:
    try:
        for p, log in zip(procs, logs, strict=True):
            assert p.wait(timeout=timeout) == 0, log.read_text()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def _state(out: Path) -> dict:
    return json.loads((out / "ckpt" / "state.json").read_text())


@pytest.mark.slow
def test_two_workers_train_one_model_and_only_the_chief_writes(synth_folders, tmp_path):
    outs, logs = [tmp_path / "R0", tmp_path / "R1"], [tmp_path / "w0.log", tmp_path / "w1.log"]
    _finish(_workers(synth_folders, outs, logs), logs)
    assert (outs[0] / "metrics.json").exists() and (outs[0] / "model.keras").exists()
    assert not outs[1].exists()  # the other worker wrote only to a temporary folder, then removed it
    chief = _state(outs[0])
    assert chief["done"] and chief["step"] == 6
    worker = DIGEST.findall(logs[1].read_text())
    assert worker and worker[-1] == chief["weights_sha256"]  # the same weights on both workers


@pytest.mark.slow
def test_a_killed_cluster_resumes_from_the_chiefs_checkpoint(synth_folders, tmp_path):
    shared = tmp_path / "run"  # one directory both workers see, as on a shared filesystem
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    procs = _workers(synth_folders, [shared, shared], logs, steps=8)
    try:
        deadline = time.monotonic() + 400
        while not (shared / "ckpt" / "state.json").exists():
            assert time.monotonic() < deadline and procs[0].poll() is None, logs[0].read_text()[-3000:]
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)  # a worker dies; its peer cannot go on alone
    finally:
        for p in procs:
            p.kill()
            p.wait()
    killed_at = _state(shared)["step"]
    assert 2 <= killed_at < 8
    logs = [tmp_path / "again0.log", tmp_path / "again1.log"]
    _finish(_workers(synth_folders, [shared, shared], logs, steps=8), logs)
    assert f"from step {killed_at}" in logs[0].read_text()
    chief = _state(shared)
    assert chief["done"] and chief["step"] == 8
    assert DIGEST.findall(logs[1].read_text())[-1] == chief["weights_sha256"]


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_checkpoints_and_resumes(synth_folders, tmp_path):
    out = tmp_path / "run"
    args = [*_train_args(synth_folders, out, steps=8), "--cpu-devices", "2"]
    first = _start(args, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 400
        while not (out / "ckpt" / "state.json").exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.2)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed_at = _state(out)["step"]
    _finish([_start(args, tmp_path / "again.log")], [tmp_path / "again.log"])
    assert f"from step {killed_at}" in (tmp_path / "again.log").read_text()
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"] == "mirrored" and config["replicas"] == 2  # the batch of 16 split in two
    assert _state(out)["step"] == 8 and (out / "metrics.json").exists()


@pytest.mark.slow
def test_slurm_script_runs_locally_as_two_array_tasks(synth_folders, tmp_path):
    sweep = tmp_path / "sweep"
    # The script's own command line, run by a PYTHON that also registers the tiny test
    # backbone (a real one would take minutes to build on this machine).
    boot = tmp_path / "boot.py"
    boot.write_text("import sys\nassert sys.argv[1:3] == ['-m', 'trainer'], sys.argv\n"
                    + SUBPROCESS_MAIN.format(tests=str(REPO / "tests")).replace("sys.argv[1:]", "sys.argv[3:]"))
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(boot))} "$@"\n')
    python.chmod(0o755)
    env = dict(os.environ, PYTHONPATH=str(REPO), DATA=str(synth_folders), SWEEP=str(sweep),
               PYTHON=str(python), BACKBONES=TINY_BACKBONE, IMAGE_SIZE=str(TINY_SIZE), STEPS="2",
               EVAL_EVERY="2", BATCH="16", SLURM_ARRAY_TASK_COUNT="2")
    for task in ("0", "1"):
        done = subprocess.run(["bash", str(SBATCH)], cwd=REPO, env=dict(env, SLURM_ARRAY_TASK_ID=task),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    merged = subprocess.run([sys.executable, "-m", "trainer", "sweep", "--report", str(sweep)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert f"| {TINY_BACKBONE} |" in merged.stdout and "missing" not in merged.stdout
    best = json.loads((sweep / "best.json").read_text())
    assert set(best["signs"]) == {s.value for s in MODEL_SIGNS}
