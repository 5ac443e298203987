"""On-device replay of short trajectories: a flashbax trajectory buffer over (env, time).

Each env step adds one item per env: what was observed at t, its class label, the action taken
from it, `first` (true if the observation opens an episode, i.e. came from a reset) and `novelty`
(the APT particle reward of the observation among all envs' observations of that step, for
apt.reference = "population"; 0 otherwise). Sampling
draws `sequence_length` consecutive items of one env. Frames i and j > i of a sequence belong to
the same episode iff none of items i+1..j is `first` (`same_episode`): the learner must never
contrast frames of two episodes, and n-step returns must not run across a reset.

storage = "pixels": items hold the uint8 observation (and the latent z too with keep_latents, for an
                    agent that observes the env's state).
storage = "latents": items hold the latent z; observations are decoded on sample.
The generator is frozen, so both give the same images (tested); latents cost far less memory
(`bytes_per_transition`) and cost a decode of every sampled frame.
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
class Sequences:
  """A batch of B sequences of L consecutive steps of one env: obs uint8 [B, L, H, W, C],
  action [B, L, d] (taken at obs), label int32 [B, L], first bool [B, L], novelty float [B, L],
  z [B, L, d] (the latents; None for pixel storage without keep_latents)."""
  obs: jax.Array
  action: jax.Array
  label: jax.Array
  first: jax.Array
  novelty: jax.Array
  z: jax.Array | None = None


def same_episode(first: jax.Array, j: int) -> jax.Array:
  """[B] bool: frames 0 and j of each sequence are in one episode (no reset among items 1..j)."""
  return ~jnp.any(first[:, 1:j + 1], axis=1)


@dataclasses.dataclass(frozen=True)
class Replay:
  """Pure functions over a flashbax buffer state; `capacity` is in steps per env."""
  env: LatentEnv
  num_envs: int
  capacity: int
  batch_size: int
  sequence_length: int = 2
  storage: str = "pixels"
  keep_latents: bool = False

  def __post_init__(self):
    if self.storage not in STORAGES:
      raise ValueError(f"storage must be one of {STORAGES}, got {self.storage!r}")
    if self.capacity < self.sequence_length:
      raise ValueError(f"capacity must be >= sequence_length={self.sequence_length} steps per env, "
                       f"got {self.capacity}")

  @property
  def buffer(self):
    return fbx.make_trajectory_buffer(
        add_batch_size=self.num_envs, sample_batch_size=self.batch_size,
        sample_sequence_length=self.sequence_length, period=1,
        min_length_time_axis=self.sequence_length, max_length_time_axis=self.capacity)

  def item(self, obs: jax.Array, state: EnvState, action: jax.Array, first: jax.Array,
           novelty: jax.Array | float = 0.0) -> dict[str, Any]:
    """The stored record for a batch of envs (leading axis num_envs, or none for one env)."""
    record = {"label": state.label, "action": action, "first": first,
              "novelty": jnp.broadcast_to(jnp.asarray(novelty, jnp.float32), first.shape)}
    if self.storage == "latents" or self.keep_latents:
      record["z"] = state.z
    return {"obs": obs, **record} if self.storage == "pixels" else record

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

  def sample(self, buffer_state, key: jax.Array) -> Sequences:
    seq = self.buffer.sample(buffer_state, key).experience  # leaves [B, L, ...]
    obs = seq["obs"] if self.storage == "pixels" else self.env.decode(seq["z"], seq["label"])
    return Sequences(obs, seq["action"], seq["label"], seq["first"], seq["novelty"], seq.get("z"))

  def bytes_per_transition(self) -> int:
    """Stored bytes per (env, step) item."""
    leaves = jax.tree.leaves(jax.eval_shape(self.init).experience)
    return int(sum(np.prod(x.shape[2:]) * x.dtype.itemsize for x in leaves))
