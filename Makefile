# The two set-up commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# The reference SpendGuard CLI, beside ours (its console script has our name): the
	# compatibility tests run it as a module from this directory.
	$(BIN)/pip install --quiet --no-deps --target $(VENV)/reference-cli cynsta-spendguard==0.2.0
	touch $(STAMP)

.PHONY: install serve test test-external bench
install: $(STAMP)

serve: $(STAMP)
	$(BIN)/spendguard serve

test: $(STAMP)
	$(BIN)/pytest -q

# The same suite against an external PostgreSQL (CI uses the machine's PostgreSQL 15).
test-external: $(STAMP)
	CAP_TEST_DATABASE_URL=$${CAP_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} $(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench
