"""imgclf: the project's one import namespace, in layers that import only downwards.

    imgclf.settings     configuration, names, architectures (no TensorFlow)
    imgclf.imagedata    records, spans, folders, sample data, the curated schema
    imgclf.trainer      the Trainer module (TFX calls imgclf.trainer.task.run_fn)
    imgclf.modelstore   the serving folder: versions, pushes, what each records, history
    imgclf.components   the pipeline's custom components and evaluation settings
    imgclf.pipeline     the factory, local runs, retraining, reports, predictions
    imgclf.kubeflow     the Kubeflow targets: compiler, clients, container entrypoint
    imgclf.cli          the command line

The layers' folders sit at the repository's top level (the design card's
layout); `imgclf/<layer>` links to each. They hold no `__init__.py`, so a
top-level folder named like another distribution's package (`kubeflow`,
`trainer`) never shadows it, even from the repository root.

TFMA and TF Serving need a TF SavedModel with signatures, which Keras 2
(tf_keras) writes and Keras 3 does not. TensorFlow picks its Keras when it is
first imported; every module of the project is under this package, so this
runs before any of them imports TensorFlow.

`imgclf.<Type>`: TFX's KFP v2 compiler names a custom artifact type by its
TYPE_NAME, which must read `<namespace>.<Title>` (one dot), and TFX's
container entrypoint imports that very name as a class path
(tfx/orchestration/kubeflow/v2/container/kubeflow_v2_entrypoint_utils.py,
`_retrieve_class_path`). This module answers for each type, loading its
component module only when asked (importing `imgclf` alone loads no TensorFlow).
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# Each artifact type's TYPE_NAME is "imgclf.<key>"; the value is (module, class) defining it.
ARTIFACT_TYPES = {
    "ImageValidationReport": ("imgclf.components.image_validator", "ImageValidationReport"),
    "DataGateResult": ("imgclf.components.data_gate", "DataGateResult"),
    "ModelReport": ("imgclf.components.model_report", "ModelReportArtifact"),
    "KServeManifest": ("imgclf.components.kserve_rollout", "KServeManifest"),
}


def __getattr__(name: str):
    if name in ARTIFACT_TYPES:
        module, class_name = ARTIFACT_TYPES[name]
        return getattr(importlib.import_module(module), class_name)
    raise AttributeError(f"module 'imgclf' has no attribute {name!r}")
