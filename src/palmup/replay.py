"""On-device replay of short trajectories: a flashbax trajectory buffer over (env, time).

Each env step adds one item per env: what was observed at t, its class label, the action taken
from it, `first` (true if the observation opens an episode, i.e. came from a reset) and `novelty`
(the APT particle reward of the observation among all envs' observations of that step, for
apt.reference = "population"; 0 otherwise). Sampling
draws `sequence_length` consecutive items of one env. Frames i and j > i of a sequence belong to
the same episode iff none of items i+1..j is `first` (`same_episode`): the learner must never
contrast frames of two episodes, and n-step returns must not run across a reset.

storage = "pixels": items hold the uint8 observation, flat (H * W * C bytes: an accelerator tiles the
                    last two axes, and [time, H*W*C] pads little where [W, C] would pad C = 1 or 3
                    to 128 lanes), and the latent z too with keep_latents (an agent that observes
                    the env's state).
storage = "latents": items hold the latent z; observations are decoded on sample.
The generator is frozen, so both give the same images (tested); latents cost far less memory
(`bytes_per_transition`) and cost a decode of every sampled frame. Every stored vector (observation,
action, latent) is zero-padded to a multiple of 128 entries (`_lanes`).

Sampling is stratified (`blocks`): the envs are cut into g = gcd(num_envs, batch_size) blocks of
consecutive envs and the batch into g blocks of consecutive rows; row block j draws its sequences
(env uniform within the block, start uniform among the valid ones: flashbax's rule) from env block
j alone. With the buffer split over a mesh along its env axis (palmup.sharding), every device count
that divides both sizes holds whole blocks, so `sample(..., mesh)` gathers each device's rows from
its own envs (a shard_map: nothing of the buffer crosses devices) and gives the same sequences on
any such mesh. The gather indexes the buffer as it lies (no reshape into blocks: on TPU a reshape
of the env axis relayouts, i.e. copies, the whole buffer every step).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import flashbax as fbx
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import PartitionSpec as P

from palmup.env import EnvState, LatentEnv
from palmup.sharding import AXIS

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


LANES = 128  # a TPU tile's minor dimension


def _lanes(x: jax.Array) -> jax.Array:
  """x [..., F] zero-padded to [..., F'], F' the next multiple of LANES. A TPU pads an array's minor
  dimension to 128 lanes in memory anyway; stored padded, the ring buffer keeps one layout for its
  per-step write and its gather (with F = 64 or 100 the compiler chose two and copied the whole
  buffer between them twice a step)."""
  pad = -x.shape[-1] % LANES
  return x if pad == 0 else jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])


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
  def blocks(self) -> int:
    """The sampling's strata: gcd(num_envs, batch_size) blocks of envs and of batch rows."""
    return math.gcd(self.num_envs, self.batch_size)

  def _buffer(self):
    """flashbax's trajectory buffer (its init, add and can_sample; `sample` is palmup's)."""
    return fbx.make_trajectory_buffer(
        add_batch_size=self.num_envs, sample_batch_size=self.batch_size,
        sample_sequence_length=self.sequence_length, period=1,
        min_length_time_axis=self.sequence_length, max_length_time_axis=self.capacity)

  def item(self, obs: jax.Array, state: EnvState, action: jax.Array, first: jax.Array,
           novelty: jax.Array | float = 0.0) -> dict[str, Any]:
    """The stored record for a batch of envs (leading axis num_envs, or none for one env); obs uint8
    [..., H, W, C] is stored flat, [..., H * W * C]."""
    record = {"label": state.label, "action": _lanes(action), "first": first,
              "novelty": jnp.broadcast_to(jnp.asarray(novelty, jnp.float32), first.shape)}
    if self.storage == "latents" or self.keep_latents:
      record["z"] = _lanes(state.z)
    if self.storage == "latents":
      return record
    return {"obs": _lanes(obs.reshape(obs.shape[:obs.ndim - 3] + (-1,))), **record}

  def init(self):
    d = self.env.latent_dim
    example = self.item(jnp.zeros(self.env.observation_shape, jnp.uint8),
                        EnvState(jnp.zeros(d), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
                                 jnp.zeros((), jnp.int32)),
                        jnp.zeros(d), jnp.zeros((), bool))
    return self._buffer().init(example)

  def add(self, buffer_state, item: dict[str, Any]):
    """Adds one step for all envs: item leaves have leading axis num_envs. The write is a
    dynamic_update_slice at the write head (flashbax's add is a scatter, for which the TPU compiler
    chose a buffer layout other than the gather's and copied the whole buffer twice a step)."""
    t = buffer_state.current_index
    experience = jax.tree.map(lambda x, new: jax.lax.dynamic_update_slice_in_dim(x, new[:, None], t, axis=1),
                              buffer_state.experience, item)
    return buffer_state.replace(experience=experience, current_index=(t + 1) % self.capacity,
                                is_full=buffer_state.is_full | (t + 1 >= self.capacity))

  def can_sample(self, buffer_state) -> jax.Array:
    return self._buffer().can_sample(buffer_state)

  def _gather(self, experience, offsets, times):
    """Sequences {leaf: [R, L, ...]} for R rows of a buffer holding whole env blocks ([R / rows per
    block blocks x num_envs / blocks envs, T, ...]): row i reads env (i // rows per block) * (envs
    per block) + offsets[i] at the ring's slots times[i] ([R, L])."""
    rows, envs = self.batch_size // self.blocks, self.num_envs // self.blocks
    env = jnp.arange(offsets.shape[0]) // rows * envs + offsets
    return jax.tree.map(lambda x: x[env[:, None], times], experience)

  def sample(self, buffer_state, key: jax.Array, mesh=None) -> Sequences:
    """B = batch_size sequences of sequence_length steps (stratified: see the module docstring),
    each start uniform among those whose sequence lies in the written steps (flashbax's rule, with
    period 1). With a mesh, buffer_state's per-env leaves split over it (palmup.sharding): each
    device gathers its own rows from its own envs (flashbax's own sample draws envs from the whole
    buffer, which would cross devices), and the result is split over the mesh along B."""
    k_env, k_start = jax.random.split(key)
    written = jnp.where(buffer_state.is_full, self.capacity, buffer_state.current_index)
    offsets = jax.random.randint(k_env, (self.batch_size,), 0, self.num_envs // self.blocks)
    starts = jax.random.randint(k_start, (self.batch_size,), 0, jnp.maximum(written - self.sequence_length + 1, 1))
    head = jnp.where(buffer_state.is_full, buffer_state.current_index, 0)  # the oldest step's slot
    times = (head + starts[:, None] + jnp.arange(self.sequence_length)) % self.capacity  # [B, L] slots
    experience = buffer_state.experience
    if mesh is None:
      seq = self._gather(experience, offsets, times)
    else:
      seq = jax.shard_map(self._gather, mesh=mesh, in_specs=(jax.tree.map(lambda _: P(AXIS), experience), P(AXIS),
                                                             P(AXIS)), out_specs=P(AXIS))(experience, offsets, times)
    d = self.env.latent_dim
    z = None if "z" not in seq else seq["z"][..., :d]
    if self.storage == "pixels":
      pixels = math.prod(self.env.observation_shape)
      obs = seq["obs"][..., :pixels].reshape(seq["obs"].shape[:2] + self.env.observation_shape)
    else:
      obs = self.env.decode(z, seq["label"])
    return Sequences(obs, seq["action"][..., :d], seq["label"], seq["first"], seq["novelty"], z)

  def bytes_per_transition(self) -> int:
    """Stored bytes per (env, step) item."""
    leaves = jax.tree.leaves(jax.eval_shape(self.init).experience)
    return int(sum(np.prod(x.shape[2:]) * x.dtype.itemsize for x in leaves))
