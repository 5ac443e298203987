#!/usr/bin/env bash
# The accelerator check of the CIFAR-10 StyleGAN2-ADA recipe, for a bare GPU/TPU machine that has
# JAX (with its accelerator plugin), flax, optax, orbax-checkpoint, chex, numpy and pillow, but not
# palmup's other needs and no network. Under 8 minutes on one GPU.
#
#   scripts/accelerator_wheels.sh .whl            # here, with PyPI: the wheels the machine lacks
#   scripts/accelerator_check.sh .whl OUT_DIR     # there, in a copy of this repository
#
# It installs the carried wheels into a private folder (no deps, no network), puts palmup's src/ on
# the path, and runs benchmarks/accelerator_check.py at the recipe's full size (4,096 envs, batch
# 1,024, a cifar10.pkl-shaped generator with random weights, ResNet-18, bfloat16), which writes
# OUT_DIR/accelerator_check.json and .md. Extra arguments go to it (e.g. --tiny on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${1:?usage: scripts/accelerator_check.sh WHEELS_DIR OUT_DIR [accelerator_check.py args]}
OUT=${2:?usage: scripts/accelerator_check.sh WHEELS_DIR OUT_DIR [accelerator_check.py args]}
shift 2
SITE=${PALMUP_SITE:-/tmp/palmup_site}
PY=${PYTHON:-python3}
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl
fi
export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import jax; print('devices:', jax.devices())"
exec timeout 480 "$PY" benchmarks/accelerator_check.py --out "$OUT" "$@"
