"""The novelty planner (explorer = "novelty"): exploration by one step of lookahead through the world
palmup knows exactly, with no learned policy.

Each env draws `candidates` uniform actions, simulates each one step (`latent_transition` with fresh
noise, decoded by the generator with the env's class) and takes the action whose frame is farthest
from its k-th nearest neighbour among every env's current frame, in the learner's detached
features: the env moves to where the population is not. Why (experiments/t4_headroom.py): picking
among 4 prior frames per env, each env alone, raises the judge-space entropy of the envs' frames by
about 20 nats over uniform random actions, while APT's learned actor reaches at best random actions'.
Cost per step: candidates x num_envs extra decodes and encoder passes.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from palmup.apt import kth_distance
from palmup.env import EnvParams, EnvState, LatentEnv, latent_transition


@dataclasses.dataclass(frozen=True)
class NoveltyPlanner:
  """config: the `planner` ConfigDict (candidates, k)."""
  env: LatentEnv
  params: EnvParams
  config: object

  def act(self, key, state: EnvState, features, reference) -> jax.Array:
    """-> actions [N, d] in [-1, 1] for the envs in state (z [N, d], label [N]); features(obs uint8
    [B, H, W, C]) -> [B, D]; reference [M, D]: the envs' current frames' features."""
    k_action, k_noise = jax.random.split(key)
    n, d, c = state.z.shape[0], state.z.shape[-1], self.config.candidates
    actions = jax.random.uniform(k_action, (c, n, d), minval=-1.0, maxval=1.0)
    labels = jnp.broadcast_to(state.label, (c, n))
    z = latent_transition(state.z[None], actions, self.env.fresh_latents(k_noise, labels), self.params)
    frames = self.env.decode(z, labels)  # [C, N, H, W, ch]
    novelty = kth_distance(features(frames.reshape((c * n,) + frames.shape[2:])).reshape(c, n, -1), reference,
                           self.config.k)  # [C, N]
    return jnp.take_along_axis(actions, jnp.argmax(novelty, axis=0)[None, :, None], axis=0)[0]
