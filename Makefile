# One-command set-up: `make demo` launches the app, `make test` runs the suite (what CI runs).
# Both create .venv and install everything on a fresh machine of this kind.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
HOST ?= 127.0.0.1
PORT ?= 7860
SPACE ?= dist/space

.PHONY: setup system-deps test test-fast demo app bench space clean

setup: $(VENV)/.installed

# Every extra (app, survey, bench, test): the suite exercises all of them.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(PIP_FLAGS) --upgrade pip
	# Pinned so pip takes the CPU wheel instead of a multi-GB CUDA build.
	$(PY) -m pip install -q $(PIP_FLAGS) torch==2.13.0
	$(PY) -m pip install -q $(PIP_FLAGS) -e '.[all]'
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

test: setup system-deps
	$(PY) -m pytest

# The quick loop while developing: no browser, no PostgreSQL, nothing marked slow.
test-fast: setup
	$(PY) -m pytest -m "not slow and not browser and not postgres"

demo: setup
	$(PY) -m survey.demo
	$(PY) app.py --host $(HOST) --port $(PORT)

app: setup
	$(PY) app.py --host $(HOST) --port $(PORT)

bench: setup
	$(PY) -m colorize.bench

# A ready Hugging Face Space folder (weights through Git LFS); the README says how to push it.
space:
	rm -rf $(SPACE)
	python3 scripts/make_space.py $(SPACE)

clean:
	rm -rf $(VENV) .pytest_cache
