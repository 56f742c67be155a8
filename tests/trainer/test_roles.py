"""Which records train and which validate: a small validation share is widened, and says so."""

import pytest
import tensorflow as tf
from tfx import v1 as tfx

from imgclf.imagedata.records import to_example
from imgclf.imagedata.sample import DEFAULT_CLASSES, generate_split
from imgclf.settings.config import TrainerConfig, load_config
from imgclf.trainer.data import first_records
from imgclf.trainer.roles import MAX_WIDENED_FRACTION, training_data

TRAIN_IMAGES = 80


@pytest.fixture(scope="module")
def train_files(tmp_path_factory) -> list[str]:
    """80 train records as ExampleGen writes them (GZIP TFRecords)."""
    path = tmp_path_factory.mktemp("roles") / "data.gz"
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in generate_split(DEFAULT_CLASSES, "train", TRAIN_IMAGES // 4, size=16):
            writer.write(to_example(record).SerializeToString())
    return [str(path)]


def _data(train_files: list[str], **training):
    settings = {"data.root": "/data", **{f"training.{k}": v for k, v in training.items()}}
    config = TrainerConfig.model_validate(load_config(settings).trainer_config().model_dump())
    # As the pipeline gives it: the train split again, a share of it held out.
    fn_args = tfx.components.FnArgs(train_files=train_files, eval_files=train_files)
    return training_data(fn_args, config, global_batch_size=8, num_classes=len(DEFAULT_CLASSES))


def test_a_validation_share_of_too_few_images_is_widened_and_the_roles_say_so(train_files):
    narrow = _data(train_files, validation_fraction=0.1, min_validation_images=0)
    wide = _data(train_files, validation_fraction=0.1)  # the default: 100 images wanted
    assert narrow.validation.examples < wide.validation.examples
    # 100 images wanted of 80: as wide as it goes, and every image still trains or validates.
    assert wide.roles.validation_part.validation_fraction == MAX_WIDENED_FRACTION
    assert wide.train.examples + wide.validation.examples == TRAIN_IMAGES
    assert wide.roles.describe()["validation"] == (
        "the train split, 25% of it by image hash (validation widened from 10%, which held "
        "too few images to choose epochs by: training.min_validation_images)"
    )
    # The narrow share stays inside the wide one: the images it adds are the ones beside it.
    narrow_images = set(first_records(train_files, TRAIN_IMAGES, narrow.roles.validation_part))
    wide_images = set(first_records(train_files, TRAIN_IMAGES, wide.roles.validation_part))
    assert narrow_images < wide_images


def test_a_share_with_enough_images_or_a_validation_split_of_its_own_is_left_alone(train_files):
    enough = _data(train_files, validation_fraction=0.1, min_validation_images=5)
    assert enough.roles.validation_part.validation_fraction == 0.1
    assert enough.roles.validation_part.widened_from is None
    already_wide = _data(train_files, validation_fraction=0.5)
    assert already_wide.roles.validation_part.validation_fraction == 0.5
    settings = {"data.root": "/data", "data.validation_pattern": "validation/*"}
    config = TrainerConfig.model_validate(load_config(settings).trainer_config().model_dump())
    fn_args = tfx.components.FnArgs(train_files=train_files, eval_files=train_files)
    own = training_data(fn_args, config, global_batch_size=8, num_classes=len(DEFAULT_CLASSES))
    assert own.roles.validation_part is None
    assert own.validation.examples == TRAIN_IMAGES
