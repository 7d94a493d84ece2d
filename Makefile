# Shortcuts; the README's two commands are the reference.
.PHONY: demo test lint bench
demo:
	scripts/demo
test:
	scripts/test
lint:
	scripts/setup && .venv/bin/ruff check . && .venv/bin/mypy && .venv/bin/lint-imports
bench:
	scripts/setup --services && for b in bench/bus.py bench/sagas.py bench/datapath.py; do [ -f $$b ] && .venv/bin/python $$b; done
