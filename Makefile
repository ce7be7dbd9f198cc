# Two entry points for a fresh machine: `make run` (install + the service on the
# embedded default, seeded with a demo catalog on first start) and `make test`
# (install + the whole suite). torch is pinned by constraints.txt to the CPU
# build on disk; pyproject keeps a range so other installs can pick their own.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean openclip-env

$(STAMP): pyproject.toml constraints.txt
	@echo "installing lucidrec and its dependencies into $(VENV) (about 3 minutes on a fresh machine)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# open_clip needs torchvision, which breaks transformers in .venv: it gets its own
# environment, and the open_clip backend test runs its code there.
OPENCLIP_VENV := .venv-openclip
$(OPENCLIP_VENV)/.installed: pyproject.toml constraints.txt
	@echo "installing the open_clip test environment into $(OPENCLIP_VENV)"
	test -x $(OPENCLIP_VENV)/bin/python || $(PYTHON) -m venv $(OPENCLIP_VENV)
	$(OPENCLIP_VENV)/bin/python -m pip install --disable-pip-version-check -c constraints.txt -e '.[open-clip]'
	touch $@

openclip-env: $(OPENCLIP_VENV)/.installed

run: install
	$(VENV)/bin/lucidrec serve --demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint openclip-env
	$(PY) -m pytest

bench: install
	$(PY) bench/quantizer.py
	$(PY) bench/ranker.py
	$(PY) bench/encoder.py
	$(PY) bench/workers.py
	$(PY) bench/api.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
