"""Per-stage scan timings: median and p90 of each stage over N scans, and the share
of the scan spent in model invoke (the rest is capture, checks, crop and resize)."""

from __future__ import annotations

import logging

import numpy as np

from device.scan.pipeline import STAGES, ScanError, Scanner

log = logging.getLogger(__name__)


def run_bench(scanner: Scanner, n: int = 50, *, image: np.ndarray | None = None,
              warmup: int = 3) -> dict:
    """Scan ``n`` times (camera frames, or ``image`` each time) and summarise the timings."""
    for _ in range(warmup):  # first invokes allocate and page in the weights
        scanner.scan(image)
    rows: list[dict[str, float]] = []
    rejected = 0
    for _ in range(n):
        result = scanner.scan(image)
        if not result.quality.ok:  # an abstained scan ran every stage: it counts
            rejected += 1
            continue
        rows.append(result.timings_ms)
    if not rows:
        raise ScanError(f"all {n} bench scans failed the quality check; bench with an image "
                        "that passes it (--image)")
    stages = {}
    for stage in STAGES:
        values = np.array([r[stage] for r in rows])
        stages[stage] = {"median": float(np.median(values)),
                         "p90": float(np.percentile(values, 90)),
                         "mean": float(values.mean())}
    invoke_share = sum(r["invoke"] for r in rows) / max(1e-9, sum(r["total"] for r in rows))
    # Everything the scan does besides model invoke (checks, faces, colour, crop, resize,
    # abstain), per scan: what the device spends on looking at the frame.
    besides = np.array([r["total"] - r["invoke"] for r in rows])
    models = scanner.models
    return {
        "n": len(rows), "rejected_by_quality": rejected, "stages_ms": stages,
        "invoke_share": invoke_share,
        "besides_invoke_ms": {"median": float(np.median(besides)),
                              "p90": float(np.percentile(besides, 90)),
                              "per_invoke": float(np.median(besides))
                              / max(1e-9, stages["invoke"]["median"])},
        "pack_version": models.pack_version if models else None,
        "models": {sign_model.sign.value: {"input_size": list(sign_model.model.input_size),
                                   "backend": sign_model.model.backend, "threads": sign_model.model.threads,
                                   "quantization": sign_model.card.quantization,
                                   "backbone": sign_model.card.backbone}
                   for sign_model in models} if models else {},
    }


def format_bench(report: dict) -> str:
    lines = [f"{'stage':<10}{'median ms':>12}{'p90 ms':>12}"]
    for stage, s in report["stages_ms"].items():
        lines.append(f"{stage:<10}{s['median']:>12.2f}{s['p90']:>12.2f}")
    if "besides_invoke_ms" in report:
        b = report["besides_invoke_ms"]
        lines.append(f"all but invoke: median {b['median']:.2f} ms, p90 {b['p90']:.2f} ms "
                     f"({b['per_invoke']:.1f}x the invoke median)")
    lines.append(f"model invoke share of the scan: {report['invoke_share']:.1%} "
                 f"({report['n']} scans, pack {report['pack_version']})")
    for sign, m in report["models"].items():
        lines.append(f"  {sign}: {m['backbone']} {m['quantization']} "
                     f"{m['input_size'][0]}x{m['input_size'][1]}, {m['backend']}, "
                     f"{m['threads']} threads")
    if "startup_ms" in report:
        s = report["startup_ms"]
        lines.append(f"start-up: models loaded in {s['load_models']:.0f} ms, first (cold) scan "
                     f"{s['first_scan']:.0f} ms")
    if report["rejected_by_quality"]:
        lines.append(f"{report['rejected_by_quality']} scans failed the quality check "
                     "and were left out")
    return "\n".join(lines)
