"""evaluate-photos: a photo's verdict is a PhotoVerdict; its JSON and the totals say the
same words as before."""

from __future__ import annotations

from pathlib import Path

from device.tools.photoeval import PhotoResult, PhotoVerdict, totals


def test_verdicts_are_typed_and_counted():
    results = [PhotoResult(Path(f"{v.value}.jpg"), f"{v.value}.jpg", v) for v in PhotoVerdict]
    results.append(PhotoResult(Path("b.jpg"), "b.jpg", PhotoVerdict.GRADED))
    assert [r.to_dict()["verdict"] for r in results] == [
        "graded", "abstained", "refused", "error", "graded"]
    assert results[2].line() == "refused.jpg: refused"
    t = totals(results)
    assert (t["photos"], t["accepted"], t["abstained"], t["refused_by_quality"],
            t["unreadable_or_bad_input"]) == (5, 2, 1, 1, 1)
    assert t["refused_or_abstained_share"] == 3 / 5
