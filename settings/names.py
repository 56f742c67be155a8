"""Names more than one layer must agree on, written once: records, nodes, properties, parameters.

Nothing here imports TensorFlow, TFX or Kubeflow: the command line, the
configuration and the reports read these without loading a framework.
"""

from __future__ import annotations

# The record format (imagedata/records.py): TFX's own image examples use these keys.
IMAGE_KEY = "image"
LABEL_KEY = "label"
ID_KEY = "id"
LABELS_FILENAME = "labels.txt"
# In the pipeline root: a record of each push, outside the serving folder.
PUSH_RECORDS_DIR = "pushes"
SCHEMA_FILENAME = "schema.pbtxt"
# Splits, by their roles: train; validation (checkpoints, early stopping), carved out of
# train unless the data brings one; eval, the test split (the Evaluator, the model report).
TRAIN_SPLIT = "train"
VALIDATION_SPLIT = "validation"
EVAL_SPLIT = "eval"
SPAN_FOLDER = "span-{span}"
# TFX's placeholder for the span number in an input pattern.
SPAN_SPEC = "{SPAN}"
# What a span's writer puts in its folder last (Hadoop's and Spark's convention): until
# it is there, the span may still be arriving.
SPAN_COMPLETE_MARKER = "_SUCCESS"

# Node ids: the pipeline gives each component one of these; reports and runs look them up.
EXAMPLE_GEN = "ImportExampleGen"
SPAN_RESOLVER = "SpanResolver"
STATISTICS_GEN = "StatisticsGen"
CURATED_SCHEMA = "ImportSchemaGen"
INFERRED_SCHEMA = "SchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
IMAGE_VALIDATOR = "ImageValidator"
SERVING_HISTORY = "ServingHistory"
DATA_REPORT = "DataReport"
DATA_GATE = "DataGate"
TUNER = "Tuner"  # only with tuning.enabled
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
MODEL_REPORT = "ModelReport"
SERVING_CHECK = "ServingCheck"  # or TFX's InfraValidator, when serving.check asks for it
PUSHER = "Pusher"
MODEL_REGISTRY = "ModelRegistry"  # only on Vertex AI, with kubeflow.registry.model
KSERVE_ROLLOUT = "KServeRollout"  # only on open-source KFP, with kubeflow.kserve.name
NODE_IDS = (
    EXAMPLE_GEN,
    SPAN_RESOLVER,
    STATISTICS_GEN,
    CURATED_SCHEMA,
    INFERRED_SCHEMA,
    EXAMPLE_VALIDATOR,
    IMAGE_VALIDATOR,
    SERVING_HISTORY,
    DATA_REPORT,
    DATA_GATE,
    TUNER,
    TRAINER,
    EVALUATOR,
    MODEL_REPORT,
    SERVING_CHECK,
    PUSHER,
    MODEL_REGISTRY,
    KSERVE_ROLLOUT,
)

# Custom properties of output artifacts, written by one component and read by others.
SPANS_PROPERTY = "spans"  # Examples: the spans a rolling window read, "2,3"
CLASS_NAMES_PROPERTY = "class_names"  # Model: the classes in label order, JSON
# Any: the component's outcome in a line, shown when it ends (components/key_figure.py).
KEY_FIGURE_PROPERTY = "key_figure"
PASSED_PROPERTY = "passed"  # ImageValidationReport, DataGateResult: 1 or 0
BLESSED_PROPERTY = "blessed"  # ModelBlessing, ModelReport: 1 or 0
TEST_ACCURACY_PROPERTY = "test_accuracy"  # ModelBlessing: the candidate's, on the eval split
PUSHED_PROPERTY = "pushed"  # PushedModel: 1 when this run wrote a new version
PUSHED_VERSION_PROPERTY = "pushed_version"  # PushedModel: the version pushed or already served
PUSHED_DESTINATION_PROPERTY = "pushed_destination"
NOT_PUSHED_PROPERTY = "not_pushed_because"  # PushedModel: why a blessed model was not pushed

# Execution properties that carry a served version number (NO_VERSION: none).
WARM_START_VERSION = "warm_start_version"
BASELINE_VERSION = "baseline_version"
PREVIOUS_VERSION = "previous_version"
SERVING_MODEL_DIR = "serving_model_dir"
NO_VERSION = -1

# Run-time parameters of the compiled pipeline, each with its type.
DATA_ROOT_PARAMETER = "data_root"
SPAN_PARAMETER = "span"  # a backfill; NEWEST_SPAN (the default unless data.span is set) the newest
NEWEST_SPAN = -1
# The training settings a run can override, by their names in TrainingConfig.
TRAINING_PARAMETERS = {
    "phase1_epochs": int,
    "phase2_epochs": int,
    "phase1_learning_rate": float,
    "phase2_learning_rate": float,
}
PARAMETER_TYPES = {DATA_ROOT_PARAMETER: str, SPAN_PARAMETER: int, **TRAINING_PARAMETERS}
