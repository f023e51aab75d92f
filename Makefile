# Two commands on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
WEB_BUILD := src/disco/server/static/index.html
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json

.PHONY: demo test lint typecheck unit web web-test setup clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[datasets,dev]"
	touch $(STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEB_STAMP)

$(WEB_BUILD): $(WEB_STAMP) $(WEB_SOURCES)
	cd web && npm run --silent build

setup: $(STAMP) $(WEB_BUILD)

web: $(WEB_BUILD)

demo: setup
	$(VENV)/bin/disco demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP) $(WEB_STAMP)
	$(VENV)/bin/mypy
	cd web && npx vue-tsc --noEmit

web-test: $(WEB_STAMP)
	cd web && npx vitest run --passWithNoTests

unit: setup
	$(PY) -m pytest -q

test: lint typecheck web-test unit

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache tests/output
	rm -rf web/node_modules src/disco/server/static
