"""Latent-env steps/s vs bare generator decode images/s, measured in the same process.

    python benchmarks/env_throughput.py [--generators builtin:fashion_mnist_32,runs/eye/generator]
                                        [--num-envs 256] [--repeats 5]

For each generator: the time of one jitted call of gen.apply on a batch of `num_envs` latents
(bare decode), and of one jitted vmapped env.step over `num_envs` envs (noise draw, latent
transition, auto-reset bookkeeping, decode, resize, uint8 conversion). The two are timed
alternately, `repeats` times each, after a warm-up; the figure is the median. The ratio
env steps/s / decode images/s is the share of the env's time spent decoding (target >= 0.9).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import jax

from palmup import generators
from palmup.env import EnvParams, LatentEnv


def _time(fn, *args) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


def measure(path: str, num_envs: int, repeats: int, obs_size: int | None = None) -> dict:
  gen, params = generators.load(path)
  env = LatentEnv(gen, params, obs_size or gen.image_shape[0])
  env_params = EnvParams(episode_length=16)
  keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
  _, state = jax.vmap(env.reset, (0, None))(keys, env_params)
  actions = jax.random.uniform(jax.random.PRNGKey(1), (num_envs, gen.latent_dim), minval=-1)

  decode = jax.jit(gen.apply)
  step = jax.jit(lambda env, keys, state, actions: jax.vmap(env.step, (0, 0, 0, None))(
      keys, state, actions, env_params))
  z, y = state.z, state.label
  _time(decode, params, z, y), _time(step, env, keys, state, actions)  # compile + warm up
  decode_t, step_t = [], []
  for _ in range(repeats):
    decode_t.append(_time(decode, params, z, y))
    step_t.append(_time(step, env, keys, state, actions))
  decode_rate = num_envs / statistics.median(decode_t)
  step_rate = num_envs / statistics.median(step_t)
  return {"generator": path, "image_shape": list(gen.image_shape), "obs_size": env.obs_size,
          "num_envs": num_envs, "decode_images_per_s": decode_rate, "env_steps_per_s": step_rate,
          "ratio": step_rate / decode_rate}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--generators", default="builtin:fashion_mnist_32")
  parser.add_argument("--num-envs", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} x{jax.device_count()}")
  for path in args.generators.split(","):
    r = measure(path, args.num_envs, args.repeats)
    print(f"{path}: {r['image_shape']} decode {r['decode_images_per_s']:.1f} img/s, env "
          f"{r['env_steps_per_s']:.1f} steps/s, ratio {r['ratio']:.3f}")
    print(json.dumps(r))


if __name__ == "__main__":
  main()
