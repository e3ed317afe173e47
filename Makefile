# The two commands of the README: `make demo` and `make test`. Both do the whole set-up.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup assets native clean bench

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: this resolves to the local CPU wheel (a bare `torch` pulls CUDA).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# lm-eval reads no plugins: a .pth hook makes `lm_eval --model llmzoo` known (llmzoo/eval/lm_eval_plugin.py)
	$(BIN)/python -m llmzoo.eval.lm_eval_plugin install
	touch $(STAMP)

setup: $(STAMP) assets native

# llmzoo's own quantized-matmul kernel (C++, AVX2), built once per machine into ~/.cache/llmzoo/native;
# where it cannot build, quantized layers fall back to PyTorch's kernels (llmzoo/quant/native/__init__.py)
native: $(STAMP)
	$(BIN)/python -m llmzoo.quant.native build

assets: $(STAMP)
	$(BIN)/python -m llmzoo.assets fetch

demo: setup
	$(BIN)/llmzoo generate smollm2-135m-instruct --chat \
		--prompt "What is the capital of France? Answer in one sentence." --max-new-tokens 48

test: setup
	$(BIN)/python -m pytest -n 2 -q tests

# llama-cpp-python compiles llama.cpp from its sdist (~10 min on 2 cores): a CPU-only build for this
# machine's vector units (GGML_NATIVE), no GPU backends. The stamp keeps it to the first `make bench`.
BENCH_STAMP := $(VENV)/.bench-installed
CMAKE_ARGS ?= -DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DLLAMA_CURL=OFF

$(BENCH_STAMP): $(STAMP)
	CMAKE_ARGS="$(CMAKE_ARGS)" $(BIN)/pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

bench: setup $(BENCH_STAMP)
	$(BIN)/python benchmarks/decode.py --threads $(or $(THREADS),2)

clean:
	rm -rf $(VENV)
