# The two commands: `make demo` and `make test` (each sets up .venv itself).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.racl-installed

.PHONY: install demo test bench gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[test,tensorboard]"
	$(PIP) install -q --no-deps torchattacks
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/racl demo --out runs/demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -q tests

# Benchmarks: run on a quiet machine (other processes on the same cores distort timings badly).
bench: $(STAMP)
	mkdir -p runs/bench
	$(VENV)/bin/racl bench supernet --json --repeats 2 > runs/bench/supernet.json
	$(VENV)/bin/racl bench attack --json --repeats 2 > runs/bench/attack.json
	$(VENV)/bin/racl bench train --json --repeats 2 > runs/bench/train.json
	$(VENV)/bin/racl bench search --json --repeats 2 --strategies racl,pcdarts,advrush,gdas > runs/bench/search.json
	cat runs/bench/*.json

# GPU readiness on one CUDA GPU, under 8 minutes (time boxes of 450 s in all): gpu tests, timed slices of
# the paper's search (gamma 0.1, op count) and training in float32 / bf16 / channels-last extrapolated to
# full runs, 2 ranks on the GPU, search + train + evaluate killed and resumed, the sync-debug run.
# Without a GPU it says so and exits 0. Results: runs/gpu-check/{gpu-check.json,summary.md,logs/}.
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py --out runs/gpu-check

clean:
	rm -rf $(VENV) runs .pytest_cache
