# Two entry points for a fresh machine: `make serve` and `make test`. Both set up .venv first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# The bundled default model needs no network; never let a library reach for a model hub.
export HF_HUB_OFFLINE := 1

.PHONY: install serve test lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# The CPU build of torch first: sentence-transformers would otherwise pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

serve: install
	$(BIN)/medrag serve --host $${MEDRAG_HOST:-127.0.0.1} --port $${MEDRAG_PORT:-8000}

test: install
	$(BIN)/python -m pytest

# Style and the import layers (docs/architecture.md); .ci/run runs this before the tests.
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports
