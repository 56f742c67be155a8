"""CuratedSchema: TFX's ImportSchemaGen, keyed by the schema file's content.

ImportSchemaGen's only setting is the file's path, so with caching on, a
schema edited in place (a span added a class) is never read again: every
later run reuses the first copy. This component also takes the file's
SHA-256, computed when the pipeline is built, so an edit makes a new
artifact; a file that changed after that (a pipeline compiled earlier) is
refused with a message instead of being used unseen.
"""

import hashlib
import os

import tensorflow as tf
from tfx import v1 as tfx
from tfx.types import standard_artifacts

SCHEMA_FILE = "schema.pbtxt"


def file_sha256(path: str) -> str:
    with tf.io.gfile.GFile(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@tfx.dsl.components.component
def CuratedSchema(
    schema: tfx.dsl.components.OutputArtifact[standard_artifacts.Schema],
    schema_file: tfx.dsl.components.Parameter[str],
    sha256: tfx.dsl.components.Parameter[str],
) -> None:
    found = file_sha256(schema_file)
    if found != sha256:
        raise ValueError(
            f"The curated schema {schema_file} changed after this pipeline was built "
            f"(SHA-256 {found[:12]}..., expected {sha256[:12]}...): build or compile it again."
        )
    tf.io.gfile.copy(schema_file, os.path.join(schema.uri, SCHEMA_FILE), overwrite=True)
