"""The pipeline on Kubeflow Pipelines 2.x: compile (runner), submit and schedule (client, cli).

The container image (Dockerfile) runs every component through entrypoint.py.
"""
