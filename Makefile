# Quick start: `make run` (the default pipeline) and `make test` (the tests).
# Both create .venv from the pinned, hashed lock when it is missing or out of date.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned by version in its own step: the CPU build's hash differs from PyPI's (a
# CUDA build), so it cannot sit in the hashed lock. On a machine whose pip would fetch the CUDA
# build, set TORCH_INDEX to an index of CPU wheels (PyTorch publishes one):
#   make run TORCH_INDEX=<URL of a CPU torch index>
TORCH_VERSION := 2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.prefalign-installed
CORES ?= all
export PATH := $(abspath $(BIN)):$(PATH)
export HF_HUB_OFFLINE ?= 1

.PHONY: all run test test-fast lint lock lock-gpu lock-trackers trackers bench clean venv digests bounds seed-spread

all: run

$(STAMP): envs/cpu.lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r envs/cpu.lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

# The optional experiment trackers (W&B, MLflow: tracking.wandb, tracking.mlflow) from their own
# hashed lock, constrained by the cpu lock so nothing of it changes; `make test` needs them (the
# tracker tests run both for real, offline). 32 packages, about 160 MB and 37 s on the
# development machine (docs/usage.md, "Health signals").
TRACKERS_STAMP := $(VENV)/.prefalign-trackers
$(TRACKERS_STAMP): $(STAMP) envs/trackers.lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r envs/trackers.lock.txt
	touch $@

trackers: $(TRACKERS_STAMP)

run: venv
	snakemake --cores $(CORES)
	@echo "report: results/report/report.html; to run prefalign or snakemake yourself: source $(VENV)/bin/activate"

# The full suite, in two halves so that each prints its time (CI's log shows both): the unit, step and
# slow tests, then the workflow tests (real Snakemake runs; they share one run of the default,
# tests/conftest.py default_run).
test: venv trackers
	@t=$$(date +%s); pytest -m "not workflow" --durations=15 && echo "make test: unit, step and slow tests passed in $$(($$(date +%s) - t)) s"
	@t=$$(date +%s); pytest -m workflow --durations=15 && echo "make test: workflow tests passed in $$(($$(date +%s) - t)) s"

# The published digests of the embedded default (docs/reproducibility.md, "Published digests and
# check"): run it, then write every artifact's sha256 and what made it from the run's manifest.
# Never edited by hand; commit the file it writes. `snakemake --cores all check` compares with it.
DIGESTS ?= expected/default-digests.json
digests: run
	prefalign digests --manifest results/manifest.json --out $(DIGESTS)

# The bounds of expected/default.yaml from a measured spread (docs/reproducibility.md, "Bounds from a
# measured spread"). seed-spread runs the default at seeds 1234 1 2 3 4, twice unpinned at seed 1234
# (ATEN_CPU_CAPABILITY avx512, default) and at validation seeds 5 6: about an hour on 2 cores, one run
# after the other, resumable; it writes bench/results/seed_spread.json (commit it). bounds writes
# expected/default.yaml from that JSON and checks the validation seeds against it: never edit the
# expected file by hand.
seed-spread: venv
	python bench/seed_spread.py

bounds: venv
	python bench/derive_bounds.py

test-fast: venv
	pytest -m "not workflow and not slow"

# SLURM end to end, as root: a real single-node cluster (munge and slurm-wlm installed with apt
# when missing), the default workflow locally and through profiles/slurm, artifacts compared.
.PHONY: test-slurm
test-slurm: venv
	VENV_PYTHON=$(BIN)/python tests/slurm/run.sh

lint: venv
	snakemake --lint
	snakefmt --check Snakefile rules/

# Re-resolve the lock after editing envs/cpu.in (needs the package index: the one pip is configured
# with, PIP_INDEX_URL, else uv's own default or UV_INDEX_URL).
LOCK_INDEX = $(if $(PIP_INDEX_URL),--index-url $(PIP_INDEX_URL))
lock: venv
	$(BIN)/python -m pip install --quiet uv==0.13.9
	UV_FIND_LINKS=$${PIP_FIND_LINKS:-} $(BIN)/python -m uv pip compile envs/cpu.in --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-emit-package torch \
	  $(LOCK_INDEX) -o envs/cpu.lock.txt

# Re-resolve the trackers' lock after editing envs/trackers.in (constrained by the cpu lock).
lock-trackers: venv
	$(BIN)/python -m pip install --quiet uv==0.13.9
	$(BIN)/python -m uv pip compile envs/trackers.in -c envs/cpu.lock.txt --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-emit-package torch \
	  -o envs/trackers.lock.txt

# The gpu environment (Unsloth's pins) for CUDA images and GPU nodes: Linux x86-64, Python 3.12.
lock-gpu: venv
	$(BIN)/python -m pip install --quiet uv==0.13.9
	$(BIN)/python -m uv pip compile envs/gpu.in --override envs/gpu-overrides.txt --generate-hashes \
	  --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
	  $(LOCK_INDEX) -o envs/gpu.lock.txt

bench: venv
	python bench/workflow_wall.py

# Container images (docs/reproducibility.md, "Containers"; docs/containers.md): build them, convert them to Apptainer SIFs and write
# each SIF, named by its sha256, into config.yaml's `containers` section. IMAGES="cpu" builds
# one; BUILD_FLAGS="--local-base" builds the cpu image offline. test-containers is CI's
# container step (root on Debian bookworm: builds, runs the workflow in Apptainer, compares).
IMAGES ?= cpu gpu
BUILD_FLAGS ?=
.PHONY: images test-containers
images:
	containers/build.sh $(BUILD_FLAGS) $(IMAGES)

test-containers: venv
	containers/ci.sh

clean:
	rm -rf results logs benchmarks .snakemake
