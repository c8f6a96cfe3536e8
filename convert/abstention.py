"""Fit a converted model's abstention statistics (device.grading.abstain) and calibrate its
threshold: features of the training split fit the Gaussians, features of the
held-out split set the threshold. Both are read from the converted .tflite through
the device's own interpreter wrapper, so the device scores exactly these features.

The second space (device.grading.imagestats) is fitted the same way on the crops as the model
is fed: one Gaussian on the training split's descriptors (each crop also described
at the acquisition-blur variants ``ACQUISITION_BLURS``), threshold on the held-out
split. Each space's threshold accepts at least 1 - (1 - accept) / 2 of the held-out
split, so that together they accept at least ``accept`` (99 %). The image statistics do
not depend on the model: a pack's signs share one fit (the last one is kept in memory),
made on at most ``IMAGE_FIT_MAX`` training crops.

The third space (device.grading.scenestats, the whole frame) is fitted where the data
root recorded its photos' scene descriptors (convert.devicecrops, ``scene.npz``): on the
photos of the training split's patients, its threshold on those of the held-out split's.
With it, the three spaces share the budget: each accepts at least 1 - (1 - accept) / 3.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convert.spacefit import calibrate_threshold, fit_image_stats, fit_scene_stats, fit_stats
from device.core.atomic import atomic_write_bytes
from device.core.card import AbstentionInfo, ImageSpaceInfo, SceneSpaceInfo
from device.grading.abstain import DEFAULT_ACCEPT, METHOD, STATS_SUFFIX, FeatureStats
from device.grading.imagestats import DESCRIPTOR_VERSION, DIM, describe_many, variants
from device.grading.interpreter import GradeModel
from device.grading.scenestats import SCENE_DIM, SCENE_VERSION
from device.packs.manifest import sha256_file

log = logging.getLogger(__name__)


class AbstentionFitError(ValueError):
    """The model returns no pooled features, or there are too few images to fit on."""


def stats_path_for(tflite_path: Path) -> Path:
    """``DIR/erythema.tflite`` -> ``DIR/erythema.ood.npz``."""
    tflite_path = Path(tflite_path)
    return tflite_path.with_name(tflite_path.stem + STATS_SUFFIX)


def model_features(model: GradeModel, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Pooled features (N, D) of uint8 images at the model's input size."""
    if not model.has_features:
        raise AbstentionFitError(f"{model.path}: returns no pooled features; convert it again "
                                 "with this software (the model contract's second output)")
    rows = []
    for image in images:
        _, feats = model.predict_with_features(np.asarray(image, np.uint8))
        rows.append(feats)
    return np.stack(rows) if rows else np.zeros((0, model.feature_dim or 0), np.float32)


