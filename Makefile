# The project's habits. `make deps` then `make test` on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: deps test lint fuzz bench demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

deps: $(BIN)/python
	$(BIN)/pip install -e '.[test]'

test:
	$(BIN)/pytest

# Coverage-guided fuzzing (tests/fuzz/README.md): each target for FUZZ_SECONDS. With clang, the
# compiled modules are fuzzed as copies built with coverage counters (.fuzz/native); failing inputs
# are kept in .fuzz/ and the run stops with libFuzzer's report.
FUZZ_SECONDS ?= 20
fuzz:
	mkdir -p .fuzz
	if command -v clang >/dev/null && $(BIN)/python tests/fuzz/build_native.py .fuzz/native >.fuzz/build.log 2>&1; \
	then native=.fuzz/native; else native=; echo "fuzz: no native coverage (clang missing or build failed: .fuzz/build.log)"; fi; \
	for target in decode encode scan_frames; do \
	  MACHINERY_FUZZ_NATIVE=$$native $(BIN)/python tests/fuzz/fuzz_$$target.py -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=.fuzz/$$target- > .fuzz/$$target.log 2>&1 \
	    || { tail -40 .fuzz/$$target.log; echo "fuzz_$$target failed"; exit 1; }; \
	  grep -h "^#.*DONE" .fuzz/$$target.log | sed "s/^/fuzz_$$target: /"; \
	done

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
