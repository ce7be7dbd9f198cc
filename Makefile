# Two entry points for a fresh machine: `make test` (install + whole suite) and,
# once the API lands, `make run`. torch is pinned by constraints.txt to the CPU
# build on disk; pyproject keeps a range so other installs can pick their own.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

bench: install
	$(PY) bench/quantizer.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
