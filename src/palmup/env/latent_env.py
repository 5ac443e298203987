"""Latent dynamics, env state/params and the step/reset functions (see palmup.env)."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from palmup import config_checks
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
  config_checks.require(not unknown, key, sorted(unknown), f"fields of EnvParams: {', '.join(sorted(fields))}")
  for name in ("ema", "action_weight"):
    if name in given:
      config_checks.in_range(config, f"{key}.{name}", 0, 1)
  if "episode_length" in given:
    config_checks.positive(config, f"{key}.episode_length")
  return EnvParams(**dict(given))


LATENT_SPACES = ("z", "w")


def make_env(generator: Generator, generator_params, obs_size: int, latent_space: str = "z") -> "LatentEnv":
  """A LatentEnv after checking `latent_space` against the generator (config key `latent_space`)."""
  config_checks.require(latent_space in LATENT_SPACES, "latent_space", latent_space, "'z' or 'w'")
  config_checks.require(latent_space == "z" or generator.w_dim is not None, "latent_space", latent_space,
             f"'z' (the {generator.kind} generator has no W space; stylegan2_ada generators have one)")
  return LatentEnv(generator, generator_params, obs_size, latent_space)


class LatentEnv(flax.struct.PyTreeNode):
  """A frozen generator as a world. A pytree: pass it through jit (its params are then arguments,
  not constants baked into the program). `obs_size` and the generator are static.

  Observations: uint8 [obs_size, obs_size, C] (C = the generator's channels).
  latent_space: "z" (the generator's input; the paper's setting) or "w" (its mapping network's
  output, stylegan2_ada only): the dynamics act on that latent, and the fresh latent mixed in each
  step is a N(0, I) z, or in W the mapping of a N(0, I) z for the episode's class. In W the latent
  is w - w_avg: its origin is the average w, so the EMA's shrinking pulls towards the mean image
  (as truncation does) rather than towards w = 0, which no z maps to.
  Actions: float [latent_dim] in [-1, 1] (clipped; latent_dim = z's or w's size). Reward: always 0 (explorers add their own).
  Auto-reset: when an episode is truncated, the returned obs and state are the first of the next
  episode (the last latent of the ended episode is never decoded, so each step decodes once).
  info: {"episode": the episode counter of the returned obs, "t": its step within the episode,
  "label": its class}. Consecutive observations (o, o') belong to the same episode iff
  `truncated` is false for the step between them.
  """
  generator: Generator = flax.struct.field(pytree_node=False)
  generator_params: Any
  obs_size: int = flax.struct.field(pytree_node=False, default=32)
  latent_space: str = flax.struct.field(pytree_node=False, default="z")

  @property
  def latent_dim(self) -> int:
    return self.generator.w_dim if self.latent_space == "w" else self.generator.latent_dim

  @property
  def num_classes(self) -> int:
    return self.generator.num_classes

  @property
  def observation_shape(self) -> tuple[int, int, int]:
    return (self.obs_size, self.obs_size, self.generator.image_shape[2])

  def render(self, z: jax.Array, label: jax.Array) -> jax.Array:
    """z[..., d] (a latent of latent_space), label[...] -> float images [..., obs_size, obs_size, C]
    in [-1, 1], not quantised: differentiable in z (the gradient explorer's path through the world)."""
    batch = z.shape[:-1]
    z, label = z.reshape(-1, z.shape[-1]), label.reshape(-1)
    if self.latent_space == "w":
      images = self.generator.synthesize(self.generator_params, z + self.generator.w_avg(self.generator_params))
    else:
      images = self.generator.apply(self.generator_params, z, label)
    images = jnp.clip(transforms.resize(images, self.obs_size), -1.0, 1.0)
    return images.reshape(batch + images.shape[1:])

  def decode(self, z: jax.Array, label: jax.Array) -> jax.Array:
    """z[..., d] (a latent of latent_space), label[...] -> uint8 observations [..., obs_size, obs_size, C]:
    render's images, quantised."""
    return transforms.to_uint8(self.render(z, label))

  def markov_state(self, z: jax.Array, labels: jax.Array) -> jax.Array:
    """The env's Markov state as an agent input [..., latent_dim + num_classes]: the latent as the
    generator sees it (z over its root mean square for a generator that normalises z, else as it
    is) and the one-hot class."""
    if self.latent_space == "z" and self.generator.normalizes_latent:
      z = z * jax.lax.rsqrt(jnp.mean(jnp.square(z), axis=-1, keepdims=True) + 1e-8)
    return jnp.concatenate([z, jax.nn.one_hot(labels, self.num_classes, dtype=z.dtype)], axis=-1)

  def fresh_latents(self, key, labels: jax.Array) -> jax.Array:
    """Fresh latents [*labels.shape, latent_dim]: z ~ N(0, I), or in W the mappings of such z for
    `labels`, minus w_avg."""
    return self.latents_of(jax.random.normal(key, labels.shape + (self.generator.latent_dim,)), labels)

  def latents_of(self, z: jax.Array, labels: jax.Array) -> jax.Array:
    """The env's latents [*labels.shape, latent_dim] of generator inputs z [*labels.shape,
    generator.latent_dim]: z itself, or in W the mappings of z for `labels`, minus w_avg."""
    if self.latent_space == "z":
      return z
    g, p = self.generator, self.generator_params
    w = g.map(p, z.reshape(-1, z.shape[-1]), labels.reshape(-1)) - g.w_avg(p)
    return w.reshape(labels.shape + w.shape[-1:])

  def _initial(self, key, params: EnvParams, episode) -> EnvState:
    kz, ky = jax.random.split(key)
    label = jax.random.randint(ky, (), 0, self.num_classes)
    z = params.noise_scale * self.fresh_latents(kz, label)
    return EnvState(z, label, jnp.zeros((), jnp.int32), jnp.asarray(episode, jnp.int32))

  def reset(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
    state = self._initial(key, params, 0)
    return self.decode(state.z, state.label), state

  def step(self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams):
    """-> (obs, state, reward, terminated, truncated, info); one decode per call."""
    images, *rest = self.step_images(key, state, action, params)
    return (transforms.to_uint8(images), *rest)

  def step_images(self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams):
    """`step` with the observation as `render`'s float image in [-1, 1], not quantised: differentiable
    in the action (a truncated episode's fresh first frame does not depend on it)."""
    k_noise, k_label, k_reset = jax.random.split(key, 3)
    label = jnp.where(params.resample_class_each_step,
                      jax.random.randint(k_label, (), 0, self.num_classes), state.label)
    z = latent_transition(state.z, action, self.fresh_latents(k_noise, label), params)
    t = state.t + 1
    truncated = t >= params.episode_length
    fresh = self._initial(k_reset, params, state.episode + 1)
    state = jax.tree.map(lambda a, b: jnp.where(truncated, a, b), fresh, EnvState(z, label, t, state.episode))
    images = self.render(state.z, state.label)
    info = {"episode": state.episode, "t": state.t, "label": state.label}
    return images, state, jnp.zeros(()), jnp.zeros((), bool), truncated, info
