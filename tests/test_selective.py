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


def test_int8_calibrates_on_the_lesion_crop_as_the_device_sees_it(tmp_path):
    """A full photo with a lesion box: the calibration image is the box, resized to the
    model's input with the device's interpolation, not the whole photo squashed."""
    import cv2
    import numpy as np

    from convert.tflite import calibration_images
    from trainer.data import Sample

    photo = np.zeros((200, 300, 3), np.uint8)
    photo[50:130, 100:180] = (200, 40, 40)  # the lesion: red, inside the box
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    sample = Sample(path=path, grades={}, box=(100, 50, 80, 80))
    (calib,) = calibration_images([sample], 32, n=1)
    expected = cv2.resize(photo[50:130, 100:180], (32, 32), interpolation=cv2.INTER_AREA)
    assert np.array_equal(calib, expected)  # all lesion, no black surround