def fit_abstention(tflite: Path, train_images: np.ndarray, train_grades: Sequence[int],
                   val_images: np.ndarray, *, accept: float = DEFAULT_ACCEPT,
                   threads: int = 2, image_space: bool = True,
                   blur_variants: bool = True, scene: SceneData | None = None) -> AbstentionInfo:
    """Write ``<sign>.ood.npz`` beside ``tflite`` and return the card's section for it.
    ``image_space=False`` fits the pooled features only (as packs before it);
    ``blur_variants=False`` fits the image space on the training crops alone, without their
    acquisition-blur variants (crops the device itself cut: see fit_for_run); ``scene``:
    the training and held-out photos' scene descriptors (None: no scene space)."""
    if len(train_images) < 2 or len(val_images) < 1:
        raise AbstentionFitError(f"abstention needs training and held-out images; got "
                                 f"{len(train_images)} and {len(val_images)}")
    each = 1 - (1 - accept) / (1 + image_space + (scene is not None))
    model = GradeModel(tflite, threads=threads)
    stats, shrink = fit_stats(model_features(model, train_images), np.asarray(train_grades))
    val_dist = stats.distances(model_features(model, val_images))
    threshold, accepted = calibrate_threshold(val_dist, each)
    stats = stats.with_threshold(threshold)
    image_info, combined = None, None
    if image_space:
        stats, image_info, image_ok = _fit_image_space(stats, train_images, val_images, each,
                                                       blur_variants)
        combined = float(((val_dist <= threshold) & image_ok).mean())
    scene_info = None
    if scene is not None:
        stats, scene_info, scene_ok = _fit_scene_space(stats, scene, each)
        ok = (val_dist <= threshold) & scene_ok
        if image_space:
            ok &= image_ok
        combined = float(ok.mean())
    path = stats_path_for(tflite)
    atomic_write_bytes(path, stats.to_bytes())
    log.info("%s: abstention threshold %.3f accepts %.1f %% of %d held-out images", tflite.name,
             threshold, 100 * accepted, len(val_images))
    how = (f"Mahalanobis distance to the nearest grade mean (shared Ledoit-Wolf covariance, "
           f"fitted on {len(train_images)} training images through this .tflite); the "
           f"threshold is the smallest distance accepting at least {each:.1%} of the "
           f"{len(val_images)} held-out images")
    if image_info is not None:
        how += (f". Second space: Mahalanobis distance of the crop's image statistics (colour, "
                f"band energies, gradients, LBP, saturation) to the training crops' mean, "
                f"threshold set by the same rule; past either threshold abstains; together "
                f"they accept {combined:.1%} of the held-out images")
    if scene_info is not None:
        how += (f". Scene space: Mahalanobis distance of the whole frame's descriptor (skin share, "
                f"skin and background colour, textures, edges) to the {scene_info.n_fit} training "
                f"photos', threshold accepting at least {each:.1%} of {scene_info.n_heldout} "
                "held-out photos")
    return AbstentionInfo(
        method=METHOD, stats_file=path.name, stats_sha256=sha256_file(path),
        feature_dim=stats.dim, classes=list(stats.classes), n_fit=len(train_images),
        shrinkage=round(float(shrink), 6), threshold=threshold, target_accept=accept,
        heldout_accepted=accepted, n_heldout=len(val_images), how=how,
        image_space=image_info, combined_heldout_accepted=combined, scene_space=scene_info)


@dataclass(frozen=True)
class SceneData:
    """Scene descriptors (device.grading.scenestats) for the third space: the training photos'
    (fit), the held-out photos' (threshold), and those of the held-out crops' own photos,
    row for row with the held-out images (the share all spaces accept together)."""

    fit: np.ndarray
    heldout: np.ndarray
    of_val_images: np.ndarray


def _fit_scene_space(stats: FeatureStats, scene: SceneData, each: float
                     ) -> tuple[FeatureStats, SceneSpaceInfo, np.ndarray]:
    """Fit and calibrate the scene space; returns the statistics with it, its card section
    and which held-out crops' photos it accepts."""
    if len(scene.fit) < 2 or len(scene.heldout) < 1:
        raise AbstentionFitError(f"the scene space needs training and held-out photos; got "
                                 f"{len(scene.fit)} and {len(scene.heldout)}")
    fitted, shrink = fit_scene_stats(scene.fit)
    threshold, accepted = calibrate_threshold(fitted.distances(scene.heldout), each)
    fitted = fitted.with_threshold(threshold)
    log.info("scene statistics: threshold %.3f accepts %.1f %% of %d held-out photos",
             threshold, 100 * accepted, len(scene.heldout))
    info = SceneSpaceInfo(descriptor_version=SCENE_VERSION, dim=SCENE_DIM, n_fit=len(scene.fit),
                          n_heldout=len(scene.heldout), shrinkage=round(float(shrink), 6),
                          threshold=threshold, heldout_accepted=accepted)
    return stats.with_scene(fitted), info, fitted.distances(scene.of_val_images) <= threshold


#: Training crops the image statistics are fitted on (a seeded sample when there are
#: more): with their blur variants, 400 crops give 2,000 rows for a 29-value Gaussian
#: (shrunk towards a diagonal by Ledoit-Wolf), and describing them costs about 3 ms a row.
IMAGE_FIT_MAX = 400
_image_space_memo: dict[str, tuple[Any, ImageSpaceInfo, np.ndarray]] = {}


