# One command each, on a fresh machine with Python 3.11: `make demo`, `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/dev.txt
EXTRAS := train,serve,cloud,tune,dev,quantize
APART := "smdebug==1.0.34" "pyinstrument==3.4.2" "pyinstrument_cext==0.2.4"
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)
# Both locks are complete (every package pinned): pip installs them with --no-deps, no resolver run. Bytecode is
# compiled after, on every core: pip's compile runs on one, and without it every process would compile what it
# imports again wherever PYTHONDONTWRITEBYTECODE is set (as on these machines; make test took twice as long).
compile = $(1)/bin/python -m compileall -q -j 0 $(1)
# make setup's environment has SageMaker Python SDK 3. SDK 2 cannot share a virtualenv with it (both own
# sagemaker/): its own, from a lock, until AWS ends its support (2027-07-06).
SDK2_VENV := .venv-sdk2
SDK2_STAMP := $(SDK2_VENV)/.installed-$(shell cksum requirements/sdk2.txt | cut -d' ' -f1)

.PHONY: setup setup-sdk2 lock demo test coverage test-docker bench bench-quick gpu-check graviton-check reliability reliability-quick lint clean

$(STAMP): pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	@command -v javac >/dev/null || { echo "error: javac not found: multi-model-server needs Java 17, and its /execution-parameters plugin a JDK to build (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q --no-deps --no-compile -r $(LOCK)
	$(call compile,$(VENV))
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m serve.mms_plugins
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

# $(LOCK) again from pyproject.toml's pins, by pip's resolver in a scratch virtualenv (after changing a pin).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade "pip>=24"
	.venv-lock/bin/python -m pip install -q ".[$(EXTRAS)]"
	.venv-lock/bin/python -m pip install -q --no-deps $(APART)
	{ sed -n '/^#/p' $(LOCK); .venv-lock/bin/python -m pip freeze --all --exclude-editable \
	  | grep -v -e '^pip==' -e '^sagemaker-dog-classifier=='; } > $(LOCK).new && mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock

# The .pth file puts the project's packages on its path (as make setup's editable install does) without a second
# egg-info build, which would race make setup's under `make -j2 setup setup-sdk2`.
$(SDK2_STAMP): requirements/sdk2.txt
	test -x $(SDK2_VENV)/bin/python || $(PYTHON) -m venv $(SDK2_VENV)
	$(SDK2_VENV)/bin/python -m pip install -q --no-deps --no-compile -r requirements/sdk2.txt
	$(call compile,$(SDK2_VENV))
	echo "$(CURDIR)" > "$$($(SDK2_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/dog-classifier.pth"
	rm -f $(SDK2_VENV)/.installed-*
	touch $@

setup-sdk2: $(SDK2_STAMP)

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash demo.sh

# SDK 2's environment too: tests/test_sdk_requests.py runs the scripts there and compares with SDK 2's requests.
test: setup setup-sdk2
	$(BIN)/python -m pytest

# make test under coverage.py (train/, serve/, imaging/, scripts/, contract/; docs/development.md has the figures).
coverage: export COVERAGE_DATA = $(CURDIR)/.coverage-data/run
coverage: setup setup-sdk2
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
