"""explorers: each explorer's pretraining chunk against random actions' chunk, on one config.

    python benchmarks/explorer_cost.py [--quick] [--config pretrain_fashion_mnist] [--repeats 3]

The same config (no judge: the exploration metrics cost every explorer alike) with explorer =
random, apt, gradient and novelty: each compiled as `palmup pretrain` compiles it
(benchlib.pretrain_setup), then their chunks timed alternately (benchlib.median_seconds). Figures:
<explorer>_over_random, the seconds of a chunk over random actions' chunk in the same process.
Target: gradient_over_random <= 1.5 (the gradient explorer's backward pass through generator and
encoder is its only cost beyond random actions' step).
"""
from __future__ import annotations

import sys

import benchlib

SIZES = dict(config="pretrain_fashion_mnist", repeats=3)
QUICK = dict(config="pretrain_tiny", repeats=2)
EXPLORERS = ("random", "apt", "gradient", "novelty")


def run(config: str, repeats: int) -> dict:
  setups = {e: benchlib.pretrain_setup(config, (("explorer", e), ("log.judge", ""))) for e in EXPLORERS}
  seconds = benchlib.median_seconds({e: benchlib.chunk_call(s) for e, s in setups.items()}, repeats)
  steps = setups["random"].config.train.chunk_steps
  return {"figures": {f"{e}_over_random": seconds[e] / seconds["random"] for e in EXPLORERS if e != "random"},
          "targets": {"gradient_over_random": ("<=", 1.5)},
          "details": {"config": config, "chunk_steps": steps,
                      "seconds_per_step": {e: t / steps for e, t in seconds.items()}}}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
