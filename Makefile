# Bespoke: the two commands are `make demo` and `make test` (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: venv demo screenshot test test-unit bench quality schemas registry check lint servers-deps kafka-jars clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

## The native fold kernels (Rust, native/): rebuilt when their sources change. Without cargo
## the flow runs the Python folds (and says so).
NATIVE_SRC := native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs) \
              $(wildcard native/src/kernels/*.rs)
NATIVE_STAMP := $(VENV)/.native-$(shell cat $(NATIVE_SRC) | cksum | cut -d' ' -f1)

$(NATIVE_STAMP): $(STAMP) $(NATIVE_SRC)
	@command -v cargo >/dev/null || scripts/install-server-deps.sh cargo || true
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

## The README's dashboard picture: headless Chromium renders the demo's out/dashboard.html.
screenshot: venv servers-deps
	@test -f out/dashboard.html || $(MAKE) demo
	$(BIN)/python -m scripts.chromium out/dashboard.html --png docs/img/dashboard.png

## The whole suite, real Kafka and Redis included (started by the tests themselves), after
## the static gates (check). The native extension must be built (cargo is installed where
## it is missing): a run without it fails instead of skipping the parity tests. The tests
## run in TEST_WORKERS processes (pytest-xdist, one test file per process at a time); each
## process starts its own broker and Redis server when its tests need them.
TEST_WORKERS ?= 2
test: venv servers-deps check
	BESPOKE_REQUIRE_NATIVE=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

## Pure unit tests only (no servers).
test-unit: venv
	$(BIN)/python -m pytest -m "not kafka and not redis"

## Throughput figures, printed and written to out/bench.json.
bench: venv servers-deps
	$(BIN)/python -m scripts.bench

## Recommendation quality: `flows evaluate` on generated data and the OTTO sample (~4 min).
quality: venv
	$(BIN)/python -m scripts.quality

## Regenerate the JSON Schemas of the event contracts under schemas/.
schemas: venv
	$(BIN)/python scripts/export_schemas.py

## Static gates: ruff, import-linter contracts, mypy (the native stub included), and on
## the native kernels clippy and their Rust unit tests.
check: venv
	$(BIN)/ruff check flows operators connectors agent features policies tests scripts
	$(BIN)/lint-imports
	$(BIN)/mypy flows operators connectors agent features policies
	$(BIN)/mypy --strict features policies agent
	cd native && cargo clippy --release -q --all-targets -- -D warnings
	cd native && PYO3_PYTHON=$(CURDIR)/$(BIN)/python cargo test --release -q

lint: check

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
