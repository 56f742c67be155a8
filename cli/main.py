"""`imgclf`: the project's command line.

    imgclf sample-data --out data/sample         write the sample shapes dataset
    imgclf convert-folder PHOTOS --out data/mine  class folders -> TFRecords
    imgclf make-schema                            the curated schema of the data
    imgclf validate                               validate the data only (no training)
    imgclf pretrain-backbone                      pretrain the offline demo's base
    imgclf scratch-baseline                       the same network from random weights
    imgclf run                                    your data -> pushed model, via the TFX CLI
    imgclf demo                                   sample data -> pushed model, via the TFX CLI
    imgclf retrain                                one scheduled run on the newest span (cron)
    imgclf report                                 the latest run's accuracy and push
    imgclf predict MODEL IMAGE|FOLDER ...         top-k classes with a pushed model
    imgclf batch-predict MODEL GLOB ... --out F   the same at scale, with Beam's RunInference
    imgclf timings                                each component's wall time in the latest run
    imgclf kubeflow compile|run|schedule|...      the pipeline on Kubeflow Pipelines

Settings: `--config FILE` (YAML) and `--set section.name=value`, which become
IMGCLF_* environment variables, so the TFX CLI's child processes see them too.
"""

from __future__ import annotations

import argparse
import sys

import imgclf  # noqa: F401  (first: chooses Keras 2 before TensorFlow loads)

# isort: split
from imgclf.cli import data, local, models
from imgclf.cli import kubeflow as kubeflow_cli
from imgclf.cli.options import apply_settings
from imgclf.cli.startup import import_tensorflow_quietly
from imgclf.settings.base import ConfigError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "loads_tensorflow", True):
        import_tensorflow_quietly()
    try:
        apply_settings(args)
        return args.handler(args) or 0
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"imgclf {args.command}: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgclf", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (data, local, models, kubeflow_cli):
        module.add_commands(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
