"""The scan pipeline: capture -> quality -> crop -> resize -> grade each sign ->
abstain or not.

``Scanner.scan`` returns a ``ScanResult``; a failed quality check returns the
reasons and grades nothing. Errors a person must act on are raised as
``ScanError`` (bad image, no pack installed) or ``device.cameras.CameraError``.

Review rule (per sign; the scan needs review when any sign does). With p the
four grade probabilities and t = argmax p:
  1. unsure:  p[t] < grading.review_min_top_prob;
  2. split:   sum of p[g] over grades |g - t| >= 2 is >= grading.review_max_far_mass,
     i.e. the model also backs a grade that is not a neighbour of its answer
     (e.g. 0.55 "none" with 0.35 "moderate"), which a grader would not do.

Abstention (device.grading.abstain): when the pack carries statistics, each model's pooled
features are scored, and (packs fitted with them) the image statistics of the crop as
the model is fed (device.grading.imagestats); a crop beyond either threshold of any sign makes
the models abstain:
the result keeps no model grades (``signs`` is empty, ``abstained`` is True) and
staff grade the region themselves or retake. Where the photo showed little skin,
an abstention is reported as the quality check's "not skin" refusal instead
(device.vision.quality.confirm_skin).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

import device
from device.cameras.base import Camera
from device.colour.correct import ColourCorrection, correct_colour
from device.config import CropMode, DeviceConfig, GradingConfig
from device.core.errors import InvalidInput, NoPackInstalled
from device.core.imageio import PHOTO_FORMATS, ImageError, as_rgb, read_image
from device.core.scanrecord import CropChoice, QualityVerdict, Scan, SignGrade
from device.core.vocab import Grade, Sign
from device.grading.abstain import Abstention, FeatureStats, SignAbstention
from device.grading.imagestats import describe
from device.grading.models import ModelSet
from device.grading.scenestats import describe_scene
from device.vision.avoid import avoid_ground
from device.vision.crop import (
    CropError,
    CropGround,
    CropResult,
    choose_crop,
    crop_ground,
    crop_mode,
    cut,
)
from device.vision.faces import Faces
from device.vision.facework import FaceWorker, InlineFaces
from device.vision.frameviews import FrameViews
from device.vision.quality import (
    QualityMeasures,
    QualityReport,
    check_quality,
    confirm_skin,
    measure,
)

log = logging.getLogger(__name__)

STAGES = ("capture", "quality", "colour", "crop", "resize", "invoke", "abstain", "total")


class ScanError(InvalidInput):
    """A scan could not run: a bad image or no model pack. The message says what to do."""


class PackUnusableError(ScanError, NoPackInstalled):
    """Packs are installed but none could be loaded: the message says which and why."""


class NoPackError(ScanError, NoPackInstalled):
    """No model pack is installed, so the scan cannot grade (a 503 on the web)."""


@dataclass
class SignResult:
    sign: Sign
    grade: Grade
    probs: list[float]
    review: bool
    review_reasons: list[str] = field(default_factory=list)
    invoke_ms: float = 0.0

    def record(self) -> SignGrade:
        return SignGrade(self.grade, tuple(round(float(p), 4) for p in self.probs), self.review,
                         tuple(self.review_reasons), round(self.invoke_ms, 3))

    def to_dict(self) -> dict:
        return self.record().to_dict()


@dataclass
class ScanResult:
    quality: QualityReport
    crop: CropResult | None
    signs: dict[Sign, SignResult]
    timings_ms: dict[str, float]
    pack_version: str | None
    image_size: tuple[int, int]
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc)
                         .isoformat(timespec="seconds"))
    #: The frame and the crop (RGB uint8), for the store and the dashboard; not in to_dict.
    image: np.ndarray | None = field(default=None, repr=False)
    crop_image: np.ndarray | None = field(default=None, repr=False)
    #: None until the models ran (quality refusal); see device.grading.abstain.
    abstention: Abstention | None = None
    #: Faces found in the frame (full-frame pixels), for blurring the stored frame.
    faces: Faces | None = field(default=None, repr=False)
    #: The colour step (device.colour.correct); None only for a result built by hand.
    colour: ColourCorrection | None = None

    @property
    def abstained(self) -> bool:
        return self.abstention is not None and self.abstention.abstained

    @property
    def graded(self) -> bool:
        return bool(self.signs)

    @property
    def review(self) -> bool:
        return any(s.review for s in self.signs.values())

    def grades(self) -> dict[Sign, Grade]:
        return {sign: s.grade for sign, s in self.signs.items()}

    def record(self) -> Scan:
        """The result as the typed record the store keeps and the JSON API answers."""
        quality = self.quality.to_dict()
        crop = self.crop
        return Scan(
            quality=QualityVerdict(quality["ok"], tuple(quality["reasons"]),
                                   tuple(quality["issues"]), quality["measures"]),
            crop=None if crop is None else CropChoice(
                tuple(int(v) for v in crop.box), crop.mode, crop.requested, crop.fallback,
                crop.reason, None if crop.score is None else float(crop.score), crop.doubt),
            grades={sign: s.record() for sign, s in self.signs.items()},
            timings_ms={k: round(v, 3) for k, v in self.timings_ms.items()},
            pack_version=self.pack_version, software_version=device.__version__,
            created=self.created, image_size=(int(self.image_size[0]), int(self.image_size[1])),
            abstained=self.abstained,
            abstention_score=(None if self.abstention is None or self.abstention.score is None
                              else round(self.abstention.score, 4)),
            abstention=self.abstention.to_dict() if self.abstention else None,
            colour=self.colour.to_dict() if self.colour else None)

    def to_dict(self) -> dict:
        return self.record().to_dict()


def review_reasons(probs: np.ndarray, grading: GradingConfig) -> list[str]:
    """Why a sign's probabilities need a person's review (empty: none); see module doc."""
    top = int(np.argmax(probs))
    reasons = []
    if probs[top] < grading.review_min_top_prob:
        reasons.append(f"unsure: top probability {probs[top]:.2f} < "
                       f"{grading.review_min_top_prob:g}")
    far = float(sum(p for g, p in enumerate(probs) if abs(g - top) >= 2))
    if far >= grading.review_max_far_mass:
        reasons.append(f"split: {far:.2f} of the probability is on grades two or more "
                       f"steps from {Grade(top).label}")
    return reasons


#: The shortest side a scan grades; anything smaller is not a photo of a lesion.
MIN_PHOTO_SIDE = 8


def check_image(image: np.ndarray, origin: str = "image") -> np.ndarray:
    """``image`` as a scan grades it (``device.core.imageio.as_rgb``: RGB, or RGBA with the
    alpha dropped, uint8, within the pixel limit), or a ScanError saying what is wrong."""
    try:
        return as_rgb(image, origin, min_side=MIN_PHOTO_SIDE)
    except ImageError as exc:
        raise ScanError(str(exc)) from exc


def read_photo(source: Path | bytes, what: str) -> np.ndarray:
    """The one reading of a photo to grade, shared by the CLI and the dashboard: a colour
    JPEG or PNG, EXIF orientation applied, trailing bytes after a JPEG accepted. Raises
    ImageError (a format, size or damage refusal, or a greyscale photo)."""
    return read_image(source, what=what, formats=PHOTO_FORMATS, allow_grey=False)


def load_image_file(path: Path | str) -> np.ndarray:
    """Read an image file to RGB uint8, or raise ScanError saying what is wrong with it."""
    path = Path(path)
    try:
        decoded = read_photo(path, str(path))
    except ImageError as exc:
        raise ScanError(str(exc)) from exc
    return check_image(decoded, str(path))


@dataclass(frozen=True)
class FrameLook:
    """What the scan makes of a frame before it crops: the preview, the colour step,
    the shared views (device.vision.frameviews) and the faces (full-frame pixels)."""

    preview: np.ndarray
    colour: ColourCorrection
    views: FrameViews
    faces: Faces
    measures: QualityMeasures
    #: What the auto crop reads that needs no faces, made while the faces were looked for
    #: (device.vision.crop.crop_ground); None when it was not made ahead.
    ground: CropGround | None = None
    #: What ``look_at``'s ``describe`` made of the views, on the face worker (None: not asked).
    described: Future | None = None


def look_at(image: np.ndarray, config: DeviceConfig, timings: dict[str, float] | None = None,
            *, faces: FaceWorker | None = None, crop_ahead: bool = False,
            describe: Callable[[FrameViews], object] | None = None) -> FrameLook:
    """The scan's first look at ``image`` (RGB uint8); adds to ``timings``' quality, colour
    and crop stages when given. ``faces``: the worker the face search runs on (a scan's
    own; None looks for them in line, with the same result); ``crop_ahead``: make the auto
    crop's face-free ground, its avoid masks on the worker; ``describe``: also run on the
    worker, on the final views (FrameLook.described). The demo's training crops are
    cut through this too (convert.devicecrops), so the graders learn from what the scan
    feeds them."""
    timings = timings if timings is not None else dict.fromkeys(STAGES, 0.0)
    worker = faces or InlineFaces()
    t = time.perf_counter()
    # One scaled-down copy of the frame for the quality measures and the auto crop,
    # and the frame looked at once (device.vision.frameviews): one preview, one tiny
    # copy, one skin mask and one CIELAB for faces, skin share, texture and the crop.
    views = FrameViews.of(image)

    def on_worker(v: FrameViews) -> list[Future | None]:
        """The work that reads only the tiny copy's views, queued on the worker: the
        faces first, then the crop's avoid masks and the caller's description, while
        this thread searches the colour card, measures the quality and scores the body."""
        return [worker.start(v.tiny, image.shape[0]),
                worker.run(lambda: avoid_ground(v.lab, v.skin)) if crop_ahead else None,
                worker.run(lambda: describe(v)) if describe is not None else None]

    jobs = on_worker(views)
    timings["quality"] += _ms_since(t)
    # Colour first (device.colour.correct): the card is found on the preview, and the
    # quality measures, the crop and the models see corrected colours (skin under a
    # warm lamp is skin); the stored frame stays as taken, the correction beside it.
    t = time.perf_counter()
    colour = correct_colour(image, config.colour, preview=views.preview,
                            preview_grey=views.preview_grey)
    if colour.corrected:  # new views, and the worker's work done again on them
        for job in jobs:
            if job is not None:
                job.cancel()  # those not started yet
        views = FrameViews.of(image, preview=colour.apply(views.preview))
        jobs = on_worker(views)
    faces_job, avoid_job, described = jobs
    timings["colour"] += _ms_since(t)
    t = time.perf_counter()
    measures = measure(image, views=views)
    timings["quality"] += _ms_since(t)
    t = time.perf_counter()
    ground = crop_ground(views, avoid_job.result) if avoid_job is not None else None
    timings["crop"] += _ms_since(t)
    t = time.perf_counter()
    found = faces_job.result()
    timings["quality"] += _ms_since(t)
    return FrameLook(views.preview, colour, views, found, measures, ground, described)


def cut_lesion(image: np.ndarray, look: FrameLook, config: DeviceConfig, *,
               mode: CropMode | None = None, box: tuple[float, ...] | None = None,
               timings: dict[str, float] | None = None) -> tuple[CropResult, np.ndarray]:
    """The crop box and the cut patch (colour-corrected like the preview) the models
    grade; adds to ``timings``' crop and colour stages when given."""
    timings = timings if timings is not None else dict.fromkeys(STAGES, 0.0)
    t = time.perf_counter()
    try:
        crop = choose_crop(image, config.crop, mode=mode,
                           box=tuple(box) if box is not None else None,  # type: ignore[arg-type]
                           faces=look.faces, views=look.views, ground=look.ground)
    except CropError as exc:
        raise ScanError(str(exc)) from exc
    patch = cut(image, crop.box)
    timings["crop"] += _ms_since(t)
    if look.colour.corrected:
        t = time.perf_counter()
        patch = look.colour.apply(patch)
        timings["colour"] += _ms_since(t)
    return crop, patch


