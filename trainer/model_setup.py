"""Build and compile the model a run trains: the registered backbone with its head,
batch-norm momentum suited to the run's length, and warm-start weights copied by
layer name from an earlier ``.keras`` model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from device.core.ceiling import LabelSource
from device.core.vocab import Sign
from trainer.train_config import TrainConfig, TrainError

log = logging.getLogger(__name__)


def build_model(cfg: TrainConfig, signs: list[Sign]):
    import keras

    from trainer.model import CUSTOM_OBJECTS, build_classifier, build_multi_sign

    weights = None if cfg.weights in ("none", "", None) else cfg.weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise TrainError(f"--weights {weights}: no such file (give none, imagenet, a backbone "
                         ".weights.h5 or a .keras model to start from)")
    # A .keras file (e.g. an earlier run's model.keras) is copied layer by layer after the
    # build; none/imagenet/a backbone .weights.h5 go to the backbone builder.
    path = weights if weights and weights.endswith(".keras") else None
    options = dict(image_size=cfg.image_size, head=cfg.head, weights=None if path else weights,
                   mirror_views=cfg.mirror_views, pooling=cfg.pooling)
    try:
        if cfg.multi_sign:
            model = build_multi_sign(cfg.backbone, signs=tuple(signs), **options)
        else:
            model = build_classifier(cfg.backbone, **options)
    except KeyError as exc:  # unknown backbone: the registry's message lists close names
        raise TrainError(f"--backbone: {exc.args[0] if exc.args else exc}") from exc
    except ValueError as exc:  # e.g. image size below the backbone's minimum
        raise TrainError(str(exc)) from exc
    cap_bn_momentum(model, bn_momentum(cfg.steps))
    if path:
        src = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
        copied = copy_weights(src, model)
        if not copied:
            raise TrainError(f"--weights {path}: no layer matches {cfg.backbone} at "
                             f"{cfg.image_size} px; start from a model of the same backbone")
        log.info("copied weights of %d layers from %s", copied, path)
    return model


def walk_layers(model, seen: set[int] | None = None):
    """Every layer inside ``model``, nested models opened, each once (public
    ``Model.layers`` only; a backbone is a nested functional model)."""
    seen = set() if seen is None else seen
    for layer in model.layers:
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        if hasattr(layer, "layers"):
            yield from walk_layers(layer, seen)


def bn_momentum(steps: int) -> float:
    """Batch-norm moving-average momentum for a run of ``steps`` iterations.

    keras.applications MobileNets use 0.999: after a few hundred steps their moving
    statistics are still mostly the initial ones (0.999**300 = 0.74), so the model in
    inference mode predicts one grade whatever it sees. 0.9 settles in tens of steps;
    0.99 (Keras' default) is right for the paper's 10,000."""
    return 0.9 if steps <= 2000 else 0.99


def cap_bn_momentum(model, momentum: float) -> int:
    import keras

    n = 0
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.momentum > momentum:
            layer.momentum = momentum
            n += 1
    if n:
        log.info("batch-norm momentum capped at %s in %d layers", momentum, n)
    return n


def snap_to_int8_grid(model) -> int:
    """Round every convolution and dense kernel onto the grid int8 conversion will put it
    on: per output channel, 255 levels symmetric about 0 (step max|w| / 127), the scheme
    TensorFlow Lite uses for int8 weights. Returns the number of kernels rounded.

    The converter folds batch norm into the kernel before quantizing; that folding scales
    each output channel by one factor, which keeps a rounded channel on its grid, so the
    int8 weights of the converted model are then exactly these. What is left between the
    Keras model and its int8 copy is the rounding of activations, which the accuracy gate
    measures. Rounding again changes nothing (the largest weight of a channel stays put)."""
    import keras
    import numpy as np

    n = 0
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            axes = (0, 1)  # one scale per (input channel, multiplier)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            axes = tuple(range(len(layer.kernel.shape) - 1))  # one per output channel
        else:
            continue
        kernel = np.asarray(layer.kernel.numpy())
        peak = np.abs(kernel).max(axis=axes, keepdims=True)
        step = np.where(peak > 0, peak / 127.0, 1.0)
        layer.kernel.assign((np.round(kernel / step) * step).astype(kernel.dtype))
        n += 1
    log.info("rounded %d kernels onto the int8 grid", n)
    return n


def fit_temperatures(model, images, labels: dict[str, Any]) -> dict[str, float]:
    """Temperature scaling (Guo et al. 2017) folded into each softmax head: for every head
    named in ``labels`` (a sign's name in a multi-sign model, "grades" in a one-sign
    model; labels are integer grades, -1 where not graded), the temperature T that
    minimises the cross-entropy of softmax(logits / T) on ``images`` is found on a grid,
    and the head's kernel and bias are divided by T. The grades (the argmax) do not
    change; the probabilities become as sure as the model is right. Dividing a kernel by
    one number keeps it on its int8 grid. Returns {head: T}; heads that are not plain
    softmax Dense layers (the ordinal head) are left alone."""
    import keras
    import numpy as np

    from trainer.model import POOL_LAYER

    features = np.asarray(keras.Model(model.input, model.get_layer(POOL_LAYER).output)
                          .predict(images, batch_size=64, verbose=0), np.float64)
    grid = np.geomspace(0.2, 5.0, 161)
    out = {}
    for name, y in labels.items():
        head = model.get_layer(name)
        y = np.asarray(y)
        keep = y >= 0
        if not isinstance(head, keras.layers.Dense) or head.activation is not keras.activations.softmax \
                or keep.sum() < 20:
            continue
        kernel, bias = (np.asarray(w.numpy(), np.float64) for w in (head.kernel, head.bias))
        logits = features[keep] @ kernel + bias
        nll = [_cross_entropy(logits / t, y[keep]) for t in grid]
        t = float(grid[int(np.argmin(nll))])
        head.kernel.assign((kernel / t).astype(head.kernel.dtype))
        head.bias.assign((bias / t).astype(head.bias.dtype))
        out[name] = round(t, 4)
    log.info("temperature scaling: %s", ", ".join(f"{k} T={v:g}" for k, v in out.items()) or "none")
    return out


def _cross_entropy(logits, y) -> float:
    import numpy as np

    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def copy_weights(src, dst) -> int:
    by_name = {layer.name: layer for layer in walk_layers(src)}
    n = 0
    for layer in walk_layers(dst):
        other = by_name.get(layer.name)
        if other is None or not layer.weights:
            continue
        weights = other.get_weights()
        if [w.shape for w in weights] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(weights)
            n += 1
    return n


def compile_model(model, cfg: TrainConfig, signs: list[Sign], *, jit_compile: bool = False) -> None:
    """Optimizer, schedule and loss from the run's recipe (trainer.recipe)."""
    from trainer.model import loss_for_head
    from trainer.recipe import make_optimizer, parse_recipe

    recipe = parse_recipe(cfg.recipe)
    opt = make_optimizer(recipe, cfg.lr, cfg.steps, momentum=cfg.momentum)
    smoothing = recipe.label_smoothing
    soft = cfg.labels is LabelSource.RATERS
    if cfg.multi_sign:
        loss = {s.value: loss_for_head(cfg.head, label_smoothing=smoothing, soft=soft) for s in signs}
        metrics = {s.value: ["accuracy"] for s in signs}
    else:
        loss, metrics = loss_for_head(cfg.head, label_smoothing=smoothing, soft=soft), ["accuracy"]
    model.compile(optimizer=opt, loss=loss, metrics=metrics, jit_compile=jit_compile)
