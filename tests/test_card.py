"""The model card: typed metrics and gate, provenance in its own field, old cards migrated."""

from __future__ import annotations

import json

import pytest

from device.core.card import (
    CARD_SCHEMA_VERSION,
    CardError,
    GateRecord,
    HeldOutMetrics,
    QuantMode,
    load_card,
    save_card,
)

V1_CARD = {
    "schema_version": 1, "sign": "erythema", "input_size": [32, 32], "quantization": "int8",
    "backbone": "mobilenet_v2", "head": "softmax",
    "training_data": {"source": "synthetic", "synthetic": True, "n_train": 10, "n_val": 4},
    "metrics_keras": {"n": 4, "accuracy": 0.75, "accuracy_ci95": [0.5, 1.0], "split": "held-out (val)"},
    "metrics_tflite": {"n": 4, "accuracy": 0.75},
    "gate": {"mode": "int8", "passed": True, "reasons": [], "n": 4, "accuracy_keras": 0.75,
             "accuracy_tflite": 0.75, "acc_drop_points": 0.0, "agreement": 1.0,
             "recall_change_points": [0.0, None, 0.0, 0.0], "max_prob_diff": 0.01,
             "thresholds": {"max_acc_drop": 1.0, "min_agreement": 0.98, "max_recall_drop": 3.0},
             "tried_before": [], "conversion_errors": {}, "calibration_images": 8,
             "run_dir": "/work/runs/ery"},
    "latency": {}, "sha256": "0" * 64, "created": "2025-01-01T00:00:00+00:00",
    "software_version": "0.1.0",
}


def test_a_schema_1_card_is_migrated(tmp_path):
    path = tmp_path / "erythema.card.json"
    path.write_text(json.dumps(V1_CARD))
    card = load_card(path)
    assert card.schema_version == CARD_SCHEMA_VERSION == 4
    assert card.abstention is None  # no statistics before schema 3: it cannot abstain
    assert card.provenance.run_dir == "/work/runs/ery"
    assert isinstance(card.gate, GateRecord) and card.gate.passed and card.gate.calibration_images == 8
    assert "run_dir" not in card.gate.model_dump()
    assert card.quantization is QuantMode.INT8
    assert isinstance(card.metrics_keras, HeldOutMetrics) and card.metrics_keras.accuracy == 0.75
    # Saved again it is a current card that reads back the same.
    save_card(card, path)
    saved = json.loads(path.read_text())
    assert saved["schema_version"] == 4 and saved["provenance"] == {"run_dir": "/work/runs/ery"}
    assert "run_dir" not in saved["gate"]
    assert load_card(path) == card


def test_an_empty_v1_gate_becomes_none(tmp_path):
    path = tmp_path / "c.card.json"
    path.write_text(json.dumps(dict(V1_CARD, gate={})))
    card = load_card(path)
    assert card.gate is None and card.provenance.run_dir is None


@pytest.mark.parametrize("change,field", [
    ({"quantization": "int4"}, "quantization"),
    ({"metrics_tflite": {"n": 4, "accuracy": 1.5}}, "metrics_tflite.accuracy"),
    ({"metrics_tflite": {"n": 4, "accuracy": 0.5, "verdict": "ok"}}, "metrics_tflite.verdict"),
    ({"schema_version": 5}, "schema_version"),
    ({"abstention": {"method": "knn"}}, "abstention"),
])
def test_bad_cards_name_the_field(tmp_path, change, field):
    path = tmp_path / "c.card.json"
    path.write_text(json.dumps({**V1_CARD, "schema_version": 3, "gate": None, **change}))
    with pytest.raises(CardError, match=f"c.card.json: invalid model card: .*{field}"):
        load_card(path)


def test_quant_modes_are_one_list():
    from convert.tflite import MODES, check_mode

    assert tuple(QuantMode) == MODES
    assert check_mode("float16") is QuantMode.FLOAT16
    with pytest.raises(ValueError, match="int8, int8_selective, dynamic, float16, float32"):
        check_mode("int4")


def test_a_schema_2_card_is_migrated_and_cannot_abstain(tmp_path):
    path = tmp_path / "c.card.json"
    path.write_text(json.dumps({**V1_CARD, "schema_version": 2, "gate": None}))
    card = load_card(path)
    assert card.schema_version == 4 and card.abstention is None


def test_a_schema_3_card_is_migrated_without_a_human_ceiling(tmp_path):
    from device.core.ceiling import LabelSource

    path = tmp_path / "c.card.json"
    path.write_text(json.dumps({**V1_CARD, "schema_version": 3, "gate": None}))
    card = load_card(path)
    assert card.schema_version == 4 and card.human_ceiling is None
    assert card.training_data.labels is LabelSource.CONSENSUS
    save_card(card, path)
    assert json.loads(path.read_text())["training_data"]["labels"] == "consensus"
    assert load_card(path) == card
