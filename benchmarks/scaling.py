"""scaling: the sharded loop on 1, 2, 4, 8 forced CPU devices, same global sizes, one process each;
and the same devices split over several processes, as on a pod's hosts.

    python benchmarks/scaling.py [--quick] [--config pretrain_fashion_mnist] [--repeats 2] [--devices 1,2,4,8] [--processes 2]

Each device count runs in a fresh process (XLA_FLAGS=--xla_force_host_platform_device_count=N)
the jitted chunk of `palmup pretrain` with the same global num_envs and batch, split over N
devices; medians of `repeats` chunks (train.chunk_steps steps each). The devices share this
machine's cores, so the ideal is the same time per step on every N: time(N) / time(1) measures
what splitting over a mesh costs (partitioned kernels, collectives, per-device dispatch), not a
speed-up. Target: <= 1.2 for every N (no per-device overhead growing with the mesh).
Multi-process: the largest N again, as `processes` local processes of N / processes devices each,
joined by JAX's distributed runtime with gloo CPU collectives (palmup.sharding.initialize_distributed);
figure: its step time over one process with N devices (what crossing process boundaries costs;
on a pod the interconnect replaces localhost TCP).
"""
from __future__ import annotations

import json
import subprocess
import sys

import jax

import benchlib
from palmup import sharding

SIZES = dict(config="pretrain_fashion_mnist", repeats=2, devices="1,2,4,8", processes=2)
QUICK = dict(config="pretrain_tiny", devices="1,2")


def seconds_per_step(config: str, repeats: int) -> float:
  """The chunk's median seconds per step on every visible device."""
  setup = benchlib.pretrain_setup(config)
  return benchlib.median_seconds({"loop": benchlib.chunk_call(setup)}, repeats)["loop"] / setup.config.train.chunk_steps


def in_subprocess(devices: int, config: str, repeats: int, processes: int = 1) -> float:
  """seconds_per_step (process 0's) over `devices` forced CPU devices in total, in `processes` fresh
  processes of devices / processes each, joined on a free localhost port when there are several."""
  procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(devices), config, str(repeats)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for env in sharding.local_processes_env(processes, devices // processes)]
  outs = [p.communicate() for p in procs]
  for p, (_, err) in zip(procs, outs):
    if p.returncode:
      raise RuntimeError(f"scaling worker ({processes} processes, {devices} devices) failed:\n{err[-3000:]}")
  return json.loads(outs[0][0].splitlines()[-1])


def run(config: str, repeats: int, devices: str, processes: int = 1) -> dict:
  counts = [int(n) for n in devices.split(",")]
  if counts[0] != 1:
    raise ValueError(f"devices must start with 1 (the reference), got {devices!r}")
  from palmup import configs
  seconds = {n: in_subprocess(n, config, repeats) for n in counts}
  num_envs = configs.load(config).num_envs
  figures = {f"step_time_{n}_over_1_device": seconds[n] / seconds[1] for n in counts[1:]}
  details = {"num_envs": num_envs, "seconds_per_step": seconds,
             "frames_per_s_per_device": {n: num_envs / s / n for n, s in seconds.items()}}
  if processes > 1:
    n = counts[-1]
    split = in_subprocess(n, config, repeats, processes)
    figures[f"step_time_{processes}_processes_x_{n // processes}_over_1_process_x_{n}"] = split / seconds[n]
    details[f"seconds_per_step_{processes}_processes_x_{n // processes}"] = split
  return {"figures": figures, "targets": {name: ("<=", 1.2) for name in figures if "processes" not in name},
          "details": details}


if __name__ == "__main__":
  if sys.argv[1:2] == ["--worker"]:
    sharding.initialize_distributed()  # several processes: from JAX_COORDINATOR_ADDRESS etc.
    devices, config, repeats = sys.argv[2:]
    if jax.device_count() != int(devices):
      raise SystemExit(f"asked for {devices} devices, jax sees {jax.device_count()}")
    print(json.dumps(seconds_per_step(config, int(repeats))))
  else:
    benchlib.main(sys.modules[__name__])
