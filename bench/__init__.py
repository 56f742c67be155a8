"""Benchmarks: scripts that print figures. Run each from the repository root:

.venv/bin/python -m bench.trainer_vs_keras
.venv/bin/python -m bench.feature_cache
.venv/bin/python -m bench.memory
.venv/bin/python -m bench.distribution
.venv/bin/python -m bench.pipeline_overhead
.venv/bin/python -m bench.batch_predict
.venv/bin/python -m bench.transfer_vs_scratch
"""
