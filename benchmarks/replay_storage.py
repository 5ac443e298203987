"""replay: bytes per stored transition, pixels vs latents, and the sample throughput of each.

    python benchmarks/replay_storage.py [--quick] [--config pretrain_fashion_mnist] [--repeats 5]

For the config's envs, capacity, batch and sequence length, a buffer of each storage is filled
and sampled (B sequences of L frames). References, in the same process: for pixels, a bare
gather of B sequences of L frames from the buffer's storage (the memory limit); for latents, the
bare decode of B x L latents (env.decode, the compute limit). Medians of alternating
calls. No targets: the figures say what each storage costs.
"""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp

import benchlib

SIZES = dict(config="pretrain_fashion_mnist", repeats=5)
QUICK = dict(config="pretrain_tiny", repeats=2)


def filled(config, env, storage: str):
  """(Replay, a buffer holding sequence_length + 1 steps of every env)."""
  from palmup import pretrain
  from palmup.env import params_from_config
  from palmup.replay import Replay
  replay = Replay(env, config.num_envs, config.replay.capacity, config.replay.batch_size,
                  pretrain.sequence_length(config), storage)
  keys = jax.random.split(jax.random.PRNGKey(0), config.num_envs)
  obs, state = jax.jit(jax.vmap(env.reset, (0, None)))(keys, params_from_config(config))
  action = jax.random.uniform(jax.random.PRNGKey(1), (config.num_envs, env.latent_dim), minval=-1)
  add = jax.jit(lambda buffer: replay.add(buffer, replay.item(obs, state, action, state.t == 0)))
  buffer = replay.init()
  for _ in range(replay.sequence_length + 1):
    buffer = add(buffer)
  return replay, buffer


def run(config: str, repeats: int) -> dict:
  config, env = benchlib.load_env(config)
  key = jax.random.PRNGKey(2)
  calls, details = {}, {}
  for storage in ("pixels", "latents"):
    replay, buffer = filled(config, env, storage)
    calls[storage] = benchlib.compile_for(replay.sample, buffer, key)
    env_index = jax.random.randint(key, (config.replay.batch_size, 1), 0, config.num_envs)
    time_index = jnp.arange(replay.sequence_length)  # the sampled sequences' shape, [B, L]
    if storage == "pixels":
      calls["gather"] = benchlib.compile_for(lambda x, i, t: x[i, t], buffer.experience["obs"], env_index, time_index)
    else:
      z, y = buffer.experience["z"][env_index, time_index], buffer.experience["label"][env_index, time_index]
      calls["decode"] = benchlib.compile_for(env.decode, z, y)
    details[f"{storage}_bytes_per_transition"] = replay.bytes_per_transition()
    details[f"{storage}_buffer_bytes"] = replay.bytes_per_transition() * config.num_envs * config.replay.capacity
  seconds = benchlib.median_seconds(calls, repeats)
  frames = config.replay.batch_size * replay.sequence_length
  details.update({f"{name}_frames_per_s": frames / s for name, s in seconds.items()})
  return {"figures": {
              "latents_over_pixels_bytes": details["latents_bytes_per_transition"] / details["pixels_bytes_per_transition"],
              "pixels_sample_over_gather": seconds["pixels"] / seconds["gather"],
              "latents_sample_over_decode": seconds["latents"] / seconds["decode"]},
          "targets": {}, "details": details}


if __name__ == "__main__":
  benchlib.main(sys.modules[__name__])
