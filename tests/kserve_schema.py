"""Checks an InferenceService manifest against KServe's own models: run by the kserve venv.

`python kserve_schema.py < manifest.json` prints `valid`, or the first field that
KServe's Python SDK (the `kserve` package, generated from its CRDs' OpenAPI
schema) does not know, whose type is wrong, or that it requires and is missing,
and exits 1. The SDK's own deserializer cannot resolve the Kubernetes types it
refers to (V1ObjectMeta, V1ResourceRequirements): this walks each model's
`openapi_types` and `attribute_map`, taking the referred types from the
`kubernetes` package, and builds every model, whose setters check required
fields and enumerations.

The `kserve` package cannot install beside the project's pinned stack (it
needs protobuf 6 and pandas 2.2): the Makefile gives it a venv of its own.
"""

import json
import re
import sys

import kserve.models
import kubernetes.client.models

# Both spellings: the kserve models' `list[...]`, `dict(str, ...)` and the kubernetes ones'.
PRIMITIVES = {
    "str": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "object": object,
    "datetime": str,
    "ResourceQuantity": (str, int, float),
}
LIST = re.compile(r"(?:list|List)\[(.+)\]")
DICT = re.compile(r"dict\(str, (.+)\)|Dict\[str, (.+)\]")


class SchemaError(ValueError):
    pass


def build(type_name: str, value, path: str):
    if match := LIST.fullmatch(type_name):
        if not isinstance(value, list):
            raise SchemaError(f"{path}: a list expected, found {value!r}")
        return [build(match[1], item, f"{path}[{index}]") for index, item in enumerate(value)]
    if match := DICT.fullmatch(type_name):
        if not isinstance(value, dict):
            raise SchemaError(f"{path}: a mapping expected, found {value!r}")
        items = match[1] or match[2]
        return {key: build(items, item, f"{path}.{key}") for key, item in value.items()}
    if type_name in PRIMITIVES:
        if (type_name != "bool" and isinstance(value, bool)) or not isinstance(
            value, PRIMITIVES[type_name]
        ):
            raise SchemaError(f"{path}: {type_name} expected, found {value!r}")
        return value
    model = getattr(kserve.models, type_name, None) or getattr(kubernetes.client.models, type_name)
    if not isinstance(value, dict):
        raise SchemaError(f"{path}: {type_name} expected, found {value!r}")
    fields = {json_name: name for name, json_name in model.attribute_map.items()}
    arguments = {}
    for key, item in value.items():
        if key not in fields:
            raise SchemaError(f"{path}: {type_name} has no field {key!r}")
        arguments[fields[key]] = build(model.openapi_types[fields[key]], item, f"{path}.{key}")
    try:
        return model(**arguments)
    except ValueError as error:
        raise SchemaError(f"{path}: {error}") from None


def main() -> int:
    manifest = json.load(sys.stdin)
    try:
        build("V1beta1InferenceService", manifest, "InferenceService")
    except SchemaError as error:
        print(error)
        return 1
    print("valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
