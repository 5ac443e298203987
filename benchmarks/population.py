"""population: a population of runs in one program against the same runs one after another.

    python benchmarks/population.py [--quick] [--config pretrain_fashion_mnist] [--members 4]
                                    [--chunks 3] [--repeats 3]

At the sweep's CPU scale (configs/sweep.py's overrides: 24 x 24 observations, the conv widths
halved), `members` runs that differ in env.ema (0.5, 0.7, 0.9, 0.99, ...) and seed. Sequential:
one compiled chunk (the world, EnvParams included, is its argument, so one compilation serves every
run), called for each run in turn; population: pretrain.jit_pretrain's chunk vmapped over the
members. Chunks alternate (benchlib.median_seconds). Figures:
  population_over_sequential_chunk   one population chunk / (members x one run's chunk), steady state
  population_over_sequential_run     the same for a whole run of `chunks` chunks, compilation included
                                     (the first chunk's call compiles; what `palmup sweep` saves per
                                     group of runs)
The details give the first calls (compilation included) and the steady chunk times. Target (the first figure): <= 0.8.
"""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp

import benchlib

SIZES = dict(config="pretrain_fashion_mnist", members=4, chunks=3, repeats=3)
QUICK = dict(config="pretrain_tiny", members=2, chunks=2, repeats=2)
EMAS = (0.5, 0.7, 0.9, 0.99, 0.3, 0.8, 0.95, 0.0)


def run(config: str, members: int, chunks: int, repeats: int) -> dict:
  from palmup import configs, pretrain, sharding, sweep
  scale = sweep.parse_assignments(configs.load("sweep").overrides, "overrides")
  scale.pop("train.steps", None)
  overrides = tuple(scale.items()) if config != "pretrain_tiny" else ()
  run_config, env = benchlib.load_env(config, overrides)
  mesh, population_mesh = sharding.make_mesh(), sharding.make_mesh(members=members)
  world = pretrain.make_world(run_config, env)
  params = [world.env_params.replace(ema=jnp.float32(EMAS[i % len(EMAS)])) for i in range(members)]
  population = sharding.put_replicated(pretrain.population_world(world, params), population_mesh)
  world = sharding.put_replicated(world, mesh)

  one_init, one_chunk, _ = pretrain.jit_pretrain(run_config, world, mesh)
  pop_init, pop_chunk, _ = pretrain.jit_pretrain(run_config, population, population_mesh, members)
  worlds = [world.replace(env_params=p) for p in params]
  states = [one_init(w, jax.random.PRNGKey(s)) for s, w in enumerate(worlds)]
  holder = {"population": pop_init(population, jnp.stack([jax.random.PRNGKey(s) for s in range(members)]))}

  def sequential():
    for i in range(members):
      states[i], metrics, _ = one_chunk(worlds[i], states[i])
    return metrics

  def together():
    holder["population"], metrics, _ = pop_chunk(population, holder["population"])
    return metrics

  first = {name: benchlib.call_seconds(call) for name, call in (("sequential", sequential), ("population", together))}
  seconds = benchlib.median_seconds({"sequential": sequential, "population": together}, repeats)
  chunk_ratio = seconds["population"] / seconds["sequential"]
  # a whole run: the first chunk (its compilation included) and chunks - 1 more
  run_ratio = ((first["population"] + (chunks - 1) * seconds["population"])
               / (first["sequential"] + (chunks - 1) * seconds["sequential"]))
  return {"figures": {"population_over_sequential_chunk": chunk_ratio, "population_over_sequential_run": run_ratio},
          "targets": {"population_over_sequential_chunk": ("<=", 0.8)},
          "details": {"config": config, "overrides": dict(overrides), "members": members,
                      "num_envs": run_config.num_envs, "chunk_steps": run_config.train.chunk_steps,
                      "sequential_chunk_seconds": seconds["sequential"], "population_chunk_seconds": seconds["population"],
                      "first_sequential_chunks_seconds": first["sequential"],
                      "first_population_chunk_seconds": first["population"],
                      "devices": jax.device_count()}}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
