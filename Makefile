# alertbot — two commands matter: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/alertbot serve

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict alertbot

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# The whole suite: lint, types, then every test. pytest exits 5 when it collects nothing: a failure here.
test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests collected" >&2; fi; exit $$status

bench: $(STAMP)
	$(BIN)/python bench/notify.py
	$(BIN)/python bench/rollback.py
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
