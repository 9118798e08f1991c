# The project's habits. `make deps` then `make test` on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: deps test lint bench demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

deps: $(BIN)/python
	$(BIN)/pip install -e '.[test]'

test:
	$(BIN)/pytest

lint:
	$(BIN)/ruff check machinery tests examples benchmarks setup.py
	$(BIN)/mypy --strict
	$(BIN)/basedpyright

# Speed and memory figures (never timed tests). The AMQP run needs RabbitMQ at 127.0.0.1:5672.
bench:
	$(BIN)/pip install -e '.[test,bench]'
	$(BIN)/python -m benchmarks.codec
	$(BIN)/python -m benchmarks.transport_sqlite
	$(BIN)/python -m benchmarks.throughput --broker sqlite
	$(BIN)/python -m benchmarks.throughput --broker amqp

demo:
	$(BIN)/machinery demo

clean:
	rm -rf build dist *.egg-info machinery/_speedups/*.c machinery/_speedups/*.so
