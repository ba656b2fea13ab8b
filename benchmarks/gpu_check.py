"""`make gpu-check`: GPU readiness in one command (see racl.bench.gpu_check for the steps).

    .venv/bin/python benchmarks/gpu_check.py            # the whole check, under 8 minutes on one GPU
    .venv/bin/python benchmarks/gpu_check.py --plan     # the steps and their time boxes
    .venv/bin/python benchmarks/gpu_check.py --only tests,slice-train --budget 200

Writes runs/gpu-check/gpu-check.json, runs/gpu-check/summary.md and runs/gpu-check/logs/STEP.log.
Without CUDA it says so in one line, runs only the gpu tests (they skip) and exits 0.
"""
import sys

from racl.bench.gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
