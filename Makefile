# pusherd: `make run` starts a dev server, `make test` runs everything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
JS_STAMP := tests/js/node_modules/.installed-stamp
APT_UPDATED := /tmp/.pusherd-apt-updated
PYTEST_ARGS ?=

.PHONY: install run test unit check fuzz lint typecheck format system-deps js-deps bench clean

# The pure, fast tests: no server, no Redis, no Node, no browser (seconds).
UNIT_TESTS := tests/protocol tests/apps tests/test_config.py tests/test_errors.py \
	tests/test_lifecycle.py tests/test_import_rule.py tests/test_metrics.py tests/test_logs.py \
	tests/webhooks/test_queue.py tests/webhooks/test_request.py

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: install
	$(VENV)/bin/pusherd serve $(if $(CONFIG),--config $(CONFIG))

# Debian packages the suite runs for real: redis-server (with redis-cli, for Redis Cluster),
# openssl (TLS certificates for Redis), caddy, chromium, nginx, php-cli (the Laravel webhook
# recipe's logic).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v caddy >/dev/null || missing="$$missing caddy"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v nginx >/dev/null || missing="$$missing nginx-light"; \
	command -v php >/dev/null || missing="$$missing php-cli"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  echo "installing:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

js-deps: $(JS_STAMP)

$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

lint: install
	$(VENV)/bin/ruff check pusherd tests bench examples
	$(VENV)/bin/ruff format --check pusherd tests bench examples

typecheck: install
	$(VENV)/bin/mypy

# Lint, format check and types, no tests.
check: lint typecheck

unit: install
	$(PY) -m pytest -q $(UNIT_TESTS) $(PYTEST_ARGS)

format: install
	$(VENV)/bin/ruff format pusherd tests bench examples
	$(VENV)/bin/ruff check --fix pusherd tests bench examples

test: install system-deps js-deps lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

# The property-based fuzzers with the long hypothesis profile (tests/fuzz_profiles.py).
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -m fuzz --timeout=3600 -q $(PYTEST_ARGS)

bench: install
	$(PY) -m bench.compare

clean:
	rm -rf $(VENV) tests/js/node_modules .mypy_cache .pytest_cache .ruff_cache
