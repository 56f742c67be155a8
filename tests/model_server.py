"""A deployed model's server for the stand-in Vertex AI endpoint (vertex_models.py).

`python model_server.py MODEL_DIR`: loads the SavedModel by its `serve` tag, as
Vertex AI's prebuilt TensorFlow container (TF Serving) does, prints `ready`
(the health check passing), then answers each line of JSON instances on stdin
with one line of JSON predictions from `serving_default`, whose input is
serialized tf.Examples sent as `{"examples": {"b64": ...}}`. A model that does
not load ends the process with its error, before `ready`.
"""

import base64
import json
import sys

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
import tensorflow as tf

from imgclf.trainer.export import EXAMPLES_INPUT, SERVING_DEFAULT


def main(model_dir: str) -> None:
    serve = tf.saved_model.load(model_dir, tags=["serve"]).signatures[SERVING_DEFAULT]
    print("ready", flush=True)
    for line in sys.stdin:
        examples = [base64.b64decode(i[EXAMPLES_INPUT]["b64"]) for i in json.loads(line)]
        answers = serve(**{EXAMPLES_INPUT: tf.constant(examples)})
        predictions = [
            {
                "class_ids": answers["class_ids"][row].numpy().tolist(),
                "probabilities": answers["probabilities"][row].numpy().tolist(),
            }
            for row in range(len(examples))
        ]
        print(json.dumps(predictions), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
