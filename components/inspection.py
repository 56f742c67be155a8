"""What the image validator finds in each record, per split, and what the policy says of it.

Plain Python over serialized tf.Examples, so that it is tested without Beam
and runs the same on any Beam runner.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from imgclf.imagedata.decode import TOO_LARGE, header_size, op_message
from imgclf.imagedata.orientation import UPRIGHT, orientation
from imgclf.settings.checks import ValidationConfig

# How many bad records the text report lists per split; the JSON lists them all.
LISTED_IN_TEXT = 20


@dataclass(frozen=True)
class Finding:
    """One record: where it is, its label, its image's size, or what is wrong with it."""

    location: str
    record_id: str
    label: int | None = None
    height: int = 0
    width: int = 0
    channels: int = 0
    format: str = ""
    problem: str | None = None  # what is wrong with this record
    kind: str | None = None  # the kind of problem, for counting
    fingerprint: str = ""  # of the decoded pixels, to find the same image elsewhere
    turned: bool = False  # stored turned: its EXIF orientation tag says how to view it


def feature_kinds(schema: schema_pb2.Schema) -> dict[str, str]:
    """The tf.train.Feature kind each feature of the schema must have."""
    kinds = {
        schema_pb2.BYTES: "bytes_list",
        schema_pb2.INT: "int64_list",
        schema_pb2.FLOAT: "float_list",
    }
    return {
        feature.name: kinds[feature.type] for feature in schema.feature if feature.type in kinds
    }


def inspect_record(
    serialized: bytes,
    location: str,
    kinds: dict[str, str],
    image_key: str,
    label_key: str,
    num_classes: int,
    min_image_size: int,
    max_image_pixels: int,
) -> Finding:
    """Parses and decodes one record; the first problem found, if any, is named.

    `kinds` (from `feature_kinds`) are checked for every feature the record
    has: TFDV cannot read a split whose records disagree on a feature's type.
    """
    try:
        features = tf.train.Example.FromString(serialized).features.feature
    except Exception:  # protobuf raises its own DecodeError
        return Finding(location, "", problem="not a tf.Example", kind="not a tf.Example")
    record_id = _record_id(features)

    def bad(kind: str, problem: str) -> Finding:
        return Finding(location, record_id, problem=problem, kind=kind)

    for name, expected in kinds.items():
        found = features[name].WhichOneof("kind") if name in features else None
        if found not in (None, expected):
            return bad("wrong type", f"'{name}' holds a {found}; the schema says {expected}")
    label_feature = features.get(label_key)
    if label_feature is None or label_feature.WhichOneof("kind") is None:
        return bad("no label", f"no '{label_key}' feature")
    labels = label_feature.int64_list.value
    if len(labels) != 1:
        return bad("not one label", f"'{label_key}' holds {len(labels)} values, not 1")
    label = int(labels[0])
    if not 0 <= label < num_classes:
        return bad("label out of range", f"label {label} is outside [0, {num_classes - 1}]")

    if image_key not in features:
        return bad("no image", f"no '{image_key}' feature")
    images = features[image_key].bytes_list.value
    if len(images) != 1:
        return bad("not one image", f"'{image_key}' holds {len(images)} images, not 1")
    try:
        height, width = (int(n) for n in header_size(images[0]))
        if height * width > max_image_pixels:
            return bad(
                TOO_LARGE,
                f"image is {height}x{width}, more than {max_image_pixels} pixels "
                "(data.max_image_pixels); not decoded",
            )
        # channels=0 keeps the file's own channel count, for the report.
        pixels = tf.io.decode_image(images[0], channels=0, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        return bad("undecodable image", f"image does not decode: {op_message(error)}")
    height, width, channels = (int(n) for n in pixels.shape)
    if min(height, width) < min_image_size:
        return bad(
            "image too small", f"image is {height}x{width}, smaller than {min_image_size} pixels"
        )
    return Finding(
        location,
        record_id,
        label,
        height,
        width,
        channels,
        image_format(images[0]),
        fingerprint=pixel_fingerprint(pixels),
        turned=orientation(images[0]) != UPRIGHT,
    )


def pixel_fingerprint(pixels: tf.Tensor) -> str:
    """The same for the same pixels, however the image was encoded (losslessly)."""
    digest = hashlib.sha256(f"{tuple(pixels.shape)} {pixels.dtype.name}".encode())
    digest.update(pixels.numpy().tobytes())
    return digest.hexdigest()[:32]


# The first bytes of each image format tf.io.decode_image reads.
_SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG": "png", b"GIF8": "gif", b"BM": "bmp"}


def image_format(encoded: bytes) -> str:
    return next((name for magic, name in _SIGNATURES.items() if encoded.startswith(magic)), "?")


def _record_id(features) -> str:
    feature = features.get("id")
    if feature is not None and feature.bytes_list.value:
        return feature.bytes_list.value[0].decode("utf-8", "replace")
    return ""


@dataclass
class SplitSummary:
    """Everything the report says of one split; summaries of parts of a split merge."""

    total: int = 0
    good: int = 0
    bad: list[dict] = field(default_factory=list)
    problems: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    min_height: int | None = None
    max_height: int | None = None
    min_width: int | None = None
    max_width: int | None = None
    turned: int = 0  # good images stored turned (an EXIF orientation tag)

    def add(self, finding: Finding) -> SplitSummary:
        self.total += 1
        if finding.problem:
            self.bad.append(
                {"location": finding.location, "id": finding.record_id, "problem": finding.problem}
            )
            self.problems[finding.kind] += 1
            return self
        self.good += 1
        self.channels[finding.channels] += 1
        self.formats[finding.format] += 1
        self.labels[finding.label] += 1
        self.turned += finding.turned
        self.min_height = _min(self.min_height, finding.height)
        self.max_height = _max(self.max_height, finding.height)
        self.min_width = _min(self.min_width, finding.width)
        self.max_width = _max(self.max_width, finding.width)
        return self

    def merge(self, other: SplitSummary) -> SplitSummary:
        self.total += other.total
        self.good += other.good
        self.bad += other.bad
        self.problems += other.problems
        self.channels += other.channels
        self.formats += other.formats
        self.labels += other.labels
        self.turned += other.turned
        self.min_height = _min(self.min_height, other.min_height)
        self.max_height = _max(self.max_height, other.max_height)
        self.min_width = _min(self.min_width, other.min_width)
        self.max_width = _max(self.max_width, other.max_width)
        return self

    def to_dict(self) -> dict:
        values = asdict(self)
        values["bad"] = sorted(self.bad, key=lambda record: record["location"])
        for name in ("problems", "channels", "formats", "labels"):
            values[name] = {str(key): count for key, count in sorted(getattr(self, name).items())}
        return values

    @classmethod
    def from_dict(cls, values: dict) -> SplitSummary:
        summary = cls(**values)
        summary.problems = Counter(values["problems"])
        summary.formats = Counter(values.get("formats", {}))
        summary.channels = Counter({int(key): n for key, n in values["channels"].items()})
        summary.labels = Counter({int(key): n for key, n in values["labels"].items()})
        return summary


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def judge(
    summaries: dict[str, SplitSummary], class_names: list[str], policy: ValidationConfig
) -> Verdict:
    """Applies the policy: too many bad records or too few images fail; imbalance warns."""
    verdict = Verdict()
    warn = verdict.failures.append if policy.fail_on_warnings else verdict.warnings.append
    for split, summary in summaries.items():
        if summary.total == 0:
            verdict.failures.append(f"{split}: the split holds no records")
            continue
        bad = summary.total - summary.good
        if bad / summary.total > policy.max_bad_fraction:
            kinds = ", ".join(f"{count} {kind}" for kind, count in summary.problems.most_common())
            verdict.failures.append(
                f"{split}: {bad} of {summary.total} records are bad ({bad / summary.total:.1%}, "
                f"more than the {policy.max_bad_fraction:.1%} allowed): {kinds}"
            )
        counts = [summary.labels.get(label, 0) for label in range(len(class_names))]
        if split == "train":
            few = [
                f"{class_names[label]} ({count})"
                for label, count in enumerate(counts)
                if count < policy.min_images_per_class
            ]
            if few:
                verdict.failures.append(
                    f"train: fewer than {policy.min_images_per_class} good images of "
                    f"{', '.join(few)}"
                )
        else:
            missing = [class_names[label] for label, count in enumerate(counts) if count == 0]
            if missing:
                warn(f"{split}: no image of {', '.join(missing)}")
        if summary.turned:
            warn(
                f"{split}: {summary.turned} images are stored turned (an EXIF orientation tag), "
                "and training and serving read them as stored, not as a person sees them: "
                "imgclf convert-folder writes photos upright"
            )
        present = [count for count in counts if count]
        if present and max(present) / min(present) > policy.max_class_imbalance:
            warn(
                f"{split}: classes are imbalanced: the largest has {max(present)} images, the "
                f"smallest {min(present)} (more than {policy.max_class_imbalance:g}x)"
            )
    return verdict


def render_text(
    summaries: dict[str, SplitSummary], class_names: list[str], verdict: Verdict
) -> str:
    """The report a person reads: per split counts, sizes, labels, and what is wrong."""
    lines = [f"Image validation: {'PASSED' if verdict.passed else 'FAILED'}"]
    lines += [f"  FAIL: {failure}" for failure in verdict.failures]
    lines += [f"  WARN: {warning}" for warning in verdict.warnings]
    for split, summary in summaries.items():
        lines.append(f"{split}: {summary.total} records, {summary.good} good")
        if summary.good:
            lines.append(
                f"  sizes {summary.min_height}-{summary.max_height} x "
                f"{summary.min_width}-{summary.max_width} px; channels in the files: "
                + ", ".join(f"{c}: {n}" for c, n in sorted(summary.channels.items()))
                + "; formats: "
                + ", ".join(f"{f}: {n}" for f, n in sorted(summary.formats.items()))
            )
            lines.append(
                "  labels: "
                + ", ".join(
                    f"{name} {summary.labels.get(label, 0)}"
                    for label, name in enumerate(class_names)
                )
            )
        for record in sorted(summary.bad, key=lambda r: r["location"])[:LISTED_IN_TEXT]:
            name = f"{record['id']} at " if record["id"] else ""
            lines.append(f"  bad: {name}{record['location']}: {record['problem']}")
        if len(summary.bad) > LISTED_IN_TEXT:
            lines.append(f"  ... and {len(summary.bad) - LISTED_IN_TEXT} more in report.json")
    return "\n".join(lines)
