# The single source of set-up: every target creates .venv and installs the project when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup fit test test-reverse report bench clean

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

# The same suite with its files in reverse order: proves no test depends on import order.
test-reverse: $(STAMP)
	$(BIN)/python -m pytest $$(ls parity_tests/test_*.py | sort -r) $(ARGS)

# Records newly finished runs of RECORD_FROM in reports/runs/ (where present), then rebuilds bands,
# comparisons, figures and the results page reports/README.md from reports/runs/ alone.
report: $(STAMP)
	$(BIN)/python -m cifar_common.report --take-in $(wildcard $(RECORD_FROM))

# Training and inference speed of Keras, the port under Lightning and a bare loop (README, "Speed").
bench: $(STAMP)
	$(BIN)/python -m lightning_impl.bench $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
