# The two commands: `make demo` (main job on the embedded data and model) and `make test` (whole suite).
# Each creates .venv and installs what it needs on a fresh machine with Python 3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench setup clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/llmrec demo

test: $(VENV)/.installed
	$(PY) -m pytest -p no:cacheprovider --timeout 600

bench: $(VENV)/.installed
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) build src/*.egg-info
