# The two commands of the README: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test faults install install-dev lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Start the whole app on embedded defaults (SQLite, in-process Celery, in-memory channels).
run: install .env
	$(BIN)/python manage.py run --host $(HOST) --port $(PORT)

## A checkout's development settings, written once: DEBUG on and a generated SECRET_KEY. The
## settings read .env, so `make run` and every `manage.py` command see the same; .gitignore keeps
## it out of git, and an existing .env is never overwritten (open mode "x").
.env:
	@umask 077 && $(PYTHON) -c 'import secrets; open(".env", "x").write(f"# Development settings, written once by make (see README, Settings).\nDEBUG=true\nSECRET_KEY={secrets.token_urlsafe(50)}\n")'
	@echo "Wrote .env for development: DEBUG=true and a generated SECRET_KEY."

## Install and run the test suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set).
## Python's bytecode cache on, whatever the shell says (container images often set
## PYTHONDONTWRITEBYTECODE): the suite starts some 60 Python processes, and each would compile
## the project's modules again (0.4 s of CPU), each xdist worker rewrite every test module's asserts.
## mypy runs beside pytest, niced (without its cache, as in a fresh clone or CI, some 15 s of one
## core); its report is printed after pytest's, and either failing fails the target.
test: export PYTHONDONTWRITEBYTECODE =
test: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	@report=$$(mktemp); echo "$(BIN)/mypy (beside pytest; its report follows pytest's)"; \
	nice -n 10 $(BIN)/mypy > $$report 2>&1 & types=$$!; \
	$(BIN)/python -m pytest $(PYTEST_ARGS); tests=$$?; \
	wait $$types; typed=$$?; echo "$(BIN)/mypy:"; cat $$report; rm -f $$report; \
	test $$tests -eq 0 && test $$typed -eq 0

## The fault suite (systemtests/, not part of `make test`): gunicorn, a Celery worker and beat on
## a PostgreSQL cluster and a Redis of its own, broken while customers write (README, Tests).
## One process (-n0): the scenarios share one system and one table. FAULTS_WRITE_RESULTS=1 also
## writes the table into bench/RESULTS.md.
faults: install-dev
	$(BIN)/python -m pytest systemtests -n0 $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: install-dev
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache .mypy_cache staticfiles
