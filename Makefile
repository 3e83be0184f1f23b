# Two commands: `make repro` (set up, then run the DVC pipeline) and `make test` (set up, then pytest).
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
KERNEL  := tripost

# Offline by default: no hub look-ups (each would cost ~47 s of retries), no DVC analytics.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export DVC_NO_ANALYTICS := 1
# glibc malloc settings measured 5-25% faster for tensor-heavy CPU work on the 2-core development VM.
export MALLOC_MMAP_THRESHOLD_ ?= 33554432
export MALLOC_TRIM_THRESHOLD_ ?= 68719476736
export MALLOC_TOP_PAD_ ?= 1073741824
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: setup repro seeds test bench clean-venv

setup: $(STAMP)

# Rebuilt when the requirements or the kernel installer change, or the venv no longer runs (e.g. it was moved).
$(STAMP): requirements.txt constraints.txt pyproject.toml src/tripost/lifeline.py
	@$(PY) -c "import sys" 2>/dev/null || { rm -rf $(VENV); python3 -m venv $(VENV); }
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -r requirements.txt -e .
	$(PY) -m tripost.lifeline install-kernel --prefix $(abspath $(VENV)) --name $(KERNEL) --display-name "TriPosT (.venv)" >/dev/null
	@touch $(STAMP)

repro: setup
	$(VENV)/bin/dvc repro

# More seeds of everything after M0 (interaction sampling, iteration and baseline training) as DVC
# experiments on the committed run (seed 0): M0 is never retrained (the sft stage does not read the
# seed). Then the workspace is put back to the commit and the mean over seeds is written.
SEEDS ?= 1 2
seeds: setup
	@git diff --quiet HEAD -- params.yaml dvc.lock || { echo "make seeds: params.yaml or dvc.lock has uncommitted changes; commit the run the seeds start from first" >&2; exit 1; }
	for s in $(SEEDS); do $(VENV)/bin/dvc exp run -n seed-$$s -S seed=$$s || exit 1; done
	git checkout -- params.yaml dvc.lock && $(VENV)/bin/dvc checkout -q
	$(PY) -m tripost.report seeds reports/seeds.json --markdown reports/seeds.md

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/generation_throughput.py

clean-venv:
	rm -rf $(VENV)
