# The two commands of the README: `make run` and `make test` (`make test-fast` skips the slow tests,
# `make bench` runs every benchmark with its quick default).
# torch is installed first and pinned (TORCH_SPEC), so pip never resolves an unpinned,
# multi-GB CUDA build; override it on a GPU box, e.g. `make run TORCH_SPEC=torch`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PROMPT ?= 나는 어두운 숲 속을 거닐고 있다.
BIN := $(VENV)/bin

.PHONY: run test test-fast setup setup-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install -q --disable-pip-version-check -e ".[onnx]"
	touch $@

# Export the bundled model once into the ONNX cache, so `kogpt2 generate` (--backend auto)
# starts in ONNX Runtime without loading transformers' model code.
$(VENV)/.onnx-cache: $(VENV)/.installed src/kogpt2/models/kogpt2-small/model.safetensors src/kogpt2/export.py
	$(BIN)/kogpt2 export onnx --cache
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q --disable-pip-version-check -e ".[dev]"
	touch $@

setup: $(VENV)/.installed $(VENV)/.onnx-cache
setup-dev: $(VENV)/.installed-dev

run: setup
	$(BIN)/kogpt2 generate "$(PROMPT)"

test: setup-dev
	$(BIN)/python -m pytest -q

# Everything but the tests marked slow (end-to-end subprocesses, browser, compile): a quick check.
test-fast: setup-dev
	$(BIN)/python -m pytest -q -m "not slow"

# Every benchmark with its quick default (tfidf.py is a helper the others import, not run); the two
# that need context get it here: bpc.py a prepared
# data directory (made once from ../shared), gpu.py its CPU dry run when there is no GPU.
BENCH_DATA ?= runs/bench-data16k
bench: setup-dev
	test -d $(BENCH_DATA) || $(BIN)/kogpt2 data prepare ../shared/data/text \
		--tokenizer src/kogpt2/models/kogpt2-small --out $(BENCH_DATA)
	set -e; for b in benchmarks/*.py; do \
		case $$b in \
			*/bpc.py) args="--data $(BENCH_DATA)";; \
			*/gpu.py) $(BIN)/python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" \
				&& args="--out $(BENCH_DATA)/gpu_report.json" \
				|| args="--dry-run --out $(BENCH_DATA)/gpu_report.json";; \
			*/tfidf.py) continue;; \
			*) args="";; \
		esac; \
		echo "== $$b $$args"; $(BIN)/python $$b $$args; \
	done

clean:
	rm -rf $(VENV) build dist src/*.egg-info
