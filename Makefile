# The single source of set-up: every target creates .venv and installs the project when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup fit test test-fast test-reverse report bench bench-fit clean

# Where finished full-budget runs are made (python -m ... --out runs/full); `make report` records them.
RECORD_FROM ?= runs/full runs/bands-e2

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/pip || $(PYTHON) -m venv --clear $(VENV)  # also repairs a venv cut off half-made
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

fit: $(STAMP)
	$(BIN)/python -m lightning_impl.fit --dropout $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest parity_tests --durations=15 $(ARGS)

# The numerical core alone (parity_tests/conftest.py FAST_MODULES): forward, gradients, optimizer, lockstep,
# split, metrics, weight transfer; no end-to-end runs.
test-fast: $(STAMP)
	$(BIN)/python -m pytest parity_tests -m fast --durations=10 $(ARGS)

# The same suite with its files in reverse order: proves no test depends on import order.
test-reverse: $(STAMP)
	$(BIN)/python -m pytest $$(ls parity_tests/test_*.py | sort -r) $(ARGS)

# Records newly finished runs of RECORD_FROM in reports/runs/ (where present), then rebuilds bands,
# comparisons, figures and the results page reports/README.md from reports/runs/ alone.
report: $(STAMP)
	$(BIN)/python -m cifar_common.report --take-in $(wildcard $(RECORD_FROM))

# Training and inference speed of Keras (TensorFlow and torch backends), the port under Lightning and a
# bare loop, against the measured matmul ceiling, into reports/bench.json (docs/speed.md).
bench: $(STAMP)
	$(BIN)/python -m cifar_common.bench $(ARGS)

# Opt-in: the second epoch of each framework's fit on the full data, Keras, port, port, Keras (about
# 20 minutes on 2 cores), into reports/bench-fit.json.
bench-fit: $(STAMP)
	$(BIN)/python -m cifar_common.bench --fit $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
