# One-command set-up: `make demo` launches the app, `make test` runs the suite.
# Both create .venv and install everything on a fresh machine of this kind.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: setup system-deps test test-fast demo app bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(PIP_FLAGS) --upgrade pip
	# Pinned so pip takes the CPU wheel instead of a multi-GB CUDA build.
	$(PY) -m pip install -q $(PIP_FLAGS) torch==2.13.0
	$(PY) -m pip install -q $(PIP_FLAGS) -e '.[test]'
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

test: setup system-deps
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not browser and not postgres"

demo: setup
	$(PY) -m survey.demo
	$(PY) app.py --host $(HOST) --port $(PORT)

app: setup
	$(PY) app.py --host $(HOST) --port $(PORT)

bench: setup
	$(PY) -m colorize.bench

clean:
	rm -rf $(VENV) .pytest_cache
