"""compile: the pretraining chunk's compile time, and no recompilation after the first chunk.

    python benchmarks/compile_time.py [--quick] [--config pretrain_fashion_mnist] [--chunks 3]

Runs `chunks` chunks of `palmup pretrain`'s jitted chunk as its host loop does (call, then read
the metrics and strips), counting XLA compilations with a jax.monitoring listener
(benchlib.Compilations). The first chunk compiles the chunk function; every later one must
compile nothing (target 0) and leave one entry in the jit cache (target 1). compile_over_chunk is
the chunk's XLA compile time over the time of one compiled chunk.
"""
from __future__ import annotations

import statistics
import sys
import time

import jax

import benchlib

SIZES = dict(config="pretrain_fashion_mnist", chunks=3)
QUICK = dict(config="pretrain_tiny", chunks=2)


def timed_chunks(setup: benchlib.Pretrain, chunks: int) -> list[tuple[float, list]]:
  """(wall seconds, compilations) of each of `chunks` chunks from a fresh state, as the host loop
  runs them."""
  state = jax.block_until_ready(setup.init(jax.random.PRNGKey(0)))
  out = []
  for _ in range(chunks):
    with benchlib.Compilations() as compilations:
      start = time.perf_counter()
      state, metrics, strips = setup.chunk(state)
      jax.device_get((metrics, strips))
      out.append((time.perf_counter() - start, compilations.events))
  return out


def run(config: str, chunks: int) -> dict:
  if chunks < 2:
    raise ValueError(f"chunks must be >= 2 (the first compiles), got {chunks}")
  setup = benchlib.pretrain_setup(config)
  if setup.jit_chunk._cache_size():  # compiled earlier in this process: time a fresh copy
    setup = benchlib.pretrain_setup.__wrapped__(config)
  runs = timed_chunks(setup, chunks)
  compile_seconds = sum(seconds for name, seconds in runs[0][1] if name == "jit(chunk)")
  chunk_seconds = statistics.median(seconds for seconds, _ in runs[1:])
  return {"figures": {"recompiles_after_first_chunk": sum(len(events) for _, events in runs[1:]),
                      "chunk_jit_cache_entries": setup.jit_chunk._cache_size(),
                      "compile_over_chunk": compile_seconds / chunk_seconds},
          "targets": {"recompiles_after_first_chunk": ("==", 0), "chunk_jit_cache_entries": ("==", 1)},
          "details": {"chunk_steps": setup.config.train.chunk_steps, "compile_seconds": compile_seconds,
                      "first_chunk_seconds": runs[0][0], "chunk_seconds": chunk_seconds,
                      "first_chunk_compilations": runs[0][1]}}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
