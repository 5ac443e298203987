"""env: latent-env steps/s over bare generator decode images/s, same batch, same process.

    python benchmarks/env_throughput.py [--quick] [--generators builtin:fashion_mnist_32,runs/eye/generator]
                                        [--num_envs 256] [--repeats 5]

For each generator: one jitted call of gen.apply on `num_envs` latents (the bare decode, the
limit) and one jitted vmapped env.step over `num_envs` envs (noise draw, latent transition,
auto-reset bookkeeping, decode, resize, uint8 conversion), timed alternately; medians. The ratio
env steps/s / decode images/s is the share of the env's time spent decoding (target >= 0.9).
"""
from __future__ import annotations

import sys

import jax

import benchlib

SIZES = dict(generators="builtin:fashion_mnist_32", num_envs=256, repeats=5)
QUICK = dict(num_envs=16, repeats=2)


def measure(path: str, num_envs: int, repeats: int) -> dict:
  """Decode images/s and env steps/s of one generator at its own resolution."""
  from palmup import generators
  from palmup.env import EnvParams, LatentEnv
  gen, params = generators.load(path)
  env = LatentEnv(gen, params, gen.image_shape[0])
  env_params = EnvParams(episode_length=16)
  keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
  _, state = jax.jit(jax.vmap(env.reset, (0, None)))(keys, env_params)
  actions = jax.random.uniform(jax.random.PRNGKey(1), (num_envs, gen.latent_dim), minval=-1)
  step = lambda env, keys, state, actions: jax.vmap(env.step, (0, 0, 0, None))(keys, state, actions, env_params)
  seconds = benchlib.median_seconds({
      "decode": benchlib.compile_for(gen.apply, params, state.z, state.label),
      "env": benchlib.compile_for(step, env, keys, state, actions)}, repeats)
  return {"image_shape": list(gen.image_shape), "decode_images_per_s": num_envs / seconds["decode"],
          "env_steps_per_s": num_envs / seconds["env"]}


def run(generators: str, num_envs: int, repeats: int) -> dict:
  figures, targets, details = {}, {}, {"num_envs": num_envs}
  for path in generators.split(","):
    r = details[path] = measure(path, num_envs, repeats)
    name = f"env_over_decode[{path}]"
    figures[name], targets[name] = r["env_steps_per_s"] / r["decode_images_per_s"], (">=", 0.9)
  return {"figures": figures, "targets": targets, "details": details}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
