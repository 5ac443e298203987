# The README's two commands: `make demo` (the main job on the built-in default) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export JAX_PLATFORMS ?= cpu

.PHONY: install demo test test-slow bench
install:
	./scripts/install.sh

demo: install
	$(VENV)/bin/palmup render --config configs/render_fashion_mnist.py --workdir runs/demo

test: install
	$(PY) -m pytest -q --durations=10

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) benchmarks/env_throughput.py
