import numpy as np
import pytest
import tensorflow as tf

from imagedata.records import to_example
from imagedata.sample import DEFAULT_CLASSES, generate_split
from pipeline.config import DataConfig, TrainingConfig
from trainer.data import eval_dataset, train_dataset


@pytest.fixture(scope="module")
def example_gen_files(tmp_path_factory):
    """Records as ExampleGen writes them: GZIP-compressed TFRecord files."""
    directory = tmp_path_factory.mktemp("examples")
    records = list(generate_split(DEFAULT_CLASSES, "train", 5, size=40))
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for shard in range(2):
        with tf.io.TFRecordWriter(str(directory / f"data-{shard}.gz"), options) as writer:
            for record in records[shard::2]:
                writer.write(to_example(record).SerializeToString())
    return [str(directory / "*.gz")], records


def test_eval_data_is_every_record_decoded_and_resized_in_file_order(example_gen_files):
    patterns, records = example_gen_files
    batches = list(eval_dataset(patterns, DataConfig(), image_size=32, global_batch_size=8))
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert images.shape == (len(records), 32, 32, 3)
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 255.0 and images.max() > 1.0
    assert [b[0].shape[0] for b in batches] == [8, 8, 4]  # the short last batch is kept
    expected = [r.label for r in records[0::2]] + [r.label for r in records[1::2]]
    assert labels.tolist() == expected


def test_train_data_is_shuffled_and_augmented(example_gen_files):
    patterns, records = example_gen_files
    plain = TrainingConfig(random_flip=False, random_rotation=0, random_zoom=0, random_contrast=0)
    augmented = TrainingConfig()
    unaugmented = next(iter(train_dataset(patterns, DataConfig(), 32, 64, plain)))
    in_file_order = next(iter(eval_dataset(patterns, DataConfig(), 32, 64)))
    assert unaugmented[1].numpy().tolist() != in_file_order[1].numpy().tolist()
    assert sorted(unaugmented[1].numpy().tolist()) == sorted(r.label for r in records)

    # Same shuffle seed, so the same order: only augmentation differs.
    with_augmentation = next(iter(train_dataset(patterns, DataConfig(), 32, 64, augmented)))
    assert with_augmentation[1].numpy().tolist() == unaugmented[1].numpy().tolist()
    assert not np.allclose(with_augmentation[0].numpy(), unaugmented[0].numpy())
