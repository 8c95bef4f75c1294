# `make demo`, `make test` (the full suite CI runs) and `make test-fast` (everything not
# marked slow: no end-to-end runs, no subprocesses).  All create .venv on first use.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmmixmae-stamp
SETUP_INPUTS := tools/install/setup_env.sh setup.py $(wildcard requirements/*.txt)

.PHONY: demo test test-fast env clean

env: $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	bash tools/install/setup_env.sh

# the demo pretrains only: mmcv without compiled ops is enough (no compile); see setup_env.sh
demo:
	bash tools/install/setup_env.sh --demo
	$(PY) tools/demo/run_demo.py

test: env
	$(PY) -m pytest -q -p no:cacheprovider tests

test-fast: env
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests

clean:
	rm -rf work_dirs .pytest_cache
