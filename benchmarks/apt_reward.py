"""reward: APT's particle reward over the time of its distance matmul alone, same process.

    python benchmarks/apt_reward.py [--quick] [--points 1024] [--dim 256] [--k 12] [--repeats 5]

`palmup.apt.particle_reward` with URLB's variant (k nearest of `points` features of size `dim`,
running-mean normalisation, clip 1e-4, average, log(1 + .)) against `x @ x.T` for the same
features, the matmul every kNN over the batch needs (the limit); medians of alternating calls.
Target: reward time <= 2 x the matmul's.
"""
from __future__ import annotations

import sys

import jax

import benchlib

SIZES = dict(points=1024, dim=256, k=12, repeats=5)
QUICK = dict(points=128, dim=32, repeats=2)


def run(points: int, dim: int, k: int, repeats: int) -> dict:
  from palmup import apt
  x = jax.random.normal(jax.random.PRNGKey(0), (points, dim))
  reward = lambda x, mean: apt.particle_reward(x, k, clip=1e-4, running_mean=mean)
  seconds = benchlib.median_seconds({
      "reward": benchlib.compile_for(reward, x, apt.RunningMean.init()),
      "matmul": benchlib.compile_for(lambda x: x @ x.T, x)}, repeats)
  return {"figures": {"reward_over_distance_matmul": seconds["reward"] / seconds["matmul"]},
          "targets": {"reward_over_distance_matmul": ("<=", 2.0)},
          "details": {"points": points, "dim": dim, "k": k, "reward_seconds": seconds["reward"],
                      "matmul_seconds": seconds["matmul"]}}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
