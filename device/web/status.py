"""Device status (technician): software, model pack and its held-out figures, camera,
scan stage timings, CPU temperature and load, free disk, uptime, recent errors.

The held-out figures come from the model cards. When a card's training data is
synthetic the figures are labelled "measured on synthetic data", and nowhere are
they called clinical accuracy: a synthetic lesion is not a patient.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, TypeVar

from flask import Blueprint, jsonify, render_template
from flask.typing import ResponseReturnValue

import device
from device.core.card import AbstentionInfo, HeldOutMetrics, ModelCard
from device.core.ceiling import SIMULATED_NOTE, Estimate, SignCeiling
from device.web import sysinfo
from device.web.auth import roles_required
from device.web.common import ctx
from device.web.users import Role

log = logging.getLogger(__name__)

bp = Blueprint("status", __name__)

#: Held-out figures shown from a card's metrics, in order, with their labels.
FIGURES: tuple[tuple[str, str], ...] = (
    ("accuracy", "accuracy"), ("macro_f1", "macro F1"), ("qwk", "quadratic kappa"),
    ("mae", "mean abs. error"), ("n", "images"),
)
SYNTHETIC_LABEL = "measured on synthetic data (generated images), not clinical accuracy"

N = TypeVar("N")


def _number(value: N) -> N:
    if isinstance(value, float):
        return round(value, 4)
    return value


def _figures(metrics: HeldOutMetrics) -> dict[str, Any]:
    values = metrics.model_dump()
    return {key: _number(values[key]) for key, _ in FIGURES if values.get(key) is not None}


def card_summary(card: ModelCard) -> dict[str, Any]:
    """What the status and models pages show of one model card."""
    data = card.training_data
    figures = _figures(card.metrics_tflite)
    if card.metrics_tflite.accuracy_ci95 is not None:
        figures["accuracy_ci95"] = [_number(x) for x in card.metrics_tflite.accuracy_ci95]
    if data.synthetic:
        label = SYNTHETIC_LABEL
    else:
        label = (f"measured on the held-out split of {data.source} ({data.n_val} images); "
                 "a held-out split of one data set, not a clinical validation")
    return {
        "sign": card.sign.value, "backbone": card.backbone, "quantization": card.quantization,
        "input_size": list(card.input_size), "head": card.head, "created": card.created,
        "training_data": {"source": data.source, "synthetic": data.synthetic,
                          "n_train": data.n_train, "n_val": data.n_val},
        "held_out": figures,
        "held_out_keras": _figures(card.metrics_keras),
        "figures_label": label,
        "gate": card.gate.passed if card.gate else None,
        "latency": card.latency,
        "abstention": _abstention_line(card.abstention),
        "labels": data.labels.value,
        "human_ceiling": _ceiling(card.human_ceiling),
    }


def _ceiling(c: SignCeiling | None) -> dict[str, Any] | None:
    """The card's human ceiling as the pages show it (None: the card has none)."""
    if c is None:
        return None

    def est(e: Estimate | None) -> dict[str, Any] | None:
        return None if e is None or e.value is None else {
            "value": _number(e.value), "ci95": [None if v is None else _number(v) for v in e.ci95]}

    return {"verdict": c.verdict.value, "n_lesions": c.n_lesions, "n_raters": len(c.raters),
            "rater_kappa": est(c.rater_kappa), "model_kappa": est(c.model_kappa),
            "rater_alpha": est(c.rater_alpha), "simulated": c.simulated_raters,
            "note": SIMULATED_NOTE if c.simulated_raters else None}


def _abstention_line(info: AbstentionInfo | None) -> str:
    if info is None:
        return "cannot abstain (no statistics in this pack)"
    if info.image_space is None or info.combined_heldout_accepted is None:
        return (f"abstains past {info.threshold:.3g} (accepts {info.heldout_accepted:.1%} of "
                f"{info.n_heldout} held-out images)")
    scene = ("" if info.scene_space is None
             else f", {info.scene_space.threshold:.3g} on the whole frame")
    return (f"abstains past {info.threshold:.3g} on its features or {info.image_space.threshold:.3g} "
            f"on image statistics{scene} (together accepts {info.combined_heldout_accepted:.1%} of "
            f"{info.n_heldout} held-out images)")


def pack_status() -> dict[str, Any]:
    service = ctx().service
    models = service.models
    note = getattr(service, "rollback_note", None)
    rolled_back = {"rolled_back": note.to_dict()} if note is not None else {}
    if models is None:
        return {"loaded": False, "version": None, "error": service.model_error, "models": {},
                **rolled_back}
    return {
        "loaded": True, "version": models.pack_version,
        "dir": str(models.pack_dir) if models.pack_dir else None,
        "error": service.model_error,
        "models": {sign_model.sign.value: card_summary(sign_model.card) for sign_model in models},
        **rolled_back,
    }


def status_data() -> dict[str, Any]:
    c = ctx()
    load = sysinfo.load_average()
    now = dt.datetime.now(dt.timezone.utc)
    return {
        "device_name": c.config.device_name,
        "software_version": device.__version__,
        "time": now.isoformat(timespec="seconds"),
        "pack": pack_status(),
        "camera": {"source": c.config.camera.source.value, **c.service.camera_status()},
        "recent_scans_ms": [t.to_dict() for t in c.scans.recent_timings()],
        "cpu_temperature_c": sysinfo.cpu_temperature_c(),
        "load_average": list(load) if load else None,
        "disk": sysinfo.disk_free(c.data_dir),
        "uptime_s": {"process": round(sysinfo.process_uptime_s()),
                     "system": sysinfo.system_uptime_s()},
        "errors": c.errors.records()[::-1],
        "field_agreement": field_agreement_data(),
        "tls": c.tls.to_dict() if c.tls is not None else None,
        "retention": {"days": c.config.storage.retention_days,
                      "scheduled": c.purger is not None,
                      "last_purge": c.purger.last.to_dict()
                      if c.purger is not None and c.purger.last is not None else None},
    }


def field_agreement_data() -> dict[str, Any]:
    """The field-agreement monitor (device.store.monitor) for the pack in use."""
    from device.store.monitor import from_config

    c = ctx()
    models = c.service.models
    return from_config(c.store, c.config, models.pack_version if models else None).to_dict()


@bp.route("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness only: open without login, so it says nothing about patients or models."""
    return jsonify(status="ok")


@bp.route("/status")
@roles_required(Role.TECHNICIAN)
def status_page() -> ResponseReturnValue:
    return render_template("status.html", nav="status", s=status_data(), figures=FIGURES,
                           fmt_duration=sysinfo.format_duration)


@bp.route("/api/status")
@roles_required(Role.TECHNICIAN)
def api_status() -> ResponseReturnValue:
    return jsonify(status_data())
