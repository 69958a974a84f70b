# Intervention Engine: one command to run it, one to test it. See docs/local-stack.md.
#
#   make run     PostgreSQL, Redis and Kafka (started locally unless their URLs are set), then the app
#   make test    lint (ruff, mypy, missing migrations), then pytest against test servers; ARGS="-k …"
#   make lint    the same checks, plus the format check
#   make fmt     format and auto-fix
#   make bench   benchmarks against test servers;  make chaos: failure drills, same way
#   make clean   remove var/ (all local data); it stops nothing

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help .venv run test lint fmt bench chaos clean \
	lint-ruff lint-format lint-types lint-migrations

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

# Reinstalls only when a requirements file is newer than the stamp.
$(STAMP): requirements.txt requirements-dev.txt
	@if ! command -v $(PYTHON) >/dev/null 2>&1; then \
		echo "Python 3.11 or newer is needed to create $(VENV), and '$(PYTHON)' was not found." >&2; \
		echo "Install it, or name it: make PYTHON=/path/to/python3.11 $(MAKECMDGOALS)" >&2; exit 1; \
	elif ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
		echo "Python 3.11 or newer is needed to create $(VENV); '$(PYTHON)' is" \
			"$$($(PYTHON) --version 2>&1 | head -n 1)." >&2; \
		echo "Install it, or name it: make PYTHON=/path/to/python3.11 $(MAKECMDGOALS)" >&2; exit 1; \
	fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	@touch $@

.venv: $(STAMP)

run: $(STAMP)
	$(PY) -m stack run

# CI runs only `make test`, so it carries the checks the project keeps clean.
test: $(STAMP) lint-ruff lint-types lint-migrations
	@bash scripts/install-browser.sh
	$(PY) -m stack test $(ARGS)

lint: $(STAMP) lint-ruff lint-format lint-types lint-migrations

lint-ruff: $(STAMP)
	$(PY) -m ruff check .

lint-format: $(STAMP)
	$(PY) -m ruff format --check .

lint-types: $(STAMP)
	$(PY) -m mypy .

# `makemigrations --check` also checks the applied history, so it gets a real (test) PostgreSQL.
lint-migrations: $(STAMP)
	$(PY) -m stack exec --test --only postgres -- python manage.py makemigrations --check --dry-run

fmt: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	@if [ -f bench/__main__.py ]; then \
		$(PY) -m stack exec --test -- python -m bench $(ARGS); \
	else echo "no benchmarks yet (bench/__main__.py)"; fi

chaos: $(STAMP)
	@if [ -f chaos/__main__.py ]; then \
		$(PY) -m stack exec --test -- python -m chaos $(ARGS); \
	else echo "no chaos drills yet (chaos/__main__.py)"; fi

clean:
	rm -rf var/
