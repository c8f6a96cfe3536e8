"""convert.gate: the pass/fail rules on known probabilities (fast, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from convert.cli.model import modes_to_try
from convert.gate import GateThresholds, evaluate_gate
from device.core.cliutil import UserError


def _onehot(pred, p=0.9):
    out = np.full((len(pred), 4), (1 - p) / 3)
    out[np.arange(len(pred)), pred] = p
    return out


Y = np.repeat(np.arange(4), 25)  # 100 images, 25 per grade


def test_identical_outputs_pass_with_zero_changes():
    probs = _onehot(Y)
    g = evaluate_gate(Y, probs, probs, mode="float32")
    assert g.passed and g.reasons == []
    assert g.acc_drop_points == 0 and g.agreement == 1.0 and g.max_prob_diff == 0
    assert g.recall_change_points == [0.0, 0.0, 0.0, 0.0]
    assert "gate PASSED" in g.table()


def test_one_flip_fails_agreement_and_recall_but_not_accuracy():
    keras = _onehot(Y)
    pred = Y.copy()
    pred[0] = 1  # a grade-0 image now graded 1: accuracy -1 point, agreement 99 %
    pred[30] = 2  # and a grade-1 image graded 2: accuracy -2 points total
    g = evaluate_gate(Y, keras, _onehot(pred), mode="int8")
    assert g.acc_drop_points == pytest.approx(2.0)
    assert g.agreement == pytest.approx(0.98)
    assert g.recall_change_points[0] == pytest.approx(-4.0)
    assert not g.passed
    text = " ".join(g.reasons)
    assert "accuracy dropped 2.00 points" in text
    assert "recall of grade 0 (none) dropped 4.00 points" in text
    assert "agreement" not in text  # 98 % is exactly the threshold: passes
    table = g.table(synthetic=True)
    assert "FAIL" in table and "synthetic data: not clinical accuracy" in table


def test_thresholds_are_options():
    keras = _onehot(Y)
    pred = Y.copy()
    pred[0] = 1
    loose = GateThresholds(max_acc_drop=1.0, min_agreement=0.99, max_recall_drop=5.0)
    assert evaluate_gate(Y, keras, _onehot(pred), mode="int8", thresholds=loose).passed
    strict = GateThresholds(max_acc_drop=0.5, min_agreement=0.995, max_recall_drop=5.0)
    g = evaluate_gate(Y, keras, _onehot(pred), mode="int8", thresholds=strict)
    assert len(g.reasons) == 2 and "agreement 99.00 %" in g.reasons[1]


def test_improvement_passes_and_absent_grade_is_skipped():
    y = np.array([0, 0, 1, 1, 2, 2])  # no grade 3
    keras = _onehot(np.array([0, 1, 1, 1, 2, 2]))
    tfl = _onehot(y)
    g = evaluate_gate(y, keras, tfl, mode="dynamic",
                      thresholds=GateThresholds(min_agreement=0.5))
    assert g.passed and g.acc_drop_points < 0
    assert g.recall_change_points[3] is None
    assert g.max_prob_diff == pytest.approx(0.9 - 0.1 / 3)
    d = g.record()
    assert d.passed is True and d.recall_change_points[3] is None


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        evaluate_gate(Y, _onehot(Y), _onehot(Y)[:10], mode="int8")


def test_fallback_order():
    assert modes_to_try("int8", True) == ["int8", "int8_selective", "dynamic", "float16"]
    assert modes_to_try("int8_selective", True) == ["int8_selective", "dynamic", "float16"]
    assert modes_to_try("dynamic", True) == ["dynamic", "float16"]
    assert modes_to_try("float32", True) == ["float32"]
    assert modes_to_try("int8", False) == ["int8"]
    assert modes_to_try("int8", True, ["int8_selective"]) == ["int8", "dynamic", "float16"]
    assert modes_to_try("int8", True, ["int8_selective", "float16"]) == ["int8", "dynamic"]
    with pytest.raises(UserError, match="leaves out the --mode"):
        modes_to_try("int8", True, ["int8"])


def test_one_line_summary_gives_the_verdict_and_the_checked_figures():
    keras = _onehot(Y)
    pred = Y.copy()
    pred[0] = 1
    g = evaluate_gate(Y, keras, _onehot(pred), mode="int8",
                      thresholds=GateThresholds(max_recall_drop=5.0))
    line = g.summary()
    assert "\n" not in line
    assert line.startswith("gate int8 PASSED") and "agreement 99.00 %" in line
    assert "100.00 -> 99.00 %" in line and "100 held-out images" in line
    worse = Y.copy()
    worse[:5] = 1
    assert "FAILED: " in evaluate_gate(Y, keras, _onehot(worse), mode="int8").summary()
