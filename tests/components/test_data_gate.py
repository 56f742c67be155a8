import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2

from bad_records import example, write_records
from imgclf.components.data_gate import anomaly_findings, decide, render
from imgclf.components.drift import label_drift
from imgclf.imagedata.schema import curate
from imgclf.settings.data import DataConfig

CLEAN_IMAGE_REPORT = {"passed": True, "failures": [], "warnings": []}


def _frame(labels: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"image": [b"png"] * len(labels), "label": labels})


@pytest.fixture(scope="module")
def schema():
    inferred = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(_frame([0, 1, 2, 3])))
    return curate(inferred, DataConfig(), num_classes=4)


@pytest.fixture(scope="module")
def statistics(schema):
    """Statistics as StatisticsGen computes them: with the schema, so labels are categories."""
    options = tfdv.StatsOptions(schema=schema)
    return lambda labels: tfdv.generate_statistics_from_dataframe(_frame(labels), options)


def test_label_drift_is_tfdvs_l_infinity_distance(schema, statistics):
    train = statistics([0] * 25 + [1] * 25 + [2] * 25 + [3] * 25)
    assert label_drift(train, statistics([0, 1, 2, 3] * 5), schema, "label") == pytest.approx(0)
    # eval: 50% class 0 against 25% in train; the largest gap is 0.25.
    skewed = statistics([0] * 10 + [1] * 4 + [2] * 3 + [3] * 3)
    assert label_drift(train, skewed, schema, "label") == pytest.approx(0.25)


def test_label_drift_measures_without_changing_the_schema(schema, statistics):
    label = tfdv.get_feature(schema, "label")
    label_drift(statistics([0, 1]), statistics([1, 1]), schema, "label")
    assert not label.HasField("drift_comparator")


def test_label_drift_refuses_statistics_that_do_not_count_labels(schema, statistics):
    uncounted = tfdv.generate_statistics_from_dataframe(_frame([0, 1]))
    with pytest.raises(ValueError, match="The compared statistics hold no category counts"):
        label_drift(statistics([0, 1]), uncounted, schema, "label")


def _anomalies(**reasons) -> anomalies_pb2.Anomalies:
    found = anomalies_pb2.Anomalies()
    for feature, (reason, description) in reasons.items():
        info = found.anomaly_info[feature]
        info.description = description
        info.reason.add(type=reason)
    return found


def test_schema_anomalies_are_problems_and_new_features_only_notes():
    info = anomalies_pb2.AnomalyInfo
    found = {
        "train": _anomalies(
            label=(info.INT_TYPE_BIG_INT, "Values outside the domain"),
            photographer=(info.SCHEMA_NEW_COLUMN, "New column"),
        ),
        "eval": anomalies_pb2.Anomalies(),
    }
    problems, notes = anomaly_findings(found)
    assert problems == ["train: feature 'label': Values outside the domain"]
    assert notes == ["train: feature 'photographer': New column"]


def test_the_gate_fails_on_anomalies_or_a_failed_image_policy():
    passed, _ = decide([], [], CLEAN_IMAGE_REPORT, {"eval": 0.0}, 0.2, False)
    assert passed.passed
    failed_images = {"passed": False, "failures": ["train: 3 of 9 records are bad"], "warnings": []}
    verdict, _ = decide(["train: feature 'label': x"], [], failed_images, {}, 0.2, False)
    assert verdict.failures == ["train: feature 'label': x", "train: 3 of 9 records are bad"]


def test_label_drift_beyond_the_bound_warns_or_fails_if_so_configured():
    verdict, notes = decide([], ["a note"], CLEAN_IMAGE_REPORT, {"eval": 0.3}, 0.2, False)
    assert verdict.passed
    warning = "eval: label distribution differs from train by 0.300 (L-infinity), more than 0.200"
    assert verdict.warnings == [warning]
    strict, _ = decide([], [], CLEAN_IMAGE_REPORT, {"eval": 0.3}, 0.2, True)
    assert strict.failures == [warning]
    text = render(verdict, notes, {"eval": 0.3})
    assert text.splitlines() == [
        "Data validation: PASSED",
        f"  WARN: {warning}",
        "  NOTE: a note",
        "  label drift train -> eval: 0.300",
    ]


def test_the_curated_schema_requires_image_and_label_and_allows_extras(tmp_path):
    records = [example(b"png", label, f"r{label}", photographer=b"ann") for label in range(4)]
    path = tmp_path / "train.tfrecord"
    write_records(path, records)
    inferred = tfdv.infer_schema(tfdv.generate_statistics_from_tfrecord(str(path)))
    schema = curate(inferred, DataConfig(), num_classes=10)
    label, image = tfdv.get_feature(schema, "label"), tfdv.get_feature(schema, "image")
    assert (label.int_domain.min, label.int_domain.max) == (0, 9)
    assert label.int_domain.is_categorical
    assert image.HasField("image_domain")
    for required in (label, image):
        assert required.presence.min_fraction == 1.0
        assert (required.value_count.min, required.value_count.max) == (1, 1)
    for extra in ("id", "photographer"):
        feature = tfdv.get_feature(schema, extra)
        assert feature.presence.min_fraction == 0.0
        assert not feature.HasField("domain_info")
    assert not schema.string_domain


def test_curating_data_without_a_label_names_the_missing_feature():
    inferred = tfdv.infer_schema(
        tfdv.generate_statistics_from_dataframe(pd.DataFrame({"image": [b"png"]}))
    )
    with pytest.raises(ValueError, match="The data has no 'label' feature"):
        curate(inferred, DataConfig(), num_classes=2)
