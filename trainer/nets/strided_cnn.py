"""A plain strided CNN for small lesion crops (ours, for the demo's recipe).

Four 3x3 convolutions, each with stride 2, batch norm and ReLU6: 3 -> 16 -> 32 -> 64
-> 128 channels; the last two stages (12x12 and 6x6 on a 96-px crop) each add one more
3x3 convolution at stride 1, so the map the head pools has a receptive field of 79 px
(283k parameters). What it is for:

* The generator's signs are local textures and colours averaged over the crop (redness,
  scratch marks, skin-line grooves), graded against the skin around them; a shallow net
  with global pooling measures that, and learns it in about a thousand steps on a CPU.
* Depth where the map is small: the four plain stages fitted the device-cut training
  crops to only 77 % and graded 70 / 65 / 65 % of held-out crops; the two stride-1
  convolutions, which cost little at 12x12 and 6x6, see a lesion against its surround:
  with mean and max pooling they graded 78.4 / 70.4 / 68.3 % in 1,200 steps (88 s of
  training against the plain net's 82 s for 1,600), and 79.6 / 66.0 / 66.6 % in the
  recipe's 1,000 (docs/recipe-log.md).
* Dense 3x3 convolutions train several times faster per image on a CPU than the
  depthwise ones of the MobileNets, whose backward pass is memory-bound.
* int8: ReLU6 keeps every activation range bounded and there are only six quantized
  layers before the pooling, so rounding errors have little depth to accumulate in.

No published weights exist; it is always trained from random initialisation.
"""

from __future__ import annotations

from typing import Any

from trainer.nets._layers import conv_bn

WIDTHS = (16, 32, 64, 128)
#: The stages (1-based) that add a stride-1 3x3 convolution after their strided one.
REFINED = (3, 4)


def build(input_shape: tuple[int, int, int], *, name: str = "strided_cnn",
          widths: tuple[int, ...] = WIDTHS, refined: tuple[int, ...] = REFINED) -> Any:
    import keras
    from keras import layers

    inputs = keras.Input(input_shape)
    x = inputs
    for i, width in enumerate(widths, 1):
        x = conv_bn(x, width, 3, strides=2, name=f"stage{i}", activation=None)
        x = layers.ReLU(6.0, name=f"stage{i}_relu6")(x)
        if i in refined:
            x = conv_bn(x, width, 3, name=f"stage{i}b", activation=None)
            x = layers.ReLU(6.0, name=f"stage{i}b_relu6")(x)
    return keras.Model(inputs, x, name=name)
