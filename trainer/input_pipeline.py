"""The tf.data input pipeline: parallel decode (through trainer.run.load_image, so
training pixels are exactly those of evaluation and conversion), cache, shuffle,
colour-preserving augmentation, batch, prefetch.

Augmentation never touches hue or saturation: erythema IS colour. Brightness and
contrast move all three channels together around the image's grey mean, so the
ratios between channels (what "red" is) barely change.

``python -m trainer bench-pipeline DIR`` prints the pipeline's images/s and the
training images/s fed by it versus by the same images already in memory.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from device.core.vocab import NUM_GRADES, Sign

log = logging.getLogger(__name__)

MISSING = -1  # label of a sign not graded for an image (multi-sign): weight 0


@dataclass(frozen=True)
class Augment:
    flips: bool = True
    rot90: bool = True
    max_rotation_deg: float = 15.0
    min_crop: float = 0.8  # random crop keeps this fraction of the side at least
    brightness: float = 0.08  # +- fraction of 255
    contrast: float = 0.15  # factor in 1 +- this


NO_AUGMENT = Augment(False, False, 0.0, 1.0, 0.0, 0.0)


def class_weights(labels: np.ndarray) -> np.ndarray:
    """Per-grade weights n / (K * count) over the grades present (0 for absent ones),
    so each grade contributes equally to the loss whatever its count."""
    labels = np.asarray(labels)
    labels = labels[labels >= 0]
    counts = np.bincount(labels, minlength=NUM_GRADES).astype(np.float64)
    present = counts > 0
    w = np.zeros(NUM_GRADES)
    if present.any():
        w[present] = labels.size / (present.sum() * counts[present])
    return w


def label_arrays(samples, signs: Sequence[Sign]) -> np.ndarray:
    """(N, len(signs)) int labels, MISSING where a sign is not graded."""
    out = np.full((len(samples), len(signs)), MISSING, np.int64)
    for i, s in enumerate(samples):
        for j, sign in enumerate(signs):
            g = s.grades.get(sign)
            if g is not None:
                out[i, j] = int(g)
    return out


def rater_label_arrays(samples, signs: Sequence[Sign]) -> np.ndarray:
    """(N, len(signs), R) each rater's grade, packed to the front, MISSING after them; an
    image without per-rater grades of a sign keeps its consensus grade as its one rater.
    R is the most raters any image has."""
    per = [[sorted(s.rater_grades.get(sign, {}).items()) for sign in signs] for s in samples]
    width = max([len(g) for row in per for g in row] + [1])
    out = np.full((len(samples), len(signs), width), MISSING, np.int64)
    for i, s in enumerate(samples):
        for j, sign in enumerate(signs):
            grades = [int(g) for _, g in per[i][j]]
            if not grades and s.grades.get(sign) is not None:
                grades = [int(s.grades[sign])]
            out[i, j, :len(grades)] = grades
    return out


def soft_label_arrays(samples, signs: Sequence[Sign], *, raters: bool = True) -> np.ndarray:
    """(N, len(signs), 4) target distributions: with ``raters``, the share of an image's
    raters giving each grade (soft labels); else, or where an image has no per-rater grades
    of a sign, one-hot of its consensus grade; all zeros where the sign is not graded."""
    out = np.zeros((len(samples), len(signs), NUM_GRADES), np.float32)
    for i, s in enumerate(samples):
        for j, sign in enumerate(signs):
            given = list(s.rater_grades.get(sign, {}).values()) if raters else []
            if not given and s.grades.get(sign) is not None:
                given = [int(s.grades[sign])]
            for g in given:
                out[i, j, int(g)] += 1.0 / len(given)
    return out


def augment_image(image, rng_seed, aug: Augment):
    """Random colour-preserving augmentation of one uint8 (H, W, 3) image (tf ops)."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(rng_seed, num=8)
    x = tf.image.convert_image_dtype(image, tf.float32)  # 0-1
    size = tf.shape(x)[:2]
    if aug.flips:
        x = tf.image.stateless_random_flip_left_right(x, seeds[0])
        x = tf.image.stateless_random_flip_up_down(x, seeds[1])
    if aug.rot90:
        k = tf.random.stateless_uniform([], seeds[2], 0, 4, dtype=tf.int32)
        x = tf.image.rot90(x, k)
    if aug.max_rotation_deg > 0:
        angle = tf.random.stateless_uniform([], seeds[3], -1.0, 1.0) * (aug.max_rotation_deg * math.pi / 180)
        x = _rotate(x, angle)
    if aug.min_crop < 1.0:
        frac = tf.random.stateless_uniform([], seeds[4], aug.min_crop, 1.0)
        crop = tf.cast(tf.cast(size, tf.float32) * frac, tf.int32)
        x = tf.image.stateless_random_crop(x, tf.concat([crop, [3]], 0), seeds[5])
        x = tf.image.resize(x, size, method="area")
    if aug.brightness > 0 or aug.contrast > 0:
        mean = tf.reduce_mean(x)  # one grey mean for all channels: keeps the hue
        c = 1.0 + tf.random.stateless_uniform([], seeds[6], -aug.contrast, aug.contrast)
        b = tf.random.stateless_uniform([], seeds[7], -aug.brightness, aug.brightness)
        x = (x - mean) * c + mean + b
    x = tf.clip_by_value(x, 0.0, 1.0)
    return tf.cast(tf.round(x * 255.0), tf.uint8)


