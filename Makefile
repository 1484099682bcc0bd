# One command each, on a fresh machine with Python 3.11: `make demo`, `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup demo test coverage test-docker bench bench-quick gpu-check graviton-check reliability reliability-quick lint clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	@command -v javac >/dev/null || { echo "error: javac not found: multi-model-server needs Java 17, and its /execution-parameters plugin a JDK to build (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -e ".[train,serve,cloud,tune,dev,quantize]"
	$(BIN)/python -m pip install -q --no-deps "smdebug==1.0.34" "pyinstrument==3.4.2" "pyinstrument_cext==0.2.4"
	$(BIN)/python -m serve.mms_plugins
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash demo.sh

test: setup
	$(BIN)/python -m pytest

# make test under coverage.py (train/, serve/, imaging/, scripts/, contract/; docs/development.md has the figures).
coverage: export COVERAGE_DATA = $(CURDIR)/.coverage-data/run
coverage: setup
	rm -rf .coverage-data && mkdir .coverage-data
	$(BIN)/python -m coverage run -m pytest -p no:cacheprovider
	$(BIN)/python -m coverage combine -q
	$(BIN)/python -m coverage report

# Builds both images and runs them for real (needs root for the engine it starts: CI's Docker stage).
test-docker: setup
	bash .ci/docker-stage.sh

bench: setup
	$(BIN)/python -m bench

bench-quick: setup
	$(BIN)/python -m bench --quick

# The CUDA path on a machine with an NVIDIA GPU (says "no GPU" and succeeds elsewhere).
gpu-check: setup
	$(BIN)/python -m bench.gpu

# The serving image for Graviton (arm64), built and run under QEMU next to the amd64 one (needs Docker and
# qemu-user-static; BASE_IMAGE_ARM64, SERVE_IMAGE to change the images): docs/docker.md.
graviton-check: setup
	$(BIN)/python -m bench.graviton

# Load, a worker crash and the bad-input corpus against the live server (exits 1 if a check fails).
reliability: setup
	$(BIN)/python -m reliability

reliability-quick: setup
	$(BIN)/python -m reliability --quick

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache .hypothesis .coverage-data
