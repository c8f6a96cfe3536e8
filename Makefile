# The README's two commands: `make demo` and `make test`. Both create the
# virtual environment when it is missing and install from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint venv clean arm64-check

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[device,train,dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m convert.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest

test-fast: lint
	$(PY) -m pytest -m "not slow"

# The device installed from its wheel by firmware_config/install.sh inside Debian
# Bookworm and Trixie arm64 root file systems under qemu (root, mmdebstrap and
# binfmt_misc needed; exits 3 and says why where they cannot be had, 0 with
# ARM64_OPTIONAL=1, as CI runs it).
ARM64_OPTIONAL ?= 0
arm64-check: $(STAMP)
	PYTHON=$(abspath $(PY)) ARM64_OPTIONAL=$(ARM64_OPTIONAL) bash firmware_config/arm64-check.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo_data
