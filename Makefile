# Everything runs from a project-local virtual environment so a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo cassettes bench bench-webhooks test-full clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

# pytest-xdist workers: one per core ("auto"); WORKERS=0 runs in one process, e.g. to debug.
WORKERS ?= auto

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist worksteal

# Adds the long randomized runs: the crash matrix's random-moment kills, all fault-convergence seeds.
test-full: $(STAMP) lint
	LOOPSYNC_FULL=1 $(BIN)/python -m pytest -q -n $(WORKERS) --dist worksteal

demo: $(STAMP)
	$(BIN)/loopsync demo

cassettes: $(STAMP)
	$(BIN)/python scripts/record_cassettes.py

bench: $(STAMP)
	$(BIN)/python benchmarks/scan_benchmark.py

# Webhook mode: exchange-to-hold latency (200 exchanges, with and without 100 ms API latency,
# against a computed 5-minute cron), then a burst of 500 deliveries. About two minutes.
bench-webhooks: $(STAMP)
	$(BIN)/python benchmarks/webhook_latency.py
	$(BIN)/python benchmarks/webhook_burst.py

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
