# The two commands a new user needs: `make demo` and `make test` (`make check`: the fast lane).
# Both create .venv and install the pinned stack on first use (about 2 minutes).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Quieter logs: Google's client libraries warn at import that Python 3.11 support ends in 2027.
export PYTHONWARNINGS ?= ignore::FutureWarning
export TF_CPP_MIN_LOG_LEVEL ?= 1

# The browser tests drive Debian's Chromium (package chromium) through playwright.
CHROMIUM ?= /usr/bin/chromium

# The KServe manifests are checked against KServe's own models (the kserve package), which
# cannot install beside the pinned stack (it needs protobuf 6, pandas 2.2): a venv of its own.
KSERVE_VENV ?= .venv-kserve
KSERVE_INSTALLED := $(KSERVE_VENV)/.installed
export KSERVE_PYTHON := $(abspath $(KSERVE_VENV))/bin/python

.PHONY: install demo test check clean

install: $(INSTALLED)

# tfx and ml-pipelines-sdk 1.16.0 declare Python <3.11 but run on it: hence
# --ignore-requires-python. The constraints file pins every package, which also
# keeps pip from backtracking for a very long time.
$(INSTALLED): setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3" "setuptools==84.2.1" "wheel==0.48.0"
	$(BIN)/pip install --quiet --ignore-requires-python -c constraints.txt -e ".[test]"
	touch $@

$(KSERVE_INSTALLED): constraints-kserve.txt
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/pip install --quiet -c constraints-kserve.txt kserve
	touch $@

demo: $(INSTALLED)
	$(BIN)/imgclf demo

# Two workers (pytest-xdist), each taking whole files: a file's shared end-to-end run
# (a module fixture) is made once, and the two cores each carry one. The slowest
# tests are listed at the end, to keep the whole run under about 45 minutes.
test: $(INSTALLED) $(KSERVE_INSTALLED) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 2 --dist loadfile --durations=40

# The fast lane, for every change: lint and the unit tests (about 3 minutes).
check: $(INSTALLED) $(KSERVE_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not e2e and not slow"

$(CHROMIUM):
	apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)

clean:
	rm -rf outputs
