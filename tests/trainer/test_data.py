import math

import numpy as np
import pytest
import tensorflow as tf

from imgclf.imagedata.records import to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.settings.config import DataConfig, TrainingConfig
from imgclf.trainer.data import count_records, eval_input, train_input

PLAIN = TrainingConfig(random_flip=False, random_rotation=0, random_zoom=0, random_contrast=0)


def _write(path, records, compression=""):
    options = tf.io.TFRecordOptions(compression_type=compression)
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in records:
            writer.write(to_example(record).SerializeToString())


@pytest.fixture(scope="module")
def example_gen_files(tmp_path_factory):
    """10 records as ExampleGen writes them: GZIP-compressed TFRecord files, 2 shards."""
    directory = tmp_path_factory.mktemp("examples")
    records = list(generate_split(DEFAULT_CLASSES, "train", 5, size=40))[:10]
    for shard in range(2):
        _write(directory / f"data-{shard}.gz", records[shard::2], "GZIP")
    return [str(directory / "*.gz")], records


def _stream(dataset, batches):
    images, labels = zip(*[(b[0].numpy(), b[1].numpy()) for b in dataset.take(batches)])
    return np.concatenate(images), np.concatenate(labels)


def test_eval_input_is_every_record_in_file_order_in_full_batches(example_gen_files):
    patterns, records = example_gen_files
    evals = eval_input(patterns, DataConfig(), image_size=32, global_batch_size=4)
    assert (evals.examples, evals.steps) == (10, 3)
    images, labels = _stream(evals.dataset, evals.steps)
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 255.0 and images.max() > 1.0
    in_file_order = [r.label for r in records[0::2]] + [r.label for r in records[1::2]]
    # The last batch is filled up from the start, so that every batch is whole.
    assert labels.tolist() == in_file_order + in_file_order[:2]


def test_train_input_shuffles_augments_and_covers_every_record_each_pass(example_gen_files):
    patterns, records = example_gen_files
    plain = train_input(patterns, DataConfig(), 32, 4, PLAIN)
    assert (plain.examples, plain.steps) == (10, math.ceil(10 / 4))
    images, labels = _stream(plain.dataset, 5)
    in_file_order = [r.label for r in records[0::2]] + [r.label for r in records[1::2]]
    assert sorted(labels[:10].tolist()) == sorted(in_file_order)
    assert sorted(labels[10:20].tolist()) == sorted(in_file_order)
    assert labels[:10].tolist() != in_file_order

    # The same shuffle seed gives the same order: only augmentation differs.
    augmented = train_input(patterns, DataConfig(), 32, 4, TrainingConfig(seed=PLAIN.seed))
    augmented_images, augmented_labels = _stream(augmented.dataset, 5)
    assert augmented_labels.tolist() == labels.tolist()
    assert not np.allclose(augmented_images, images)


def test_steps_per_epoch_can_be_set(example_gen_files):
    patterns, _ = example_gen_files
    config = PLAIN.model_copy(update={"steps_per_epoch": 7})
    assert train_input(patterns, DataConfig(), 32, 4, config).steps == 7


def test_uncompressed_files_are_read_and_mixed_compression_is_refused(tmp_path):
    records = list(generate_split(DEFAULT_CLASSES, "eval", 1, size=32))
    _write(tmp_path / "a.tfrecord", records)
    assert count_records([str(tmp_path / "a.tfrecord")]) == len(records)
    _write(tmp_path / "b.tfrecord.gz", records, "GZIP")
    with pytest.raises(ValueError, match="mixed compression"):
        count_records([str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord.gz")])


def test_missing_files_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        eval_input([str(tmp_path / "nothing-here*")], DataConfig(), 32, 4)
