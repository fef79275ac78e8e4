# The two commands of the README's quick start.
.PHONY: demo test setup lint docs

setup:
	bash scripts/setup.sh

demo: setup
	HF_HUB_OFFLINE=1 .venv/bin/unipt demo

test: setup
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q

lint:
	.venv/bin/ruff check src tests benchmarks
	PYTHONPATH=src .venv/bin/lint-imports --no-cache

# The documentation site, built strictly (a broken link or API reference fails the build) into site/.
docs: setup
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir site