def _fit_image_space(stats: FeatureStats, train_images: np.ndarray, val_images: np.ndarray,
                     each: float, blur_variants: bool = True
                     ) -> tuple[FeatureStats, ImageSpaceInfo, np.ndarray]:
    """Fit and calibrate device.grading.imagestats; returns the statistics with it, its card
    section and which held-out images it accepts. The same images give the same fit, so
    the signs of one pack (same split, same input size) reuse the first one's."""
    import hashlib

    key = hashlib.sha256()
    for part in (np.ascontiguousarray(train_images), np.ascontiguousarray(val_images)):
        key.update(repr(part.shape).encode())
        key.update(part.tobytes())
    key.update(repr((each, blur_variants)).encode())
    digest = key.hexdigest()
    if digest not in _image_space_memo:
        _image_space_memo.clear()
        _image_space_memo[digest] = _fit_image_space_now(train_images, val_images, each,
                                                         blur_variants)
    image, info, image_ok = _image_space_memo[digest]
    return stats.with_image(image), info, image_ok


def _fit_image_space_now(train_images: np.ndarray, val_images: np.ndarray,
                         each: float, blur_variants: bool = True
                         ) -> tuple[Any, ImageSpaceInfo, np.ndarray]:
    if len(train_images) > IMAGE_FIT_MAX:
        pick = np.sort(np.random.default_rng(0).permutation(len(train_images))[:IMAGE_FIT_MAX])
        train_images = train_images[pick]
    fit_rows = describe_many([v for im in train_images
                              for v in (variants(im) if blur_variants else [im])])
    image, shrink = fit_image_stats(fit_rows)
    val_dist = image.distances(describe_many(val_images))
    threshold, accepted = calibrate_threshold(val_dist, each)
    image = image.with_threshold(threshold)
    log.info("image statistics: threshold %.3f accepts %.1f %% of %d held-out images",
             threshold, 100 * accepted, len(val_images))
    info = ImageSpaceInfo(descriptor_version=DESCRIPTOR_VERSION, dim=DIM, n_fit=len(fit_rows),
                          shrinkage=round(float(shrink), 6), threshold=threshold,
                          heldout_accepted=accepted)
    return image, info, val_dist <= threshold


def fit_for_run(run: Any, tflite: Path, val_images: np.ndarray, *, threads: int = 2,
                load: Any = None, accept: float = DEFAULT_ACCEPT) -> AbstentionInfo:
    """``fit_abstention`` on a trainer.run.Run's own training split (one sign). ``load``:
    what reads the samples (default ``trainer.run.load_images``). Where every data root
    was cut by the device itself (convert.devicecrops), the training crops already are
    what the device grades, so the image space is fitted without the blur variants that
    stand in for the device's shrinking."""
    from convert.devicecrops import is_device_cut
    from trainer.run import load_images

    train = [s for s in run.train_samples() if s.grades.get(run.sign) is not None]
    images = (load or load_images)(train, run.image_size)  # the crop where a box is given
    device_cut = all(is_device_cut(root) for root in run.data_roots)
    return fit_abstention(tflite, images, [int(s.grades[run.sign]) for s in train], val_images,
                          threads=threads, accept=accept, blur_variants=not device_cut,
                          scene=scene_data_for(run))


def scene_data_for(run: Any) -> SceneData | None:
    """The scene descriptors of ``run``'s own photos, split as the run splits its patients;
    None unless its one data root recorded them (convert.devicecrops)."""
    from convert.devicecrops import load_scene_records

    if len(run.data_roots) != 1:
        return None
    records = load_scene_records(run.data_roots[0])
    if records is None:
        return None
    train, val = run.train_samples(), run.val_samples()
    row = {name: i for i, name in enumerate(records.names)}
    missing = [s for s in val if Path(s.path).name not in row]
    if missing:
        raise AbstentionFitError(f"{run.data_roots[0]}: scene descriptors lack {len(missing)} "
                                 f"held-out images (e.g. {Path(missing[0].path).name}); cut the "
                                 "data again with convert device-crops")
    return SceneData(
        fit=records.for_patients({str(s.patient_id) for s in train}),
        heldout=records.for_patients({str(s.patient_id) for s in val}),
        of_val_images=records.descriptors[[row[Path(s.path).name] for s in val]])
