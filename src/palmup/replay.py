"""On-device replay of temporal pairs: a flashbax trajectory buffer over (env, time).

Each env step adds one item per env: what was observed at t, the action taken from it, and
`first` (true if the observation opens an episode, i.e. came from a reset). Sampling draws
consecutive items (t, t+1) of one env; the pair is a valid positive iff item t+1 is not `first`
(the learner must never contrast frames of two episodes).

storage = "pixels": items hold the uint8 observation.
storage = "latents": items hold the latent z and class label; observations are decoded on sample.
The generator is frozen, so both give the same images (tested); latents cost far less memory
(`bytes_per_transition`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flashbax as fbx
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from palmup.env import EnvState, LatentEnv

STORAGES = ("pixels", "latents")


@flax.struct.dataclass
class Pairs:
  """A batch of temporal pairs: obs/next_obs uint8 [B, H, W, C], action [B, d] (taken at obs),
  valid [B] bool (both frames in the same episode)."""
  obs: jax.Array
  next_obs: jax.Array
  action: jax.Array
  valid: jax.Array


@dataclasses.dataclass(frozen=True)
class PairReplay:
  """Pure functions over a flashbax buffer state; `capacity` is in steps per env."""
  env: LatentEnv
  num_envs: int
  capacity: int
  batch_size: int
  storage: str = "pixels"

  def __post_init__(self):
    if self.storage not in STORAGES:
      raise ValueError(f"storage must be one of {STORAGES}, got {self.storage!r}")
    if self.capacity < 2:
      raise ValueError(f"capacity must be >= 2 steps per env, got {self.capacity}")

  @property
  def buffer(self):
    return fbx.make_trajectory_buffer(
        add_batch_size=self.num_envs, sample_batch_size=self.batch_size, sample_sequence_length=2,
        period=1, min_length_time_axis=2, max_length_time_axis=self.capacity)

  def item(self, obs: jax.Array, state: EnvState, action: jax.Array, first: jax.Array) -> dict[str, Any]:
    """The stored record for a batch of envs (leading axis num_envs, or none for one env)."""
    if self.storage == "pixels":
      return {"obs": obs, "action": action, "first": first}
    return {"z": state.z, "label": state.label, "action": action, "first": first}

  def init(self):
    d = self.env.latent_dim
    example = self.item(jnp.zeros(self.env.observation_shape, jnp.uint8),
                        EnvState(jnp.zeros(d), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
                                 jnp.zeros((), jnp.int32)),
                        jnp.zeros(d), jnp.zeros((), bool))
    return self.buffer.init(example)

  def add(self, buffer_state, item: dict[str, Any]):
    """Adds one step for all envs: item leaves have leading axis num_envs."""
    return self.buffer.add(buffer_state, jax.tree.map(lambda x: x[:, None], item))

  def can_sample(self, buffer_state) -> jax.Array:
    return self.buffer.can_sample(buffer_state)

  def sample(self, buffer_state, key: jax.Array) -> Pairs:
    seq = self.buffer.sample(buffer_state, key).experience  # leaves [B, 2, ...]
    if self.storage == "pixels":
      obs, next_obs = seq["obs"][:, 0], seq["obs"][:, 1]
    else:
      frames = self.env.decode(seq["z"], seq["label"])  # [B, 2, H, W, C]
      obs, next_obs = frames[:, 0], frames[:, 1]
    return Pairs(obs, next_obs, seq["action"][:, 0], ~seq["first"][:, 1])

  def bytes_per_transition(self) -> int:
    """Stored bytes per (env, step) item."""
    leaves = jax.tree.leaves(jax.eval_shape(self.init).experience)
    return int(sum(np.prod(x.shape[2:]) * x.dtype.itemsize for x in leaves))
