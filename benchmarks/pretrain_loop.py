"""loop: the fused pretraining loop's time per step over the sum of its parts timed alone.

    python benchmarks/pretrain_loop.py [--quick] [--config pretrain_fashion_mnist] [--repeats 3]

The loop is `palmup pretrain`'s jitted chunk (train.chunk_steps fused steps, one lax.scan); its parts are
the functions its step composes (pretrain.step_parts: act, env statistics, replay add, env step,
replay sample, learner update, agent update), each compiled alone with the loop's shardings on
inputs of the same sizes (benchlib.compiled_parts). Chunks and parts are timed alternately;
medians. Target: loop time per step <= 1.2 x the sum of the parts (the fusion costs nothing).
"""
from __future__ import annotations

import sys

import jax

import benchlib

SIZES = dict(config="pretrain_fashion_mnist", repeats=3)
QUICK = dict(config="pretrain_tiny", repeats=2)


def run(config: str, repeats: int) -> dict:
  setup = benchlib.pretrain_setup(config)
  part = benchlib.compiled_parts(setup)
  seconds = benchlib.median_seconds({"loop": benchlib.chunk_call(setup), **{n: part(n) for n in setup.parts}}, repeats)
  c = setup.config
  loop = seconds.pop("loop") / c.train.chunk_steps
  return {"figures": {"loop_over_parts": loop / sum(seconds.values())},
          "targets": {"loop_over_parts": ("<=", 1.2)},
          "details": {"explorer": c.explorer, "num_envs": c.num_envs, "batch_size": c.replay.batch_size,
                      "obs_size": c.obs_size, "encoder": c.learner.encoder.name, "storage": c.replay.storage,
                      "devices": jax.device_count(), "loop_seconds_per_step": loop,
                      "frames_per_s": c.num_envs / loop, "part_seconds": seconds}}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
