"""Installs the project as one package, imgclf, whose layers are the top-level folders.

Beam workers (`--setup_file=./setup.py`) and the Kubeflow container image
(a wheel built from this file) install the project from it, so every process
runs the same code.
The exact versions this project is tested with live in constraints.txt:

    pip install --ignore-requires-python -c constraints.txt -e ".[test]"
"""

import setuptools

setuptools.setup(
    name="tfx-image-classifier",
    version="0.1.0",
    description=(
        "A TFX pipeline that turns labelled images into a served image "
        "classifier by transfer learning, and keeps it fresh."
    ),
    python_requires=">=3.9",
    # One import namespace, imgclf: its layers are linked in from the top-level folders.
    packages=setuptools.find_namespace_packages(include=["imgclf", "imgclf.*"]),
    # What commands read at run time, so a wheel holds it: the demo's settings and base.
    package_data={"imgclf.configs": ["*.yaml"], "imgclf.configs.backbones": ["*.h5", "*.md"]},
    install_requires=[
        "tfx==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "tensorflow-serving-api==2.16.1",  # warmup requests: TF Serving's protos
        "kfp==2.7.0",
        "kubernetes<27",  # multi-worker training: TFJobs (kfp 2.7 and tfx 1.16 need <27 too)
        "h5py>=3",
        "pillow>=10",
        "pydantic>=2.5,<3",
        "pydantic-settings>=2.7,<3",
        "pyyaml>=6",
    ],
    extras_require={
        # playwright drives Debian's Chromium (the Makefile installs it) in the browser tests.
        "test": ["pytest>=8", "pytest-xdist>=3", "ruff>=0.5", "playwright>=1.50"]
    },
    entry_points={"console_scripts": ["imgclf=imgclf.cli.main:main"]},
)
