# Veil: two commands do all set-up.
#   make run   install what is missing, then start the whole platform (Ctrl-C stops it)
#   make test  install what is missing (plus PostgreSQL), lint, type-check, run every test
.PHONY: run test setup lint typecheck admin bench-deploy bench-analytics bench-gateway

UV := uv

setup:
	bash scripts/setup.sh

run: setup
	$(UV) run python -m launcher

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck:
	$(UV) run mypy .

test:
	bash scripts/setup.sh --with-postgres --with-browser
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy .
	$(UV) run pytest

admin:  # make admin EMAIL=you@example.com (asks for the password)
	$(UV) run python -m gateway.admin.create_admin $(EMAIL)

bench-deploy: setup
	$(UV) run python -m bench.deploy

bench-analytics:  # ingest rate and stats latency on SQLite and PostgreSQL (installs PostgreSQL)
	bash scripts/setup.sh --with-postgres
	$(UV) run python -m bench.analytics

bench-gateway:  # data plane vs nginx and Caddy (installs nginx, caddy, wrk when missing)
	bash scripts/setup.sh --with-bench
	$(UV) run python -m bench.gateway
