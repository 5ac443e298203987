"""Latent dynamics, env state/params and the step/reset functions (see palmup.env)."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from palmup import config_checks as cc
from palmup.data import transforms
from palmup.generators import Generator


@flax.struct.dataclass
class EnvParams:
  """Dynamics parameters. Every field is a traced leaf, so a sweep can vmap over any of them.

  ema: persistence of the latent (0 = a fresh latent every step, 1 = frozen).
  action_weight: share of the action in the step's input u (the rest is fresh noise).
  action_scale: multiplies the (clipped to [-1, 1]) action.
  noise_scale: std of the fresh noise and of the initial latent.
  variance_preserving: if true, z' = ema z + sqrt(1 - ema^2) u, which keeps Var[z] constant when
    Var[u] = Var[z]; if false (the paper), z' = ema z + (1 - ema) u.
  episode_length: steps per episode; episodes end by truncation only.
  resample_class_each_step: ablation; if true the class prompt is redrawn every step.
  """
  ema: float = 0.9
  action_weight: float = 0.5
  action_scale: float = 1.0
  noise_scale: float = 1.0
  variance_preserving: bool = False
  episode_length: int = 64
  resample_class_each_step: bool = False


@flax.struct.dataclass
class EnvState:
  """Per-env state. z[d] latent, label class prompt, t step within episode, episode counter."""
  z: jax.Array
  label: jax.Array
  t: jax.Array
  episode: jax.Array


def latent_transition(z: jax.Array, action: jax.Array, noise: jax.Array, params: EnvParams) -> jax.Array:
  """z_next from z[..., d], action[..., d] (clipped to [-1, 1]) and noise[..., d] ~ N(0, I):

      u = w * action_scale * clip(action) + (1 - w) * noise_scale * noise,   w = action_weight
      z_next = ema * z + (1 - ema) * u               (standard EMA, the paper)
      z_next = ema * z + sqrt(1 - ema**2) * u        (variance_preserving)
  """
  w = params.action_weight
  u = w * params.action_scale * jnp.clip(action, -1.0, 1.0) + (1.0 - w) * params.noise_scale * noise
  gain = jnp.where(params.variance_preserving, jnp.sqrt(1.0 - params.ema ** 2), 1.0 - params.ema)
  return params.ema * z + gain * u


def params_from_config(config, key: str = "env") -> EnvParams:
  """EnvParams from the dict at config[key]; unknown fields and out-of-range values are rejected
  (fields left out take EnvParams' defaults)."""
  fields = set(EnvParams.__dataclass_fields__)
  given = config[key]
  unknown = set(given) - fields
  cc.require(not unknown, key, sorted(unknown), f"fields of EnvParams: {', '.join(sorted(fields))}")
  for name in ("ema", "action_weight"):
    if name in given:
      cc.in_range(config, f"{key}.{name}", 0, 1)
  if "episode_length" in given:
    cc.positive(config, f"{key}.episode_length")
  return EnvParams(**dict(given))


class LatentEnv(flax.struct.PyTreeNode):
  """A frozen generator as a world. A pytree: pass it through jit (its params are then arguments,
  not constants baked into the program). `obs_size` and the generator are static.

  Observations: uint8 [obs_size, obs_size, C] (C = the generator's channels).
  Actions: float [latent_dim] in [-1, 1] (clipped). Reward: always 0 (explorers add their own).
  Auto-reset: when an episode is truncated, the returned obs and state are the first of the next
  episode (the last latent of the ended episode is never decoded, so each step decodes once).
  info: {"episode": the episode counter of the returned obs, "t": its step within the episode,
  "label": its class}. Consecutive observations (o, o') belong to the same episode iff
  `truncated` is false for the step between them.
  """
  generator: Generator = flax.struct.field(pytree_node=False)
  generator_params: Any
  obs_size: int = flax.struct.field(pytree_node=False, default=32)

  @property
  def latent_dim(self) -> int:
    return self.generator.latent_dim

  @property
  def num_classes(self) -> int:
    return self.generator.num_classes

  @property
  def observation_shape(self) -> tuple[int, int, int]:
    return (self.obs_size, self.obs_size, self.generator.image_shape[2])

  def action_bounds(self) -> tuple[float, float]:
    return -1.0, 1.0

  def decode(self, z: jax.Array, label: jax.Array) -> jax.Array:
    """z[..., d], label[...] -> uint8 observations [..., obs_size, obs_size, C]."""
    batch = z.shape[:-1]
    images = self.generator.apply(self.generator_params, z.reshape(-1, z.shape[-1]), label.reshape(-1))
    obs = transforms.to_uint8(transforms.resize(images, self.obs_size))
    return obs.reshape(batch + obs.shape[1:])

  def _initial(self, key, params: EnvParams, episode) -> EnvState:
    kz, ky = jax.random.split(key)
    z = params.noise_scale * jax.random.normal(kz, (self.latent_dim,))
    label = jax.random.randint(ky, (), 0, self.num_classes)
    return EnvState(z, label, jnp.zeros((), jnp.int32), jnp.asarray(episode, jnp.int32))

  def reset(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
    state = self._initial(key, params, 0)
    return self.decode(state.z, state.label), state

  def step(self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams):
    """-> (obs, state, reward, terminated, truncated, info); one decode per call."""
    k_noise, k_label, k_reset = jax.random.split(key, 3)
    z = latent_transition(state.z, action, jax.random.normal(k_noise, state.z.shape), params)
    label = jnp.where(params.resample_class_each_step,
                      jax.random.randint(k_label, (), 0, self.num_classes), state.label)
    t = state.t + 1
    truncated = t >= params.episode_length
    fresh = self._initial(k_reset, params, state.episode + 1)
    state = jax.tree.map(lambda a, b: jnp.where(truncated, a, b), fresh, EnvState(z, label, t, state.episode))
    obs = self.decode(state.z, state.label)
    info = {"episode": state.episode, "t": state.t, "label": state.label}
    return obs, state, jnp.zeros(()), jnp.zeros((), bool), truncated, info
