# Veil: two commands do all set-up.
#   make run   install what is missing, then start the whole platform (Ctrl-C stops it)
#   make test  install what is missing (plus PostgreSQL), lint, type-check, run every test
.PHONY: run test setup lint typecheck admin bench-deploy

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
	bash scripts/setup.sh --with-postgres
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy .
	$(UV) run pytest

admin:  # make admin EMAIL=you@example.com (asks for the password)
	$(UV) run python -m gateway.admin.create_admin $(EMAIL)

bench-deploy: setup
	$(UV) run python -m bench.deploy
