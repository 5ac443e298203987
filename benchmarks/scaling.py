"""scaling: the sharded loop on 1, 2, 4, 8 forced CPU devices, same global sizes, one process each.

    python benchmarks/scaling.py [--quick] [--config pretrain_fashion_mnist] [--repeats 2] [--devices 1,2,4,8]

Each device count runs in a fresh process (XLA_FLAGS=--xla_force_host_platform_device_count=N)
the jitted chunk of `palmup pretrain` with the same global num_envs and batch, split over N
devices; medians of `repeats` chunks (train.chunk_steps steps each). The devices share this
machine's cores, so the ideal is the same time per step on every N: time(N) / time(1) measures
what splitting over a mesh costs (partitioned kernels, collectives, per-device dispatch), not a
speed-up. Target: <= 1.2 for every N (no per-device overhead growing with the mesh).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jax

import benchlib

SIZES = dict(config="pretrain_fashion_mnist", repeats=2, devices="1,2,4,8")
QUICK = dict(config="pretrain_tiny", devices="1,2")


def seconds_per_step(config: str, repeats: int) -> float:
  """The chunk's median seconds per step on every visible device."""
  setup = benchlib.pretrain_setup(config)
  return benchlib.median_seconds({"loop": benchlib.chunk_call(setup)}, repeats)["loop"] / setup.config.train.chunk_steps


def in_subprocess(devices: int, config: str, repeats: int) -> float:
  """seconds_per_step in a fresh process with `devices` forced CPU devices."""
  flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
  env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, __file__, "--worker", str(devices), config, str(repeats)],
                       env=env, capture_output=True, text=True)
  if out.returncode:
    raise RuntimeError(f"scaling worker on {devices} devices failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.splitlines()[-1])


def run(config: str, repeats: int, devices: str) -> dict:
  counts = [int(n) for n in devices.split(",")]
  if counts[0] != 1:
    raise ValueError(f"devices must start with 1 (the reference), got {devices!r}")
  from palmup import configs
  seconds = {n: in_subprocess(n, config, repeats) for n in counts}
  num_envs = configs.load(config).num_envs
  figures = {f"step_time_{n}_over_1_device": seconds[n] / seconds[1] for n in counts[1:]}
  return {"figures": figures, "targets": {name: ("<=", 1.2) for name in figures},
          "details": {"num_envs": num_envs, "seconds_per_step": seconds,
                      "frames_per_s_per_device": {n: num_envs / s / n for n, s in seconds.items()}}}


if __name__ == "__main__":
  if sys.argv[1:2] == ["--worker"]:
    devices, config, repeats = sys.argv[2:]
    if jax.device_count() != int(devices):
      raise SystemExit(f"asked for {devices} devices, jax sees {jax.device_count()}")
    print(json.dumps(seconds_per_step(config, int(repeats))))
  else:
    benchlib.main(sys.modules[__name__])
