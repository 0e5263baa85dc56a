# Two commands do all set-up on a fresh machine with Python 3.11: `make demo` and `make test`.
# Each creates (or reuses) the virtual environment .venv with ganmix installed in editable mode.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ganmix-installed

.PHONY: demo test bench bytecode clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# ganmix's own modules compiled ahead of time (only what changed): an editable install leaves them as source,
# and where PYTHONDONTWRITEBYTECODE is set (many containers, CI) every process of a search (the driver, each
# Ray worker) would compile them again on import (README, "Demo timing").
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 search models datasets tracking

demo: bytecode
	$(BIN)/ganmix search --results-dir ganmix-results

test: bytecode
	$(BIN)/python -m pytest -q

bench: bytecode
	$(BIN)/python bench/run_all.py

clean:
	rm -rf ganmix-results .pytest_cache
