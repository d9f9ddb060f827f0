# The two commands: `make run` and `make test`. Each does its own set-up and is idempotent.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `make serve` runs from a venv of its own with the runtime dependencies only (no test tools, no oracles).
SERVE_VENV ?= .venv-serve
SERVE_BIN := $(SERVE_VENV)/bin
SERVE_STAMP := $(SERVE_VENV)/.installed-stamp
# The official MLflow client for the MLflow compatibility test, in a venv of its own (test-only; never mixed with .venv).
MLFLOW_VENV ?= .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed-stamp
# Every install is held to the tested versions in requirements.lock (`make lock` rewrites it from .venv).
PIP_INSTALL = pip install --disable-pip-version-check -q -c requirements.lock

$(STAMP): requirements.txt requirements-dev.txt requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian install python3-venv"; exit 1; }
	$(BIN)/$(PIP_INSTALL) -r requirements-dev.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps gbstats==0.8.0  # test oracle; see requirements-dev.txt
	touch $@

$(SERVE_STAMP): requirements.txt requirements.lock
	@test -x $(SERVE_BIN)/python || $(PY) -m venv $(SERVE_VENV) || { echo "python3 -m venv failed: on Debian install python3-venv"; exit 1; }
	$(SERVE_BIN)/$(PIP_INSTALL) -r requirements.txt
	touch $@

$(MLFLOW_STAMP): requirements-mlflow.txt requirements-mlflow.lock
	@test -x $(MLFLOW_VENV)/bin/python || $(PY) -m venv $(MLFLOW_VENV) || { echo "python3 -m venv failed: on Debian install python3-venv"; exit 1; }
	$(MLFLOW_VENV)/bin/pip install --disable-pip-version-check -q -r requirements-mlflow.txt -c requirements-mlflow.lock
	touch $@

install: $(STAMP) ## venv + dependencies

install-serve: $(SERVE_STAMP) ## the runtime-only venv of make serve, the workers and beat (.venv-serve)

run: $(STAMP) ## migrate, demo data, Redis, Celery worker + beat, site on 127.0.0.1:8000
	bash scripts/run.sh

serve: $(SERVE_STAMP) ## production-like: collectstatic + gunicorn from a runtime-only venv (needs Redis and a worker elsewhere)
	@test -n "$$DJANGO_SECRET_KEY" || { echo "Set DJANGO_SECRET_KEY for make serve."; exit 1; }
	MLOPS_MANIFEST_STATIC=1 $(SERVE_BIN)/python manage.py collectstatic --noinput -v0
	MLOPS_MANIFEST_STATIC=1 $(SERVE_BIN)/python manage.py migrate --noinput
	MLOPS_MANIFEST_STATIC=1 $(SERVE_BIN)/gunicorn mlops_site.wsgi -b 127.0.0.1:8000 -w 2

test: $(STAMP) $(MLFLOW_STAMP) ## every test on SQLite, then on a throwaway PostgreSQL when its binaries are present
	bash scripts/test.sh

lock: $(STAMP) ## rewrite requirements.lock from .venv (after changing requirements*.txt), then commit it
	$(BIN)/python scripts/lock_deps.py
	@if [ -x $(MLFLOW_VENV)/bin/pip ]; then { echo "# Every package of $(MLFLOW_VENV) as tested (pip freeze, by make lock); the constraints of its install."; \
	  $(MLFLOW_VENV)/bin/pip freeze --disable-pip-version-check; } > requirements-mlflow.lock.new \
	  && { cmp -s requirements-mlflow.lock.new requirements-mlflow.lock && rm requirements-mlflow.lock.new || mv requirements-mlflow.lock.new requirements-mlflow.lock; }; fi

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) ## figures for the closing notes (see bench/README.md)
	bash bench/run.sh

mutants: $(STAMP) ## mutation testing of the core modules (mutmut; MUTANTS_ONLY=drift,...; not part of make test)
	$(BIN)/python scripts/mutants.py

demo: $(STAMP) ## demo data into the current database
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py import_prices --defaults
	$(BIN)/python manage.py seed_demo

.PHONY: install install-serve run serve test lock lint bench demo mutants
