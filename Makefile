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
	# BasicSR 1.4.2 (reference of the NIQE parity test) is an sdist whose setup asks for torch: build it
	# against the torch installed above; its runtime needs (cv2, addict, yapf, scikit-image) come with [dev]
	$(BIN)/pip install "setuptools>=70.1" wheel
	$(BIN)/pip install --no-build-isolation --no-deps basicsr==1.4.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cirbench build $(DEMO_OUT) --name samples
	$(BIN)/cirbench info $(DEMO_OUT)/samples
	$(BIN)/cirbench evaluate $(DEMO_OUT)/samples --model identity
	$(BIN)/cirbench evaluate $(DEMO_OUT)/samples --model tv-chambolle
	$(BIN)/cirbench leaderboard $(DEMO_OUT)/samples --summary --csv $(DEMO_OUT)/leaderboard.csv --long $(DEMO_OUT)/scores_long.csv
	$(BIN)/cirbench report $(DEMO_OUT)/samples --out $(DEMO_OUT)/report
	@echo "demo: leaderboard in $(DEMO_OUT)/leaderboard.csv, report in $(DEMO_OUT)/report/index.html"

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/bench_build.py --out benchmarks/results/bench_build.json
	$(BIN)/python benchmarks/bench_metrics.py --out benchmarks/results/bench_metrics.json
	$(BIN)/python benchmarks/bench_learned_codecs.py --out benchmarks/results/bench_learned_codecs.json
	$(BIN)/python benchmarks/bench_evaluate.py --out benchmarks/results/bench_evaluate.json
	$(BIN)/python benchmarks/bench_compare.py --out benchmarks/results/bench_compare.json
	$(BIN)/python benchmarks/bench_diffloss.py --out benchmarks/results/bench_diffloss.json
	$(BIN)/python benchmarks/bench_moediffir.py --out benchmarks/results/bench_moediffir.json
	$(BIN)/python benchmarks/bench_sspir.py --out benchmarks/results/bench_sspir.json

lint: $(STAMP)
	$(BIN)/ruff check cirbench tests benchmarks examples

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
