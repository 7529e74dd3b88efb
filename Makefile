# The single source of set-up: every target creates .venv and installs the project when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup fit test test-reverse report bench bench-fit clean

# The newest finished Keras and Lightning dropout runs under RUNS are compared (README, "Accuracy bands");
# every finished run under BAND_DIRS goes into reports/bands.json.
RUNS ?= runs/full
# Finished runs (those with metrics.json) named $(1)-<date>-<time> under RUNS, oldest first.
finished = $(patsubst %/metrics.json,%,$(sort $(wildcard $(RUNS)/$(1)-*/metrics.json)))
KERAS_RUN ?= $(lastword $(call finished,keras-dropout))
LIGHTNING_RUN ?= $(lastword $(call finished,lightning-dropout))
# The yardstick for that comparison: the two oldest Keras dropout runs (two seeds, one framework).
KERAS_PAIR ?= $(wordlist 1,2,$(call finished,keras-dropout))
BAND_DIRS ?= runs/bands-e2 runs/full
BAND_RUNS = $(foreach dir,$(BAND_DIRS),$(dir $(wildcard $(dir)/*/metrics.json)))

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/pip || $(PYTHON) -m venv --clear $(VENV)  # also repairs a venv cut off half-made
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

# The bands file and table, the Keras vs Lightning comparison (and Keras vs Keras), and copies of the runs' small files.
report: $(STAMP)
	$(BIN)/python -m cifar_common.bands $(BAND_RUNS) --out reports/bands.json
	rm -rf reports/comparison-$(notdir $(RUNS)) reports/comparison-keras-seeds
	$(BIN)/python -m cifar_common.compare $(KERAS_RUN) $(LIGHTNING_RUN) --out reports/comparison-$(notdir $(RUNS))
	$(if $(word 2,$(KERAS_PAIR)),$(BIN)/python -m cifar_common.compare $(KERAS_PAIR) --out reports/comparison-keras-seeds)
	for run in $(BAND_RUNS); do \
	  mkdir -p reports/runs/$$(basename $$run) && cp $$run/*.csv $$run/*.json $$run/config.yaml reports/runs/$$(basename $$run)/; done

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
