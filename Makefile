# sstcast: the two commands users need are `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

# Reinstall when the dependency list or the tested versions change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@echo "compiling the solver and scoring kernels (numba, ~70 s once; cached in __pycache__)"
	$(PY) -c "import smnn._compiled as s, pipeline.model.dynamics as d, \
	  pipeline.evaluation.kernels as k; s.warm_up(); d.warm_up(); k.warm_up()"
	touch $(STAMP)

demo: install
	$(VENV)/bin/sstcast demo --workdir demo-output

test: install
	$(PY) -m pytest -n 2 --dist loadgroup -q

test-fast: install
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) benchmarks/solver.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .ruff_cache
