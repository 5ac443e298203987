# The README's two commands: `make pretrain` (the main job on the built-in default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export JAX_PLATFORMS ?= cpu
# XLA:CPU's YNNPACK fusion of the encoder has a cliff at a batch of 256 frames (4.6-5.7x slower per
# image; benchmarks/README.md): without it the main config's loop step is 0.60 s instead of 0.87 on
# 2 cores. Set XLA_FLAGS yourself to keep XLA's default.
export XLA_FLAGS ?= --xla_cpu_experimental_ynn_fusion_type=

.PHONY: install pretrain demo test test-slow bench
install:
	./scripts/install.sh

pretrain: install
	$(VENV)/bin/palmup pretrain --config configs/pretrain_fashion_mnist.py --workdir runs/pretrain

demo: install
	$(VENV)/bin/palmup render --config configs/render_fashion_mnist.py --workdir runs/demo

test: install
	$(PY) -m pytest -q --durations=10

EYE_WHEEL := runs/wheels/omniart_eye_generator-0.1-py3-none-any.whl
$(EYE_WHEEL):
	$(VENV)/bin/pip download -q --no-deps omniart-eye-generator==0.1 -d runs/wheels

# Slow tests: also installs torch (CPU, for the eye DCGAN check) into the venv.
test-slow: install $(EYE_WHEEL)
	$(VENV)/bin/pip install -q torch==2.13.0
	PALMUP_EYE_WHEEL=$(EYE_WHEEL) $(PY) -m pytest -q -m slow

# Every benchmark, full sizes: runs/bench/bench.json and bench.md (`--quick`: smoke-test sizes).
bench: install
	$(PY) benchmarks/run_all.py --out runs/bench
