# Two commands for a newcomer: `make demo` and `make test`. `.ci/run` calls the same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
PORT ?= 8000
ENGINE_BACKENDS ?= immediate db rq
# pytest-xdist: PYTEST_WORKERS processes (auto: one per CPU; 0: one process, no xdist), each on
# its own test database; a module's tests stay together (its fixtures: the browser, the wheel).
PYTEST_WORKERS ?= auto
XDIST = -n $(PYTEST_WORKERS) --dist loadfile
# The PostgreSQL run leaves out what cannot tell the two databases apart: the browser tests (the
# pages' data comes from the views that tests/admin runs on both databases; a browser adds
# their HTML and JavaScript, the same on both) and `db_independent` tests (a wheel, `make demo`:
# subprocesses on a SQLite file of their own whatever DATABASE_URL says).
PG_DESELECT = -m "not browser and not db_independent"
STAMP := $(VENV)/.installed

.PHONY: help install demo test test-postgres test-pg test-engine lint format migrations-check schema bench clean

help:  ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{gsub(/\$$\$$/, "$$", $$2); printf "  %-17s %s\n", $$1, $$2}' $(firstword $(MAKEFILE_LIST))
	@echo
	@echo "Variables: PORT=$(PORT) (demo, e.g. make demo PORT=8001)"
	@echo "           PG_URL=$(PG_URL) (test-postgres, bench; DATABASE_URL wins)"
	@echo "           ENGINE_BACKENDS=$(ENGINE_BACKENDS) (test-engine)"
	@echo "           PYTEST_WORKERS=$(PYTEST_WORKERS) (test, test-postgres, test-engine; 0: one process)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e ".[postgres,dev]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install the app with its dev tools

demo: $(STAMP)  ## migrate SQLite, load demo data, print login and a new secret key, serve on :$$PORT with a task worker
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py plunk_demo --port $(PORT)
	PLUNK_PUBLIC_URL=http://127.0.0.1:$(PORT) $(BIN)/python -m example_project.serve runserver 127.0.0.1:$(PORT)

test: $(STAMP)  ## the whole suite on SQLite, in parallel ($$PYTEST_WORKERS, 0: serially)
	$(BIN)/pytest $(XDIST)

test-postgres: $(STAMP)  ## the suite on PostgreSQL ($$DATABASE_URL, else $$PG_URL), in parallel, except the browser and db_independent tests
	DATABASE_URL=$${DATABASE_URL:-$(PG_URL)} $(BIN)/pytest $(XDIST) $(PG_DESELECT)

test-pg: test-postgres  ## same as test-postgres

test-engine: $(STAMP)  ## the engine tests with each task backend of $$ENGINE_BACKENDS (db and rq: real workers; rq: Redis)
	@for backend in $(ENGINE_BACKENDS); do \
	  echo "Engine tests, PLUNK_TASKS_BACKEND=$$backend"; \
	  PLUNK_TASKS_BACKEND=$$backend $(BIN)/pytest -q -m engine $(XDIST) --maxprocesses 3 tests/engine \
	    || exit 1; \
	done

lint: $(STAMP)  ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## ruff fix + format, in place
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrations-check: $(STAMP)  ## fail if a model change has no migration
	$(BIN)/python manage.py makemigrations --check --dry-run

schema: $(STAMP)  ## validate the OpenAPI schema
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

bench: $(STAMP)  ## benchmarks on PostgreSQL ($$DATABASE_URL, else $$PG_URL; see BENCHMARKS.md)
	DATABASE_URL=$${DATABASE_URL:-$(PG_URL)} $(BIN)/python bench/run.py

clean:  ## remove .venv, build output and demo.db
	rm -rf $(VENV) dist build *.egg-info demo.db
