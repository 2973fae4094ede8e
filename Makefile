# Two commands: `make demo` and `make test`. Both create .venv when it is missing and
# install the exact versions the suite passed with (requirements/lock.txt).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/lock.txt

.PHONY: demo test test-slow test-all test-compat test-min test-newest lock lint format clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, at the lock's CPU build that this machine serves locally: a bare `torch`
# requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install -q -c $(LOCK) torch
	$(BIN)/pip install -q -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/fairvlm demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# Tests marked slow (efficacy, multi-process) and browser (headless Chromium); CI runs them too.
test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "slow or browser"; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

test-all: test test-slow

# The fast suite in fresh venvs: every direct dependency at its pyproject.toml floor,
# and the newest releases (docs/install.md).
test-compat: test-min test-newest

test-min:
	PYTHON=$(PYTHON) bash scripts/compat_env.sh min

test-newest:
	PYTHON=$(PYTHON) bash scripts/compat_env.sh newest

# Regenerate the lock: the fast suite on the newest releases, then their exact versions.
lock: test-newest
	{ echo "# The versions the fast suite passed with: \`make lock\` ($$(date -u +%F), $$(.venv-newest/bin/python -V))."; \
	  .venv-newest/bin/pip freeze --exclude-editable; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format:
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .venv-min .venv-newest .venv-lock build *.egg-info src/*.egg-info .pytest_cache