def model_input(patch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The cut patch as a model of input ``size`` (height, width) is fed: INTER_AREA,
    as the trainer's load_image resizes."""
    h, w = size
    return cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA)


class Scanner:
    """Runs one scan; collaborators (camera, models) are handed in so tests use fakes."""

    def __init__(self, config: DeviceConfig, camera: Camera | None = None,
                 models: ModelSet | None = None, faces: FaceWorker | None = None) -> None:
        self.config = config
        self.camera = camera
        self.models = models
        #: Why ``models`` is None when a pack is installed (device.grading.models.ModelSetError
        #: from the service's last load); None: nothing installed, or models loaded.
        self.load_failure: Exception | None = None
        #: Looks for each frame's faces on a worker thread (device.vision.facework).
        self._faces = faces or FaceWorker()

    def no_models_error(self) -> ScanError:
        """Why nothing can be graded: no pack installed, or installed packs that failed."""
        from device.grading.models import NoPackDirError, PacksFailedError

        failure = self.load_failure
        flash = "flash a pack that passes them: python -m device flash PACK"
        if isinstance(failure, PacksFailedError):
            return PackUnusableError(f"both installed model packs failed their checks, so "
                                     f"nothing can be graded ({failure}); {flash}")
        if failure is not None and not isinstance(failure, NoPackDirError):
            return PackUnusableError(f"the installed model pack failed its checks, so nothing "
                                     f"can be graded ({failure}); {flash}")
        return NoPackError("no model pack is installed; install one with "
                           "python -m device flash PACK")

    def scan(self, image: np.ndarray | None = None, box: tuple[float, ...] | None = None,
             mode: CropMode | None = None) -> ScanResult:
        """Scan ``image`` (RGB uint8), or a frame from the camera when it is None."""
        timings = dict.fromkeys(STAGES, 0.0)
        start = time.perf_counter()
        if image is None:
            if self.camera is None:
                raise ScanError("no camera is configured; give an image instead")
            image = self.camera.read()
            timings["capture"] = _ms_since(start)
        image = check_image(image)
        models = self.models  # one reference: a reload mid-scan does not mix packs

        box_given = tuple(box) if box is not None else None
        auto = crop_mode(self.config.crop, mode, box_given) is CropMode.AUTO
        look = look_at(image, self.config, timings, faces=self._faces, crop_ahead=auto,
                       describe=scene_describer(models))
        faces = look.faces
        t = time.perf_counter()
        quality = check_quality(image, self.config.quality, views=look.views, faces=faces,
                                measures=look.measures)
        timings["quality"] += _ms_since(t)
        result = ScanResult(quality=quality, crop=None, signs={}, timings_ms=timings,
                            pack_version=models.pack_version if models else None,
                            image_size=image.shape[:2], image=image, faces=faces,
                            colour=look.colour)
        if not quality.ok:
            timings["total"] = _ms_since(start)
            return result
        if models is None:
            raise self.no_models_error()

        crop, patch = cut_lesion(image, look, self.config, mode=mode, box=box, timings=timings)
        result.crop = crop
        result.crop_image = patch

        self._grade(models, patch, result, look.described)
        if result.abstained:
            result.signs = {}  # the models abstain: no model grades are shown or saved
            result.quality = confirm_skin(result.quality, self.config.quality)
        timings["total"] = _ms_since(start)
        return result

    def _grade(self, models: ModelSet, patch: np.ndarray, result: ScanResult,
               scene: Future | None = None) -> None:
        """Grade ``patch`` with each sign's model and score its features (abstention);
        ``scene``: the frame's scene descriptor (``scene_describer``), for the scene space."""
        timings = result.timings_ms
        inputs: dict[tuple[int, int], np.ndarray] = {}
        described: dict[tuple[int, int], np.ndarray] = {}  # device.grading.imagestats, once per input
        t = time.perf_counter()  # made on the face worker; waited for before the invokes
        scene = SceneOnce(scene.result() if scene is not None else None)
        timings["abstain"] += _ms_since(t)
        scores: dict[str, SignAbstention] = {}
        for sign_model in models:
            h, w = sign_model.model.input_size
            t = time.perf_counter()
            if (h, w) not in inputs:  # signs with the same input size share one resize
                inputs[(h, w)] = model_input(patch, (h, w))
            timings["resize"] += _ms_since(t)
            t = time.perf_counter()
            if sign_model.stats is not None:  # features only where there is something to score
                probs, feats = sign_model.model.predict_with_features(inputs[(h, w)])
            else:
                probs, feats = sign_model.model.predict(inputs[(h, w)]), None
            invoke = _ms_since(t)
            timings["invoke"] += invoke
            if sign_model.stats is not None and feats is not None:
                t = time.perf_counter()
                scores[sign_model.sign.value] = scene.add(
                    sign_model.stats, _score(sign_model.stats, feats, inputs[(h, w)], described, (h, w)))
                timings["abstain"] += _ms_since(t)
            reasons = review_reasons(probs, self.config.grading)
            result.signs[sign_model.sign] = SignResult(
                sign_model.sign, Grade(int(np.argmax(probs))), [float(p) for p in probs],
                bool(reasons), reasons, invoke)
        result.abstention = Abstention(checked=models.can_abstain, signs=scores,
                                       pack_version=models.pack_version)


