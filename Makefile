# Bespoke: the two commands are `make demo` and `make test` (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: venv demo test test-unit bench schemas registry lint servers-deps kafka-jars clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

## The native fold kernels (Rust, native/): rebuilt when their sources change. Without cargo
## the flow runs the Python folds (and says so).
NATIVE_SRC := native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs)
NATIVE_STAMP := $(VENV)/.native-$(shell cat $(NATIVE_SRC) | cksum | cut -d' ' -f1)

$(NATIVE_STAMP): $(STAMP) $(NATIVE_SRC)
	@if command -v cargo >/dev/null; then \
		$(BIN)/python -m pip install -q ./native; \
	else \
		echo "cargo not found: bespoke_native not built, the Python folds will run"; \
	fi
	@rm -f $(VENV)/.native-*; touch $(NATIVE_STAMP)

venv: $(STAMP) $(NATIVE_STAMP)

## The embedded default: generated events -> files under out/ and a printed report.
demo: venv
	$(BIN)/python -m flows demo --out out

## The whole suite, real Kafka and Redis included (started by the tests themselves), after
## the static gates (lint). Where cargo exists the native extension must be built: its
## parity tests may not be skipped.
test: venv servers-deps lint
	BESPOKE_REQUIRE_NATIVE=$$(command -v cargo >/dev/null && echo 1 || echo 0) \
		$(BIN)/python -m pytest

## Pure unit tests only (no servers).
test-unit: venv
	$(BIN)/python -m pytest -m "not kafka and not redis"

## Throughput figures, printed and written to out/bench.json.
bench: venv servers-deps
	$(BIN)/python -m scripts.bench

## Regenerate the JSON Schemas of the event contracts under schemas/.
schemas: venv
	$(BIN)/python scripts/export_schemas.py

## Static gates: ruff, import-linter contracts, mypy, and clippy on the native kernels.
lint: venv
	$(BIN)/ruff check flows operators connectors features policies tests scripts
	$(BIN)/lint-imports
	$(BIN)/mypy flows operators connectors features policies
	@if command -v cargo >/dev/null; then \
		cd native && cargo clippy --release -q -- -D warnings; \
	fi

## Redis server, Java + Maven and the Kafka jars (skipped for what the env provides).
servers-deps:
	scripts/install-server-deps.sh

kafka-jars:
	scripts/kafka-broker.sh jars

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache *.egg-info

## Refresh the feature registry lock and its exported contract (after a version bump).
registry: venv
	$(BIN)/python scripts/export_registry.py
