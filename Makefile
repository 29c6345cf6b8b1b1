# Every target sets up .venv itself, so a fresh clone needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   ?= ./data

.PHONY: venv run test chaos check lint unit coverage bench bench-failover bench-compare bench-fairness \
	bench-fairness-quick bench-backlog bench-backlog-quick clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

run: $(STAMP)
	$(PY) -m broker start --data $(DATA) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy broker stores transports config benchmarks

test: lint
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 -m "not chaos" tests

# Long kill -9 loops (marker chaos), each bounded in kills and time; make test runs their short forms.
chaos: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 -m chaos tests $(ARGS)

# The fast loops leave out the multi-process HA tests (marker ha) and the crash loops (marker slow).
FAST := -m "not ha and not slow"

unit: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider $(FAST) tests/unit

check: lint
	$(PY) -m pytest -q -p no:cacheprovider $(FAST) tests

# The whole suite under coverage, broker subprocesses included (see [tool.coverage.run]). A child
# killed while it was saving leaves a damaged data file, which combine names and skips.
coverage: $(STAMP)
	$(VENV)/bin/coverage erase
	$(VENV)/bin/coverage run -m pytest -q -p no:cacheprovider tests; status=$$?; \
	$(VENV)/bin/coverage combine --quiet && $(VENV)/bin/coverage html --quiet && \
	echo "total coverage: $$($(VENV)/bin/coverage report --format=total)% (per file: htmlcov/index.html)"; \
	exit $$status

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks.run --json-dir benchmarks/results $(ARGS)

bench-failover: $(BENCH_STAMP)
	$(PY) -m broker bench failover --json benchmarks/results/failover.json \
		--plot benchmarks/results/failover.png $(ARGS)

# The e2e scenarios against BatonMQ (each store) and ActiveMQ, alternating rounds (issue 15); installs
# Debian's activemq package where it is missing and the machine allows, else says so and exits 0.
# ARGS="--quick", "--rounds 5", "--stores journal", "--check" (exit 1 when a goal is missed).
bench-compare: $(BENCH_STAMP)
	$(PY) -m benchmarks.compare --json benchmarks/results/compare.json \
		--plot benchmarks/results/compare.png $(ARGS)

# Hostile loads beside a well-behaved client (issue 11); reports missed goals, exits 0 (ARGS="--check").
bench-fairness: $(STAMP)
	$(PY) -m benchmarks.fairness --json benchmarks/results/fairness.json $(ARGS)

bench-fairness-quick: $(STAMP)
	$(PY) -m benchmarks.fairness --quick --json benchmarks/results/fairness-quick.json $(ARGS)

# A persistent backlog produced, recovered cold, taken over warm and drained (issue 12); N = 100k and 1M.
# ARGS="--long" (adds 10M), "--stores all", "--cursor-window 8mb", "--check" (exit 1 when a goal is missed).
bench-backlog: $(STAMP)
	$(PY) -m benchmarks.backlog --json benchmarks/results/backlog.json $(ARGS)

bench-backlog-quick: $(STAMP)
	$(PY) -m benchmarks.backlog --quick --json benchmarks/results/backlog-quick.json $(ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache .coverage .coverage.* htmlcov
