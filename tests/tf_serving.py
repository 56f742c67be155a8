"""TF Serving's REST API as KServe's TensorFlow runtime starts it, for the KServe stand-in.

`python tf_serving.py --model_name=NAME --model_base_path=DIR --rest_api_port=PORT`,
the arguments of kserve/kserve config/runtimes/kserve-tensorflow-serving.yaml:
loads the newest numbered version folder under DIR by its `serve` tag, as TF
Serving's default version policy does, then prints `ready` and answers
(tensorflow/serving's REST API, row format):

- `GET /v1/models/NAME`: the version's status, AVAILABLE;
- `POST /v1/models/NAME:predict` with `{"instances": [...]}`: `{"predictions":
  [...]}` from `serving_default`, each instance's inputs by name, bytes as
  `{"b64": ...}`, each prediction the outputs by name.

A version that does not load ends the process with its error, before `ready`.
"""

import argparse
import base64
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
import tensorflow as tf

from imgclf.trainer.export import EXAMPLES_INPUT, SERVING_DEFAULT
from json_http import send_json


def newest_version(base_path: str) -> int:
    numbered = [int(name) for name in os.listdir(base_path) if name.isdigit()]
    if not numbered:
        raise SystemExit(f"No versions of servable found under base path {base_path}")
    return max(numbered)


def _json(value):
    """A tensor's value as TF Serving writes it: strings as text."""
    value = value if isinstance(value, bytes) else value.tolist()
    return value.decode() if isinstance(value, bytes) else value


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--model_name", "--model_base_path", "--rest_api_port"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    version = newest_version(args.model_base_path)
    serve = tf.saved_model.load(
        os.path.join(args.model_base_path, str(version)), tags=["serve"]
    ).signatures[SERVING_DEFAULT]
    model_path = f"/v1/models/{args.model_name}"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != model_path:
                return self._answer(404, {"error": f"Servable not found: {self.path}"})
            status = {"version": str(version), "state": "AVAILABLE", "status": {"error_code": "OK"}}
            self._answer(200, {"model_version_status": [status]})

        def do_POST(self) -> None:
            if self.path != f"{model_path}:predict":
                return self._answer(404, {"error": f"Servable not found: {self.path}"})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            examples = [base64.b64decode(i[EXAMPLES_INPUT]["b64"]) for i in body["instances"]]
            answers = serve(**{EXAMPLES_INPUT: tf.constant(examples)})
            predictions = [
                {name: _json(value[row].numpy()) for name, value in answers.items()}
                for row in range(len(examples))
            ]
            self._answer(200, {"predictions": predictions})

        def _answer(self, status: int, answer: dict) -> None:
            send_json(self, status, answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(args.rest_api_port)), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
