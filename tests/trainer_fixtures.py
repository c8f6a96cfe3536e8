"""Helpers for the trainer's tests: the tiny test backbone (its fixtures are in conftest.py)."""

from __future__ import annotations

#: A three-convolution backbone registered for the tests only: graph building for a
#: real registry net (MobileNetV3 ...) alone takes tens of seconds on a busy 2-core
#: machine. Its batch norms use momentum 0.999 like the Keras MobileNets, so the
#: trainer's momentum cap is exercised too. (Every registry backbone is built and run
#: by the backbones tests; the mobile ones train in the sweep measurement.)
TINY_BACKBONE = "tiny_cnn_test"
TINY_BACKBONE_WIDE = "tiny_cnn_test_wide"
TINY_SIZE = 32


def _build_tiny(input_shape, *, weights=None, name=None, width=None, widths=(16, 32, 64), **options):
    import keras
    from keras import layers

    inp = keras.Input(input_shape)
    x = inp
    for filters in widths:
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.999)(x)
        x = layers.ReLU()(x)
    return keras.Model(inp, x, name=name or TINY_BACKBONE)


def register_tiny_backbone() -> str:
    from trainer.backbones import BackboneSpec, list_backbones, register

    if TINY_BACKBONE not in list_backbones():
        register(BackboneSpec(TINY_BACKBONE, "test", 2024, _build_tiny, 24, 32, 23_584, "tf"))

        def wide(input_shape, **kw):
            return _build_tiny(input_shape, widths=(24, 48, 96), **kw)

        register(BackboneSpec(TINY_BACKBONE_WIDE, "test", 2024, wide, 24, 32, 52_560, "tf"))
    return TINY_BACKBONE


#: Run ``python -m trainer ARGS`` in a subprocess with the tiny backbone registered.
SUBPROCESS_MAIN = (
    "import sys; sys.path.insert(0, {tests!r}); import trainer_fixtures as f; "
    "f.register_tiny_backbone(); from trainer.__main__ import main; sys.exit(main(sys.argv[1:]))"
)
