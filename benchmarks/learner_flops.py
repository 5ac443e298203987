"""learner: the SimCLR step's achieved FLOP/s over a large matmul's, same process.

    python benchmarks/learner_flops.py [--quick] [--config pretrain_fashion_mnist] [--matmul 2048]
                                       [--repeats 5]

The learner step is the loop's own `learn` part (pretrain.step_parts: views of a replayed batch,
encoder + head forward and backward on both views, NT-Xent, AdamW), compiled with the loop's
shardings on a sampled batch. Its FLOP count is XLA's cost analysis of that compiled step; its
time, and a float32 matmul of `matmul` x `matmul` (the limit), are medians of alternating calls.
Target: learner FLOP/s >= 0.5 x matmul FLOP/s on a CPU.
"""
from __future__ import annotations

import sys

import benchlib

SIZES = dict(config="pretrain_fashion_mnist", matmul=2048, repeats=5)
QUICK = dict(config="pretrain_tiny", matmul=256, repeats=2)


def run(config: str, matmul: int, repeats: int) -> dict:
  setup = benchlib.pretrain_setup(config)
  learn = benchlib.compiled_parts(setup)("learn")
  reference = benchlib.matmul(matmul)
  seconds = benchlib.median_seconds({"learn": learn, "matmul": reference}, repeats)
  learn_rate, matmul_rate = learn.flops / seconds["learn"], reference.flops / seconds["matmul"]
  return {"figures": {"learner_over_matmul": learn_rate / matmul_rate},
          "targets": {"learner_over_matmul": (">=", 0.5)},
          "details": {"batch_size": setup.config.replay.batch_size, "encoder": setup.config.learner.encoder.name,
                      "learner_flops_per_step": learn.flops, "learner_seconds": seconds["learn"],
                      "learner_flops_per_s": learn_rate, "matmul_n": matmul, "matmul_flops_per_s": matmul_rate}}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
