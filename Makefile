# The single source of set-up: every target creates .venv and installs the project when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup fit test test-reverse report bench clean

# The newest Keras and Lightning dropout runs under RUNS (see README, "Training runs").
RUNS ?= runs/epochs3
KERAS_RUN ?= $(lastword $(sort $(wildcard $(RUNS)/keras-dropout-*)))
LIGHTNING_RUN ?= $(lastword $(sort $(wildcard $(RUNS)/lightning-dropout-*)))

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

fit: $(STAMP)
	$(BIN)/python -m lightning_impl.fit --dropout $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest parity_tests $(ARGS)

# The same suite with its files in reverse order: proves no test depends on import order.
test-reverse: $(STAMP)
	$(BIN)/python -m pytest $$(ls parity_tests/test_*.py | sort -r) $(ARGS)

# Compare the two runs into reports/ (train them first with --epochs 3 --out runs/epochs3).
report: $(STAMP)
	$(BIN)/python -m lightning_impl.compare $(KERAS_RUN) $(LIGHTNING_RUN) --out reports/comparison-$(notdir $(RUNS))
	for run in $(KERAS_RUN) $(LIGHTNING_RUN); do \
	  mkdir -p reports/runs/$$(basename $$run) && cp $$run/*.csv $$run/*.json $$run/config.yaml reports/runs/$$(basename $$run)/; done

# Training and inference speed of Keras, the port under Lightning and a bare loop (README, "Speed").
bench: $(STAMP)
	$(BIN)/python -m lightning_impl.bench $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
