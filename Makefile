# The single source of set-up: every target creates .venv and installs the project when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup fit test test-reverse report bench clean

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

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
