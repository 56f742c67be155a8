"""The data report's web page, from an assessment as the DataGate makes it, seen in a browser."""

from browser import look_at
from imgclf.components.data_gate import Assessment
from imgclf.components.data_report import LISTED_BAD, render_data_page
from imgclf.components.drift import SpanDrift
from imgclf.components.duplicates import Duplicates
from imgclf.components.inspection import Finding, SplitSummary, Verdict

CLASSES = ["cat", "dog"]


def _summary(good: int, bad: int) -> dict:
    summary = SplitSummary()
    for index in range(good):
        summary.add(Finding(f"part-0:{index}", f"good-{index}", index % 2, 32, 40, 3, "jpeg"))
    for index in range(bad):
        summary.add(
            Finding(f"part-1:{index}", f"bad-{index}", problem="not an image", kind="undecodable")
        )
    return summary.to_dict()


# An eval image also in train, and a train image under both labels.
COPIES = [
    [("train", 0, "train/a[0]", "cat/1.png"), ("eval", 0, "eval/b[3]", "cat/1-copy.bmp")],
    [("train", 0, "train/a[1]", "cat/2.png"), ("train", 1, "train/a[7]", "dog/2.png")],
]


def _assessment(passed: bool, bad: int = 2, span: SpanDrift | None = None, copies=()) -> Assessment:
    verdict = Verdict(failures=[] if passed else ["train: 2 of 12 records are bad (16.7%)"])
    return Assessment(
        verdict=verdict,
        notes=["train: feature 'extra' is not in the schema"],
        label_drift={"eval": 0.125},
        span=span,
        image_report={
            "class_names": CLASSES,
            "splits": {"train": _summary(10, bad), "eval": _summary(4, 0)},
            "duplicates": Duplicates.from_groups(copies).to_dict(),
        },
    )


def test_a_rejected_dataset_s_page_names_every_bad_record(tmp_path):
    text = render_data_page(_assessment(passed=False))
    assert "Rejected: nothing is trained on this data." in text
    assert "train: 2 of 12 records are bad (16.7%)" in text
    for index in range(2):
        assert f"bad-{index}" in text and f"part-1:{index}" in text
    assert "No served model of an earlier span to compare with." in text
    assert "Every image is found once." in text


def test_a_long_list_of_bad_records_says_how_many_it_shows():
    found = _assessment(passed=False, bad=LISTED_BAD + 5)
    text = render_data_page(found)
    assert f"The first {LISTED_BAD} of {LISTED_BAD + 5}." in text
    in_order = [record["id"] for record in found.image_report["splits"]["train"]["bad"]]
    assert f">{in_order[LISTED_BAD - 1]}<" in text and f">{in_order[LISTED_BAD]}<" not in text


def test_a_browser_shows_counts_classes_and_drift(tmp_path):
    span = SpanDrift(previous_span=3, label_drift=0.05, image_changes={"formats": 0.0})
    page = tmp_path / "page.html"
    page.write_text(render_data_page(_assessment(passed=True, span=span, copies=COPIES)))
    seen = look_at(str(page), screenshot="data_report_unit.png")
    assert seen.broken == []
    lines = seen.text.splitlines()
    assert "Passed: training may use this data." in lines
    assert "train\t12\t10\t2\t32-32 x 40-40 px\tjpeg: 10\t3: 10" in lines
    assert "cat\t5\t2" in lines and "dog\t5\t2" in lines  # good images per class and split
    assert "train -> eval\t0.125" in lines
    assert "Against span 3, which the served model learnt:" in lines
    assert "train: feature 'extra' is not in the schema" in lines
    assert "Images found more than once (the same pixels): 2; the first 2 are listed." in lines
    assert "eval images also in train\t1" in lines
    assert "images under different labels\t1" in lines
    assert "1\teval\tcat/1-copy.bmp\teval/b[3]\tcat" in lines
    assert "2\ttrain\tdog/2.png\ttrain/a[7]\tdog" in lines
