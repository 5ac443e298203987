"""budget: what makes a CPU pretraining step cheaper; each variant's step time over the config's own,
in the same process.

    python benchmarks/learner_budget.py [--quick] [--config pretrain_fashion_mnist] [--repeats 3]

Variants (overrides of the config): the learner's conv widths halved ("half_width"), observations of
24 x 24 instead of the config's size ("obs_24"), and both. The learner step runs near the CPU's
matmul rate (benchmark `learner`), so only fewer FLOPs make it cheaper. Each variant is the
loop's jitted chunk as `palmup pretrain` runs it (train.chunk_steps=5 for all); chunks of every
variant are timed alternately, medians per step. Details: each variant's learn and agent_update
parts timed alone, and XLA's FLOP count of its learn step.
"""
from __future__ import annotations

import sys

import benchlib

SIZES = dict(config="pretrain_fashion_mnist", repeats=3)
QUICK = dict(config="pretrain_tiny", repeats=2)
CHUNK = 5


def variants(config) -> dict[str, tuple[tuple[str, object], ...]]:
  half = ("learner.encoder.widths", tuple(max(w // 2, 1) for w in config.learner.encoder.widths))
  small = ("obs_size", 24 if config.obs_size > 24 else config.obs_size // 2)
  base = (("train.chunk_steps", CHUNK),)
  return {"config": base, "half_width": base + (half,), "obs_24": base + (small,),
          "half_width_obs_24": base + (half, small)}


def run(config: str, repeats: int) -> dict:
  base, _ = benchlib.load_env(config)
  setups = {name: benchlib.pretrain_setup(config, overrides) for name, overrides in variants(base).items()}
  calls = {name: benchlib.chunk_call(s) for name, s in setups.items()}
  parts = {f"{name}/{part}": benchlib.compiled_parts(s)(part) for name, s in setups.items()
           for part in ("learn", "agent_update") if part in s.parts}
  seconds = benchlib.median_seconds({**calls, **parts}, repeats)
  step = {name: seconds[name] / CHUNK for name in setups}
  return {"figures": {f"{name}_over_config": step[name] / step["config"] for name in setups if name != "config"},
          "targets": {},
          "details": {"step_seconds": step, "part_seconds": {k: seconds[k] for k in parts},
                      "learn_flops": {name: benchlib.compiled_parts(s)("learn").flops for name, s in setups.items()},
                      "overrides": {name: dict(o) for name, o in variants(base).items()}}}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
