# Two entry points, each sets up its own virtual environment (.venv) first:
#   make demo   track a generated dataset in a throw-away git repo, change it, restore it
#   make test   install mlv with its test extras, then run ruff, mypy and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" bash examples/demo.sh

test: $(VENV)/.installed-test
	$(BIN)/ruff check mlv tests
	$(BIN)/mypy mlv
	PATH="$(abspath $(BIN)):$$PATH" MLV_REQUIRE_S3=1 $(BIN)/python -m pytest -q -p no:cacheprovider -n 2

clean:
	rm -rf $(VENV)
