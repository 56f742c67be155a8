import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from imgclf.imagedata.records import to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.settings.data import DataConfig
from imgclf.settings.training import TrainingConfig
from imgclf.trainer.data import Part, count_records, eval_input, label_counts, train_input
from imgclf.trainer.model import compile_model

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


def test_eval_input_is_every_record_once_in_file_order_in_full_batches(example_gen_files):
    patterns, records = example_gen_files
    evals = eval_input(patterns, DataConfig(), image_size=32, global_batch_size=4)
    assert (evals.examples, evals.steps) == (10, 3)
    batches = list(evals.dataset.take(2 * evals.steps))
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    weights = np.concatenate([b[2].numpy() for b in batches])
    assert images.shape == (24, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 255.0 and images.max() > 1.0
    in_file_order = [r.label for r in records[0::2]] + [r.label for r in records[1::2]]
    # Whole batches: the last is filled up with weight-0 copies, which no metric counts.
    assert labels.tolist() == 2 * (in_file_order + in_file_order[:1] * 2)
    assert weights.tolist() == 2 * ([1.0] * 10 + [0.0] * 2)


def test_a_compiled_model_counts_each_validation_example_once(example_gen_files):
    patterns, records = example_gen_files
    evals = eval_input(patterns, DataConfig(), image_size=32, global_batch_size=4)
    # A "model" that always answers the first record's class, compiled as the Trainer compiles.
    first_label = records[0].label
    pixels = keras.Input((32, 32, 3))
    constant = keras.layers.Lambda(lambda x: tf.one_hot(tf.fill(tf.shape(x)[:1], first_label), 4))
    model = keras.Model(pixels, constant(pixels))
    compile_model(model, "adam", 1e-3)
    figures = model.evaluate(evals.dataset, steps=evals.steps, verbose=0, return_dict=True)
    expected = sum(r.label == first_label for r in records) / len(records)
    assert figures["accuracy"] == pytest.approx(expected)


def test_a_validation_part_is_carved_out_of_train_disjoint_complete_and_stable(tmp_path):
    records = list(generate_split(DEFAULT_CLASSES, "train", 50, size=16))
    _write(tmp_path / "a.tfrecord", records)
    # The same images, in another order and in other files: another span's delivery.
    _write(tmp_path / "b-0.tfrecord", records[::-1][:100])
    _write(tmp_path / "b-1.tfrecord", records[::-1][100:])
    validation = Part(0.2, "image", validation=True)
    rest = Part(0.2, "image", validation=False)

    def ids(pattern, part):
        dataset = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(str(tmp_path / pattern))))
        examples = (tf.train.Example.FromString(r.numpy()) for r in dataset.filter(part.keeps))
        return {e.features.feature["id"].bytes_list.value[0].decode() for e in examples}

    held_out, kept = ids("a.tfrecord", validation), ids("a.tfrecord", rest)
    assert held_out.isdisjoint(kept) and held_out | kept == {r.id for r in records}
    assert 0.1 < len(held_out) / len(records) < 0.3
    assert ids("b-*.tfrecord", validation) == held_out
    assert count_records([str(tmp_path / "a.tfrecord")], validation) == len(held_out)
    counts = label_counts([str(tmp_path / "a.tfrecord")], "label", 4, rest)
    assert sum(counts) == len(kept) and all(counts)


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


def test_a_train_split_too_small_for_a_validation_share_is_a_clear_error(tmp_path):
    records = list(generate_split(DEFAULT_CLASSES, "train", 1, size=16))
    _write(tmp_path / "a.tfrecord", records)
    with pytest.raises(ValueError, match=r"a\.tfrecord.*raise training\.validation_fraction"):
        eval_input([str(tmp_path / "a.tfrecord")], DataConfig(), 16, 4, Part(1e-4, "image", True))


def test_each_worker_trains_on_its_own_share_of_the_same_stream(example_gen_files):
    """MultiWorkerMirroredStrategy shards each worker's input as input_ops does (DATA policy)."""
    from tensorflow.python.distribute import input_ops

    patterns, _ = example_gen_files

    def stream(worker: int | None, batches: int) -> list[bytes]:
        dataset = train_input(patterns, DataConfig(), 32, 2, PLAIN).dataset  # a process's own
        if worker is not None:
            dataset = input_ops.auto_shard_dataset(dataset, 2, worker, 2)
        return [image.tobytes() for batch in dataset.take(batches) for image in batch[0].numpy()]

    whole = stream(None, 8)
    first, second = stream(0, 4), stream(1, 4)
    # Worker 0 takes the global batches 0, 2, 4, ...; worker 1 the others: none twice.
    assert first == [image for step in range(0, 8, 2) for image in whole[2 * step : 2 * step + 2]]
    assert second == [image for step in range(1, 8, 2) for image in whole[2 * step : 2 * step + 2]]
