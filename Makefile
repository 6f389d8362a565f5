# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

CHROMIUM := /usr/bin/chromium

.PHONY: run test lint chromium bench bench-gateway bench-sdk bench-ui clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

## run: install into .venv and start the server on 127.0.0.1:8002 (SQLite under ./data)
run: $(VENV)/.installed
	$(BIN)/ump-llm serve

## test: install the test extras, lint, type-check, check the import layers and run the suite
## (two workers: most of a test's time is spent waiting on the servers it starts)
test: $(VENV)/.installed-test lint chromium
	$(BIN)/pytest -n 2 --durations=20

## chromium: Debian's chromium for the browser tests (tests/ui); Playwright's own is never fetched
chromium:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	} || { echo "The browser tests need $(CHROMIUM): run 'apt-get install -y chromium' as root." >&2; exit 1; }
	@test -x $(CHROMIUM) || { echo "apt-get did not install $(CHROMIUM)." >&2; exit 1; }

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: the registry benchmark (seeds 100,000 connections per backend, default server
## settings; several minutes)
bench: $(VENV)/.installed-test
	$(BIN)/python bench/registry.py

## bench-gateway: our /v1/chat/completions vs LiteLLM proxy and Portkey's gateway on a fake nginx
## upstream (~3 min; installs nginx, wrk, bench/.venv-litellm and bench/.portkey-gateway the
## first time)
bench-gateway: $(VENV)/.installed
	$(BIN)/python bench/gateway.py

## bench-sdk: what the SDK and an MCP tools/call add over the openai client calling the gateway
## directly (same nginx upstream as bench-gateway; about a minute)
bench-sdk: $(VENV)/.installed
	$(BIN)/python bench/sdk.py

## bench-ui: the web UI in headless Chromium (/usr/bin/chromium) on 2,000 connections and
## 1,000,000 usage rows: list interactive < 1 s, dashboard drawn < 2 s, own assets < 200 KB
bench-ui: $(VENV)/.installed-test
	$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/pip install --quiet playwright
	$(BIN)/python bench/ui.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
