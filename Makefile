# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

CHROMIUM := /usr/bin/chromium

.PHONY: run test lint style chromium bench bench-gateway bench-sdk bench-ui clean

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

## test: install the test extras, lint, check the import layers, and run the suite while mypy
## type-checks beside it (two workers: most of a test's time is spent waiting on the servers it
## starts, and mypy fits in what they leave idle)
test: $(VENV)/.installed-test style chromium
	@out=$$(mktemp); $(BIN)/mypy > $$out 2>&1 & mypy=$$!; \
	$(BIN)/pytest -n 2 --durations=20; tests=$$?; \
	wait $$mypy; typed=$$?; echo "mypy:"; cat $$out; rm -f $$out; \
	test $$tests -eq 0 && test $$typed -eq 0

## chromium: Debian's chromium for the browser tests (tests/ui); Playwright's own is never fetched
chromium:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	} || { echo "The browser tests need $(CHROMIUM): run 'apt-get install -y chromium' as root." >&2; exit 1; }
	@test -x $(CHROMIUM) || { echo "apt-get did not install $(CHROMIUM)." >&2; exit 1; }

lint: style
	$(BIN)/mypy

style: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
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
