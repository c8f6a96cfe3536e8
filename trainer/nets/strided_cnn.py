"""A plain strided CNN for small lesion crops (ours, for the demo's recipe).

Four 3x3 convolutions, each with stride 2, batch norm and ReLU6: 3 -> 16 -> 32 -> 64
-> 128 channels (98k parameters), so a 96-px crop ends on a 6x6 map (receptive field
31 px) that the head averages. What it is for:

* The generator's signs are local textures and colours averaged over the crop (redness,
  scratch marks, skin-line grooves); a shallow net with a small receptive field and
  global pooling measures exactly that, and learns it in a few hundred steps on a CPU.
* Dense 3x3 convolutions train several times faster per image on a CPU than the
  depthwise ones of the MobileNets, whose backward pass is memory-bound; and in a
  two-minute budget, steps count more than width: these widths at 1,600 steps graded
  better than twice the widths at 800.
* int8: ReLU6 keeps every activation range bounded and there are only four quantized
  layers before the pooling, so rounding errors have little depth to accumulate in.

No published weights exist; it is always trained from random initialisation.
"""

from __future__ import annotations

from typing import Any

from trainer.nets._layers import conv_bn

WIDTHS = (16, 32, 64, 128)


def build(input_shape: tuple[int, int, int], *, name: str = "strided_cnn",
          widths: tuple[int, ...] = WIDTHS) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(input_shape)
    x = inputs
    for i, width in enumerate(widths, 1):
        x = conv_bn(x, width, 3, strides=2, name=f"stage{i}", activation=None)
        x = layers.ReLU(6.0, name=f"stage{i}_relu6")(x)
    return keras.Model(inputs, x, name=name)
