# One-command set-up: `make demo` launches the app, `make test` runs the suite (what CI runs).
# Both create .venv and install everything on a fresh machine of this kind.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
# Where `make demo` and `make app` listen: `make demo PORT=8080 HOST=0.0.0.0`, or the app's own
# settings from the environment (GRADIO_SERVER_PORT, COLORIZE_HOST), which a default here would override.
HOST ?= $(or $(COLORIZE_HOST),127.0.0.1)
PORT ?= $(or $(GRADIO_SERVER_PORT),7860)
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

# The app with a small "demo" study built first (once); `make app` starts it as it is.
demo: setup
	$(PY) -m survey.demo
	$(PY) app.py --host $(HOST) --port $(PORT)

app: setup
	$(PY) app.py --host $(HOST) --port $(PORT)

bench: setup
	$(PY) -m colorize.bench

# A Hugging Face Space folder staged in its own git repository, weights in Git LFS (git-lfs
# required); it prints the commands that publish it.
space:
	rm -rf $(SPACE)
	python3 scripts/make_space.py $(SPACE)

clean:
	rm -rf $(VENV) .pytest_cache
