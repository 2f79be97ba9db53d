# Two commands set up everything on a fresh machine: `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch (from local disk here). GPU users: make install TORCH_SPEC="torch>=2.5" EXTRAS=test,gpu
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= test
QUICKSTART ?= spec/examples/quickstart.toml
# The quickstart's torch threads: one gives the README's numbers whatever the number of cores (a sum over
# threads depends on their count), and on busy cores no convolution waits for a second thread's turn.
QUICKSTART_THREADS ?= 1
# pytest-xdist workers for make test: one per core, at least 3, as several tests mostly wait (on a real
# SLURM's scheduler, on torchrun's processes), and at most 8 (each holds torch and the suite's modules, about
# 1 GB); tests/xdist_groups.py keeps tests that share a fixture together
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$((n < 3 ? 3 : n > 8 ? 8 : n)))

.PHONY: install test lint quickstart bench bench-gpu schema clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Bytecode is cached (PYTHONDONTWRITEBYTECODE unset): each worker imports the ~300 test and package modules.
test: lint
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -n $(TEST_WORKERS)

quickstart: install
	OMP_NUM_THREADS=$(QUICKSTART_THREADS) $(VENV)/bin/neuroexec apply $(QUICKSTART)
	OMP_NUM_THREADS=$(QUICKSTART_THREADS) $(VENV)/bin/neuroexec report $(QUICKSTART)
	OMP_NUM_THREADS=$(QUICKSTART_THREADS) $(VENV)/bin/neuroexec report $(QUICKSTART) --html

bench: install
	$(PY) -m pytest benchmarks -o addopts="" --benchmark-enable --benchmark-only

bench-gpu: install
	NEUROEXEC_BENCH_DEVICE=cuda $(PY) -m pytest benchmarks -o addopts="" --benchmark-enable --benchmark-only

# The spec reference, generated from spec/schema.json (neuroexec/spec/schema.json links to it); run it after
# changing the schema: tests/test_packaging_schema.py fails while docs/spec-reference.md is out of date.
SCHEMA_DOC ?= docs/spec-reference.md
schema: install
	$(PY) -m neuroexec schema --markdown > $(SCHEMA_DOC).tmp && mv $(SCHEMA_DOC).tmp $(SCHEMA_DOC)

clean:
	rm -rf spec/examples/data spec/examples/maps spec/examples/*.report.html .pytest_cache .benchmarks