def _score(stats: FeatureStats, feats: np.ndarray, model_input: np.ndarray,
           described: dict[tuple[int, int], np.ndarray], size: tuple[int, int]) -> SignAbstention:
    """Both spaces' distances of one sign: the pooled features, and (packs that carry
    them) the image statistics of the crop exactly as the model was fed."""
    image = stats.image
    if image is None:
        return SignAbstention(stats.distance(feats), stats.threshold)
    if size not in described:
        described[size] = describe(model_input)
    return SignAbstention(stats.distance(feats), stats.threshold,
                          image.distance_of(described[size]), image.threshold)


def scene_describer(models: ModelSet | None) -> Callable[[FrameViews], np.ndarray] | None:
    """What describes a frame's shared tiny view for the scene space
    (device.grading.scenestats), once per scan: None when no sign's statistics have one."""
    if models is None or not any(sm.stats is not None and sm.stats.scene is not None
                                 for sm in models):
        return None
    return lambda v: describe_scene(v.tiny, v.skin, v.lab, v.saturation)


class SceneOnce:
    """The scene space (device.grading.scenestats) of one scan: the frame's descriptor
    (``scene_describer``; None when the pack has no scene statistics)."""

    def __init__(self, descriptor: np.ndarray | None) -> None:
        self.descriptor = descriptor

    def add(self, stats: FeatureStats, score: SignAbstention) -> SignAbstention:
        """``score`` with the scene's distance and threshold added (as is without statistics)."""
        if stats.scene is None or self.descriptor is None:
            return score
        return replace(score, scene_distance=stats.scene.distance_of(self.descriptor),
                                   scene_threshold=stats.scene.threshold)


def _ms_since(t: float) -> float:
    return (time.perf_counter() - t) * 1000.0
