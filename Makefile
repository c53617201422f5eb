# Everything runs from a project-local virtual environment so a fresh clone needs only python3.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo cassettes bench bench-large bench-webhooks test-full clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

# pytest-xdist workers: one more than the cores, because about a third of the suite's time is
# spent waiting on real processes (serve, killed scans, slowed sandboxes). On 2 cores: 2 workers
# 110 s, 3 workers 95 s, 4 workers 102 s. WORKERS=0 runs in one process, e.g. to debug.
WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))

# The suite starts a hundred-odd interpreters (workers, a fork server, scans, serve): each would
# compile loopsync and rewrite the tests' asserts again if PYTHONDONTWRITEBYTECODE is set, as it
# is on many CI images. Their bytecode goes to the venv, out of the source tree.
PYTEST := env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(abspath $(VENV))/pycache $(BIN)/python -m pytest

test: $(STAMP) lint
	$(PYTEST) -q -n $(WORKERS) --dist worksteal

# Adds the long randomized runs: the crash matrix's random-moment kills, all fault-convergence seeds.
test-full: $(STAMP) lint
	LOOPSYNC_FULL=1 $(PYTEST) -q -n $(WORKERS) --dist worksteal

demo: $(STAMP)
	$(BIN)/loopsync demo

cassettes: $(STAMP)
	$(BIN)/python scripts/record_cassettes.py

# Rewrites the table in README.md's "Cost and rate limits"; TIME_SCALE=1 runs the rate limits in real time.
bench: $(STAMP)
	$(BIN)/python benchmarks/scan_benchmark.py

# Webhook mode: exchange-to-hold latency (200 exchanges, with and without 100 ms API latency,
# against a computed 5-minute cron), then a burst of 500 deliveries, then Loop return -> note
# for 50 waiting exchanges. About three minutes.
bench-webhooks: $(STAMP)
	$(BIN)/python benchmarks/webhook_latency.py
	$(BIN)/python benchmarks/webhook_burst.py
	$(BIN)/python benchmarks/loop_note_latency.py

# Adds a 100,000-order store to the scale runs (several minutes: the sandbox searches every order per page).
bench-large: $(STAMP)
	$(BIN)/python benchmarks/scan_benchmark.py --scale-orders 20000 100000

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
