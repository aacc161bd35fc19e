# Two commands matter: `make run` and `make test`. Both set up what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8080
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup browser run test lint typecheck unit clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Headless Chromium for the dashboard's browser tests (Debian's package; as root).
browser:
	test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# The demo estate on SQLite in ./.demo/ (migrated on start); DEMO_ARGS=--reset starts clean.
# With a config of your own: $(VENV)/bin/switchyard serve --config switchyard.yaml
run: setup
	$(VENV)/bin/switchyard demo --host $(HOST) --port $(PORT) $(DEMO_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy

unit: setup browser
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache switchyard.db* .demo
