"""Drift: how far one split's labels, or a new span's images, are from another's.

Labels: TFDV's L-infinity comparator on the label distributions of the two
spans' statistics. Images: from the image validator's reports, the relative
change of the smallest and largest height and width, and the L-infinity
distance of the shares of image formats and of channel counts. The data gate
reports both and, beyond the configured bounds, warns or fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

TRAIN = "train"
SIDES = ("min_height", "max_height", "min_width", "max_width")


def label_drift(
    train: statistics_pb2.DatasetFeatureStatisticsList,
    other: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    label_key: str,
) -> float:
    """L-infinity distance between two splits' label distributions, as TFDV measures it.

    TFDV compares category counts, which statistics hold only when they were
    computed with a schema that marks the label categorical (StatisticsGen's are).
    """
    for name, stats in (("train", train), ("compared", other)):
        if not _counts_categories(stats, label_key):
            raise ValueError(
                f"The {name} statistics hold no category counts for '{label_key}': compute "
                "them with the curated schema, where the label is categorical."
            )
    with_comparator = schema_pb2.Schema()
    with_comparator.CopyFrom(schema)
    comparator = tfdv.get_feature(with_comparator, label_key).drift_comparator
    comparator.infinity_norm.threshold = 1.0  # measure only; the gate judges
    found = tfdv.validate_statistics(other, with_comparator, previous_statistics=train)
    for info in found.drift_skew_info:
        if info.path.step == [label_key]:
            return max(measurement.value for measurement in info.drift_measurements)
    raise ValueError(f"TFDV measured no drift for '{label_key}': is it categorical in the schema?")


def _counts_categories(
    statistics: statistics_pb2.DatasetFeatureStatisticsList, feature: str
) -> bool:
    return any(
        list(stats.path.step) == [feature] and stats.HasField("string_stats")
        for dataset in statistics.datasets
        for stats in dataset.features
    )


@dataclass
class SpanDrift:
    previous_span: int
    label_drift: float
    image_changes: dict[str, float] = field(default_factory=dict)

    def findings(self, max_label_drift: float, max_image_change: float) -> list[str]:
        found = []
        if self.label_drift > max_label_drift:
            found.append(
                f"train: label distribution differs from span {self.previous_span}'s by "
                f"{self.label_drift:.3f} (L-infinity), more than {max_label_drift:.3f}"
            )
        for name, change in self.image_changes.items():
            if change > max_image_change:
                found.append(
                    f"train: images' {name.replace('_', ' ')} changed by {change:.3f} from span "
                    f"{self.previous_span}'s, more than {max_image_change:.3f}"
                )
        return found

    def lines(self) -> list[str]:
        changes = ", ".join(f"{name} {value:.3f}" for name, value in self.image_changes.items())
        return [
            f"label drift span {self.previous_span} -> this span (train): {self.label_drift:.3f}",
            f"image changes from span {self.previous_span} (train): {changes}",
        ]

    def to_dict(self) -> dict:
        return asdict(self)


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: count / total for key, count in counts.items()} if total else {}


def share_distance(before: dict[str, int], after: dict[str, int]) -> float:
    """L-infinity distance of two count tables' shares."""
    old, new = _shares(before), _shares(after)
    return max((abs(old.get(k, 0.0) - new.get(k, 0.0)) for k in {*old, *new}), default=0.0)


def image_changes(before: dict, after: dict) -> dict[str, float]:
    """Relative size changes and share distances between two splits' image summaries."""
    changes = {
        side: abs(after[side] - before[side]) / before[side]
        for side in SIDES
        if before.get(side) and after.get(side) is not None
    }
    changes["formats"] = share_distance(before.get("formats", {}), after.get("formats", {}))
    changes["channels"] = share_distance(before["channels"], after["channels"])
    return changes


def span_drift(
    previous_span: int,
    previous_statistics: statistics_pb2.DatasetFeatureStatisticsList,
    statistics: statistics_pb2.DatasetFeatureStatisticsList,
    previous_report: dict,
    report: dict,
    schema: schema_pb2.Schema,
    label_key: str,
) -> SpanDrift:
    return SpanDrift(
        previous_span=previous_span,
        label_drift=label_drift(previous_statistics, statistics, schema, label_key),
        image_changes=image_changes(previous_report["splits"][TRAIN], report["splits"][TRAIN]),
    )
