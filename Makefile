# cirbench developer entry points. `make demo` and `make test` work on a fresh machine (they create .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch and torchvision unpinned and together, so torchvision's operators match torch (see README)
	$(BIN)/pip install torch torchvision
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cirbench build $(DEMO_OUT) --name samples
	$(BIN)/cirbench info $(DEMO_OUT)/samples

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/bench_build.py --out benchmarks/results/bench_build.json

lint: $(STAMP)
	$(BIN)/ruff check cirbench tests benchmarks

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
