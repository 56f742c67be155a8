"""`imgclf.<Type>`: the project's artifact types, where TFX's Kubeflow entrypoint looks for them.

TFX's KFP v2 compiler names a custom artifact type by its TYPE_NAME, which
must read `<namespace>.<Title>` (one dot), and TFX's container entrypoint
imports that very name as a class path
(tfx/orchestration/kubeflow/v2/container/kubeflow_v2_entrypoint_utils.py,
`_retrieve_class_path`). So `imgclf.ImageValidationReport` must be importable
in every container: this module answers for each type, loading its component
module only when asked (importing `imgclf` alone loads no TensorFlow).
"""

from __future__ import annotations

import importlib

# Each artifact type's TYPE_NAME is "imgclf.<key>"; the value is (module, class) defining it.
ARTIFACT_TYPES = {
    "ImageValidationReport": ("components.image_validator", "ImageValidationReport"),
    "DataGateResult": ("components.data_gate", "DataGateResult"),
    "ModelReport": ("components.model_report", "ModelReportArtifact"),
}


def __getattr__(name: str):
    if name in ARTIFACT_TYPES:
        module, class_name = ARTIFACT_TYPES[name]
        return getattr(importlib.import_module(module), class_name)
    raise AttributeError(f"module 'imgclf' has no attribute {name!r}")
