# Lights On: `make demo` runs the main job, `make test` runs every check (what CI runs).
# Both create the virtual environment .venv on first use, pinned by constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check bench bench-csms bench-simulate bench-telemetry bench-scale clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lightson demo

test: $(STAMP)
	bash scripts/system-deps.sh
	$(BIN)/python scripts/check.py

check: test

bench: $(STAMP)
	$(BIN)/python bench/bench_optimizer.py

bench-csms: $(STAMP)
	$(BIN)/python bench/bench_csms.py

bench-simulate: $(STAMP)
	$(BIN)/python bench/bench_simulate.py

bench-telemetry: $(STAMP)
	$(BIN)/python bench/bench_telemetry.py

bench-scale: $(STAMP)
	$(BIN)/python bench/bench_scale.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache .hypothesis
