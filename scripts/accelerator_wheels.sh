#!/usr/bin/env bash
# Downloads into DIR (default .whl) the wheels benchmarks/accelerator_check.py needs beyond an
# accelerator image that has JAX, flax, optax, orbax-checkpoint, chex, absl, numpy and pillow
# (checked by listing the third-party modules the check imports): ml-collections and flashbax, both
# pure Python, so one download serves any Python 3 and platform.
set -euo pipefail
DIR=${1:-.whl}
mkdir -p "$DIR"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$DIR" \
  ml-collections==1.1.0 flashbax==0.1.3
ls "$DIR"
