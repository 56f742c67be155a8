"""Running the pipeline on Kubeflow Pipelines (compile, submit, schedule)."""