def _rotate(x, angle):
    """Rotate about the centre with reflected borders (no black corners to learn from)."""
    import tensorflow as tf

    h = tf.cast(tf.shape(x)[0], tf.float32)
    w = tf.cast(tf.shape(x)[1], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # output (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2)
    transform = tf.stack([cos, -sin, cx - cos * cx + sin * cy,
                          sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None], transforms=transform, output_shape=tf.shape(x)[:2],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    return out[0]


def make_dataset(samples, signs: Sequence[Sign], image_size: int, batch: int, *,
                 training: bool, seed: int = 0, augment: Augment | None = None,
                 weights: Mapping[Sign, np.ndarray] | None = None, cache: bool = True,
                 multi_output: bool = False, soft_labels: np.ndarray | None = None):
    """A batched tf.data.Dataset of (uint8 images, labels[, sample weights]).

    Training: repeated, shuffled, augmented, with per-sample class weights (0 for an
    ungraded sign). Validation: one pass in order, no weights. ``multi_output`` gives
    labels/weights as dicts keyed by sign value (the multi-sign model's outputs).
    ``soft_labels`` (``soft_label_arrays``, N x signs x 4): targets are these distributions
    instead of integer grades (categorical cross-entropy; the raters' soft labels in
    training, one-hot consensus grades for validation); a sample's weight is then its
    target's expected class weight."""
    import tensorflow as tf

    from trainer.run import load_image

    if not samples:
        raise ValueError("no images for this split; check the data set and the sign")
    paths = [str(s.path) for s in samples]
    boxes = np.array([s.box if s.box is not None else (0, 0, 0, 0) for s in samples], np.int64)
    labels = label_arrays(samples, signs)
    autotune = tf.data.AUTOTUNE

    def decode(path, box):
        def _load(p, b):
            return load_image(p, image_size, tuple(b) if b[2] > 0 else None)

        img = tf.numpy_function(_load, [path, box], tf.uint8, stateful=False)
        img.set_shape((image_size, image_size, 3))
        return img

    if soft_labels is not None:
        labels = np.asarray(soft_labels, np.float32)  # (N, S, 4)
    ds = tf.data.Dataset.from_tensor_slices((paths, boxes, labels))
    ds = ds.map(lambda p, b, y: (decode(p, b), y), num_parallel_calls=autotune,
                deterministic=not training)
    if cache:
        ds = ds.cache()  # decoded uint8 at the training size: small, decode once per run
    if training:
        w = np.stack([np.asarray(weights[s], np.float32) if weights else np.ones(NUM_GRADES, np.float32)
                      for s in signs])  # (S, 4)
        w_table = tf.constant(w)
        ds = ds.shuffle(min(len(samples), 4096), seed=seed, reshuffle_each_iteration=True).repeat()
        aug = augment if augment is not None else Augment()
        ds = ds.enumerate()

        def train_map(i, elem):
            img, y = elem
            img = augment_image(img, tf.stack([tf.cast(seed, tf.int64), i]), aug)
            if soft_labels is not None:  # expected class weight; 0 where not graded
                return img, y, tf.reduce_sum(y * w_table, axis=1)
            idx = tf.maximum(y, 0)
            sw = tf.where(y >= 0, tf.gather_nd(w_table, tf.stack([tf.range(len(signs), dtype=tf.int64), idx], 1)), 0.0)
            return img, tf.maximum(y, 0), sw

        ds = ds.map(train_map, num_parallel_calls=autotune, deterministic=False)
        ds = ds.batch(batch, drop_remainder=True)
        ds = ds.map(lambda x, y, sw: (x, *_outputs(y, sw, signs, multi_output)))
    else:
        ds = ds.batch(batch)
        ds = ds.map(lambda x, y: (x, _outputs(y if soft_labels is not None else tf.maximum(y, 0),
                                              None, signs, multi_output)[0]))
    options = tf.data.Options()
    options.experimental_deterministic = not training
    # One list of paths, not files per worker: shard by element under MultiWorkerMirrored.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(autotune)


def _outputs(y, sw, signs, multi_output):
    if multi_output:
        ys = {s.value: y[:, j] for j, s in enumerate(signs)}
        ws = None if sw is None else {s.value: sw[:, j] for j, s in enumerate(signs)}
        return ys, ws
    return y[:, 0], (None if sw is None else sw[:, 0])


def bench(data: str, sign: Sign, *, image_size: int, batch: int, steps: int, backbone: str) -> dict:
    """images/s of (1) the pipeline alone, first pass (decode) and cached, and of
    training fed (2) by the pipeline versus (3) by the same images held in memory."""
    import keras

    from trainer.data import load_dataset, samples_for_sign
    from trainer.model import build_classifier
    from trainer.run import load_images

    samples = samples_for_sign(load_dataset(data).samples, sign)
    result: dict = {"n_images": len(samples), "image_size": image_size, "batch": batch,
                    "backbone": backbone, "steps": steps}
    ds = make_dataset(samples, [sign], image_size, batch, training=True, seed=0)
    n_batches = max(1, len(samples) // batch)
    it = iter(ds)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    result["pipeline_first_pass_img_s"] = n_batches * batch / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    result["pipeline_cached_img_s"] = n_batches * batch / (time.perf_counter() - t0)

    x = load_images(samples, image_size)
    y = np.array([int(s.grades[sign]) for s in samples])

    def timed_fit(data_arg, **fit_options) -> float:
        keras.utils.set_random_seed(0)
        model = build_classifier(backbone, image_size=image_size)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss="sparse_categorical_crossentropy")
        warm = 3
        model.fit(data_arg, epochs=1, steps_per_epoch=warm, verbose=0, **fit_options)  # compile the graph
        t = time.perf_counter()
        model.fit(data_arg, epochs=1, steps_per_epoch=steps, verbose=0, **fit_options)
        return steps * batch / (time.perf_counter() - t)

    result["train_tfdata_img_s"] = timed_fit(ds)
    mem = _in_memory_dataset(x, y, batch)
    result["train_in_memory_img_s"] = timed_fit(mem)
    return result


def _in_memory_dataset(x: np.ndarray, y: np.ndarray, batch: int):
    """The same images already decoded in memory, endlessly repeated (no decode, no
    augmentation): the upper bound the pipeline is measured against."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch, drop_remainder=True)

