# The README's two commands: `make pretrain` (the main job on the built-in default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export JAX_PLATFORMS ?= cpu

.PHONY: install pretrain demo test test-slow bench preflight
install:
	./scripts/install.sh

pretrain: install
	$(VENV)/bin/palmup pretrain --config configs/pretrain_fashion_mnist.py --workdir runs/pretrain

demo: install
	$(VENV)/bin/palmup render --config configs/render_fashion_mnist.py --workdir runs/demo

# Two workers (pytest-xdist): the suite is mostly XLA compiles, which keep about one core busy each.
test: install
	$(PY) -m pytest -q -n 2 --durations=10

EYE_WHEEL := runs/wheels/omniart_eye_generator-0.1-py3-none-any.whl
$(EYE_WHEEL):
	$(VENV)/bin/pip download -q --no-deps omniart-eye-generator==0.1 -d runs/wheels

# Slow tests: also installs torch (CPU, for the eye DCGAN check) into the venv.
test-slow: install $(EYE_WHEEL)
	$(VENV)/bin/pip install -q torch==2.13.0
	PALMUP_EYE_WHEEL=$(EYE_WHEEL) $(PY) -m pytest -q -m slow

# Both accelerator recipes' chunk (the program that holds the state and the step's temporaries)
# compiled at full size for two TPU slices by libtpu's compile-only client (no TPU): fails if either
# does not compile or does not fit its chips' memory (palmup.preflight; init as well: drop programs).
PREFLIGHT := $(VENV)/bin/palmup preflight --config configs/preflight.py --config.topology=v5litepod-16,v5p-8 \
	--config.parallel=2 --config.programs=chunk
preflight: install
	$(PREFLIGHT) --workdir runs/preflight/cifar10 --config.run.config=configs/pretrain_cifar10_stylegan2ada.py
	$(PREFLIGHT) --workdir runs/preflight/accelerator --config.run.config=configs/pretrain_accelerator.py

# Every benchmark, full sizes: runs/bench/bench.json and bench.md (`--quick`: smoke-test sizes).
bench: install
	$(PY) benchmarks/run_all.py --out runs/bench
