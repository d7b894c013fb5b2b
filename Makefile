# voicebus: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# pytest-xdist workers, each with its own broker: most tests wait on Kafka, the sandbox or
# a subprocess. A module stays on one worker, the fault-injection tests all on one
# (tests/conftest.py): with two workers the rest of the suite runs beside them, and the
# wall time is about theirs; a third worker only adds CPU contention on 2 cores
# (1 runs the suite in one process)
TEST_WORKERS ?= 2
# the 20 slowest tests are listed at the end: where the suite's time goes
PYTEST_RUN   := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=20

.PHONY: install tools run test test-tansu lint unit schemas asyncapi demo bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## make run: embedded broker (unless KAFKA_BOOTSTRAP_SERVERS), sandbox (unless EXOTEL_ACCOUNT_SID), services
run: install
	$(PY) -m services.stack

## make demo: against a running `make run`, publish a call.connect and print its facts
demo: install
	$(PY) -m services.stack.demo

## make tools: kcat, prometheus and promtool for the tests, wrk for make bench, from apt when missing (root)
tools:
	@sh deploy/install-tools.sh \
	  || echo "make: not every tool could be installed; the tests that need one skip and say why"

## make test: lint, types, schema drift, the tests' tools, then the whole suite on a real broker
## (KAFKA_BOOTSTRAP_SERVERS, else testcontainers, else Apache Kafka from its jars, else Tansu),
## in TEST_WORKERS processes, each with a broker of its own
test: install lint tools
	$(PYTEST_RUN)

## make test-tansu: the tests that use a broker, again on the embedded Tansu broker
## (what machines without Java get from `make run`)
test-tansu: install tools
	VOICEBUS_BROKER=tansu VOICEBUS_BROKER_TESTS_ONLY=1 $(PYTEST_RUN)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy services contracts tests bench
	$(PY) -m contracts.export --check
	$(PY) -m services.cli.asyncapi --check

unit: install
	$(PY) -m pytest -m "not integration and not reliability"

schemas: install
	$(PY) -m contracts.export

asyncapi: install
	$(PY) -m services.cli.asyncapi

bench: install
	@sh deploy/install-tools.sh wrk >/dev/null \
	  || echo "make: wrk could not be installed; the ingress benchmark needs it"
	$(PY) -m bench

clean:
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache
