"""palmup: pretraining visual representations by playing in a frozen generator's latent space.

Importing palmup sets one XLA default before JAX starts a backend (`xla_defaults`).
"""
from __future__ import annotations

import os

# XLA:CPU's YNNPACK fusion of the encoder has a cliff at a batch of 256 frames (4.6-5.7x slower per
# image, benchmarks/README.md); with it off the main job's loop step is about 0.6 s instead of 0.87
# on 2 cores. The flag concerns XLA:CPU only; other backends ignore it.
CPU_FLAG = "--xla_cpu_experimental_ynn_fusion_type="


def xla_defaults(environ=os.environ) -> None:
  """Adds CPU_FLAG to XLA_FLAGS unless XLA_FLAGS already sets xla_cpu_experimental_ynn_fusion_type
  (the user's choice wins). XLA reads XLA_FLAGS when JAX starts its first backend, so this acts only
  if palmup is imported before any JAX computation (the CLI, the tests and the benchmarks do)."""
  flags = environ.get("XLA_FLAGS", "")
  if CPU_FLAG.split("=")[0] not in flags:
    environ["XLA_FLAGS"] = f"{flags} {CPU_FLAG}".strip()


xla_defaults()
