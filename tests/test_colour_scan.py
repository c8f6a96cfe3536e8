"""The colour card in a scan: corrected before the crop and the models, uncorrected
without a card or with a damaged one, kept by the store (schema 5), shown in the
export, hinted when a profile requires it; the printable card is found by the device."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from device_pack import tiny_pack_dir, tiny_packs_dir
from PIL import Image
from store_support import drop_column, make_older, one_scan_store

from device.cameras.synthetic import render_skin_frame
from device.colour.card import CardKind, write_printable
from device.colour.detect import find_card
from device.colour.record import ColourStatus
from device.colour.scene import Light, capture, place_card, random_crosstalk
from device.config import ColourConfig, CropConfig, DeviceConfig, QualityConfig
from device.core.vocab import Region
from device.export.rows import ExportRow, manifest_record
from device.grading.models import ModelSet
from device.scan.pipeline import Scanner
from device.store import Store
from device.store.schema import SCHEMA_VERSION, Capture
from device.vision.hints import Hint, HintEngine

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def models():
    return ModelSet.from_pack_dir(tiny_pack_dir(), threads=1)


def config(**colour) -> DeviceConfig:
    return DeviceConfig.model_validate({"version": 1, "packs": {"dir": str(tiny_packs_dir())},
                                        "colour": colour})


def warm_photo(seed: int, kind: CardKind | None, **options):
    rng = np.random.default_rng(seed)
    frame, box = render_skin_frame(rng, 640, 480)
    if kind is not None:
        frame, _ = place_card(rng, frame, kind, box, **options)
    return capture(rng, frame, Light(3000, -0.3, random_crosstalk(rng))), box


def test_a_card_corrects_what_the_models_see_but_not_the_kept_frame(models):
    photo, box = warm_photo(1, CardKind.CHART)
    on = Scanner(config(), None, models).scan(photo, box=box)
    off = Scanner(config(correct=False), None, models).scan(photo, box=box)
    assert on.colour.status is ColourStatus.CORRECTED and on.colour.card is CardKind.CHART
    assert off.colour.status is ColourStatus.OFF
    assert on.graded  # (without correction this warm photo hardly looks like skin)
    assert np.array_equal(on.image, photo)  # the frame is kept as taken, the correction beside it
    # The warm cast is taken out of the crop the models graded: red falls against blue.
    x, y, w, h = on.crop.box
    raw = photo[y:y + h, x:x + w].astype(float)
    graded = on.crop_image.astype(float)
    assert graded[..., 0].mean() / graded[..., 2].mean() < 0.8 * raw[..., 0].mean() / raw[
        ..., 2].mean()
    data = on.to_dict()
    assert data["colour"]["corrected"] is True and len(data["colour"]["matrix"]) == 3
    assert data["timings_ms"]["colour"] > 0


@pytest.mark.parametrize(("kind", "options", "status"), [
    (None, {}, ColourStatus.NO_CARD),
    (CardKind.PRINTED, {"damage": 0.6}, ColourStatus.UNTRUSTED),
])
def test_without_a_trusted_card_the_scan_is_graded_as_before(models, kind, options, status):
    photo, box = warm_photo(2, kind, **options)
    on = Scanner(config(), None, models).scan(photo, box=box)
    off = Scanner(config(correct=False), None, models).scan(photo, box=box)
    assert on.colour.status is status and not on.colour.corrected
    assert np.array_equal(on.crop_image, off.crop_image)
    assert on.grades() == off.grades()
    message = on.to_dict()["colour"]["message"]
    assert message == "no colour reference" if kind is None else \
        "graded without colour correction" in message


def test_the_store_keeps_the_correction_and_the_export_carries_it(tmp_path, models):
    photo, box = warm_photo(3, CardKind.PRINTED)
    result = Scanner(config(), None, models).scan(photo, box=box)
    s = Store(tmp_path, clock=lambda: T0)
    s.create_patient("P1", 1990)
    visit = s.open_visit("P1")
    scan = s.save_region_scan(visit.id, Region.TRUNK, grades=result.grades(),
                              capture=Capture(frame=photo, box=box, colour=result.colour))
    again = s.get_scan(scan.id)
    assert again.colour == result.colour and again.colour_corrected
    plain = s.save_region_scan(visit.id, Region.HEAD_NECK, grades=result.grades())
    assert plain.colour is None and not plain.colour_corrected
    history = s.patient_history("P1")
    assert history[0].colour_checked == 1 and history[0].colour_corrected == 1
    rec = manifest_record(ExportRow(again, "P1", visit.date, 1990), "crops/x.png", "")
    assert rec["colour_status"] == "corrected" and rec["colour_card"] == "printed"
    matrix = np.array([float(v) for v in rec["colour_matrix"].split()]).reshape(3, 3)
    assert matrix == pytest.approx(result.colour.array(), rel=1e-4)
    s.close()


def test_a_version_4_database_gains_the_colour_column(tmp_path):
    old = one_scan_store(tmp_path, clock=lambda: T0)
    make_older(tmp_path, 4, drop_column("colour"))
    s = Store(tmp_path, clock=lambda: T0)
    assert s._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert s.get_scan(old.id).colour is None
    s.close()


def test_a_profile_that_requires_the_card_hints_until_it_is_in_view():
    with_card, _ = warm_photo(4, CardKind.PRINTED)
    without, _ = warm_photo(4, None)
    engine = HintEngine(QualityConfig(min_sharpness=0), CropConfig(),
                        colour=ColourConfig(require_card=True))
    assert Hint.NO_COLOUR_CARD in engine.compute(without).hints
    assert Hint.NO_COLOUR_CARD not in engine.compute(with_card).hints
    relaxed = HintEngine(QualityConfig(min_sharpness=0), CropConfig(), colour=ColourConfig())
    assert Hint.NO_COLOUR_CARD not in relaxed.compute(without).hints
    assert Hint.NO_COLOUR_CARD.text == "Colour card not in view"


def test_the_printable_card_is_found_by_the_device(tmp_path):
    png, pdf = write_printable(tmp_path / "card", dpi=150)
    assert pdf.read_bytes()[:5] == b"%PDF-" and png.stat().st_size > 0
    page = np.asarray(Image.open(png).convert("RGB"))
    rng = np.random.default_rng(0)
    frame, box = render_skin_frame(rng, 1024, 768)
    small = np.asarray(Image.fromarray(page).resize((400, round(400 * page.shape[0]
                                                              / page.shape[1]))))
    frame[20:20 + small.shape[0], 600:1000] = small
    found = find_card(frame, kinds=(CardKind.PRINTED,))
    assert found is not None and found.kind is CardKind.PRINTED
    assert np.isfinite(found.patches).all()


def test_bench_colour_prints_and_writes_its_figures(tmp_path, capsys):
    from device.__main__ import main

    out = tmp_path / "colour.json"
    assert main(["bench-colour", "--n", "2", "--pack", str(tiny_pack_dir()),
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    for key in ("same_grade_corrected", "same_grade_uncorrected", "median_delta_e",
                "card_found"):
        assert key in report
    assert report["card_found"] == 1.0 and report["median_delta_e"] < 3.0
    assert report["photos"] == 8 and report["colour_ms"] > 0
    assert "same erythema grade under every light" in capsys.readouterr().out


def test_after_a_correction_the_face_worker_redoes_its_work_on_the_corrected_views():
    from device.scan.pipeline import look_at
    from device.vision.avoid import avoid_ground
    from device.vision.facework import FaceWorker
    from device.vision.frameviews import FrameViews

    photo, _ = warm_photo(1, CardKind.CHART)
    worker = FaceWorker()
    try:  # the worker is queued with the frame's own views first, then corrected ones
        look = look_at(photo, config(), faces=worker, crop_ahead=True,
                       describe=lambda views: views.tiny.copy())
        described = look.described.result(timeout=60)
    finally:
        worker.close()
    assert look.colour.status is ColourStatus.CORRECTED
    as_taken = FrameViews.of(photo)
    assert not np.array_equal(look.views.tiny, as_taken.tiny)
    # What the scan reads was made from the corrected colours, not the warm frame's.
    assert np.array_equal(described, look.views.tiny)
    expected = avoid_ground(look.views.lab, look.views.skin)
    assert look.ground is not None and look.ground.avoid is not None
    assert np.array_equal(look.ground.avoid.skin, expected.skin)
    assert np.array_equal(look.ground.avoid.overlay, expected.overlay)
    assert not np.array_equal(expected.skin, avoid_ground(as_taken.lab, as_taken.skin).skin)
