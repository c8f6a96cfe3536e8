"""Selective int8: which layers stay float (the end-to-end conversion is in
test_convert.py)."""

from __future__ import annotations

import pytest


def test_selective_int8_ranks_layers_by_error_in_quantization_steps():
    from convert.selective import pick_float_layers, rank_layers

    dump = ("op_name,tensor_idx,num_elements,stddev,mean_error,max_abs_error,mean_squared_error,"
            "scale,zero_point,tensor_name\n"
            "CONV_2D,11,392.0,0.003,0.0007,0.01,9.0e-06,0.006,-128,conv_a\n"  # 0.5 steps
            "HARD_SWISH,12,392.0,0.003,0.0007,0.01,4.0e-04,0.01,-128,swish_b\n"  # 2.0 steps
            "MEAN,15,8.0,0.0003,0.0,0.0006,1.0e-06,0.001,-128,mean_c\n"  # 1.0 step
            "SOFTMAX,23,4.0,0.0008,0.0,0.0015,1.0e-06,0.0,-128,zero_scale\n")  # skipped
    ranked = rank_layers(dump)
    assert [e.name for e in ranked] == ["swish_b", "mean_c", "conv_a"]
    assert ranked[0].rmse_scale == pytest.approx(2.0)
    assert pick_float_layers(ranked) == ("swish_b", "mean_c")  # above 0.7 steps
    assert pick_float_layers(ranked, max_layers=1) == ("swish_b",)
    assert pick_float_layers(ranked, threshold=5.0) == ("swish_b",)  # at least the worst
