"""The Kubernetes API as a pipeline task reaches it: the Trainer's TFJob (kubeflow/tfjob.py)
and the KServe rollout (modelstore/kserve.py) speak to it through the `kubernetes` client."""

from __future__ import annotations

import os

from kubernetes import config

NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def connect() -> None:
    """As the task pod's service account in the cluster; elsewhere through the kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        # $KUBECONFIG as it is now: the client reads it once, when it is imported.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))


def own_namespace() -> str:
    """The pod's namespace in the cluster; else the kubeconfig context's, else 'default'."""
    if os.path.exists(NAMESPACE_FILE):
        with open(NAMESPACE_FILE) as f:
            return f.read().strip()
    _, context = config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG"))
    return context.get("context", {}).get("namespace") or "default"
