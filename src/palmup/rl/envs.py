"""RL tasks with pixel observations, converted to the encoder's input in one place (`to_encoder_obs`).

JAX tasks run inside the fused PPO program (batched over N envs, pure):
  reset(key, n) -> (obs uint8 [N, H, W, C], state)
  begin_rollout(key, state) -> state          once per rollout, outside the step
  step(key, state, action [N]) -> (obs, state, reward [N], done [N])
  - craftax_classic_task: Craftax-Classic-Pixels (63x63x3 in [0, 1], 17 actions). Generating a
    world costs about 5 env steps and an auto-reset would generate one every step (under vmap both
    branches run), so auto-reset is off (PoolResetTask): a pool of fresh worlds is generated once
    per rollout and an env whose episode ends takes a random one from it.
  - MinAtarTask: gymnax MinAtar (10x10xK object channels, coloured with a fixed palette).
Host tasks run on the CPU and are stepped from Python (ppo.train_host), numpy in and out:
  reset(n) -> obs uint8 [n, H, W, C];  step(action [n]) -> (obs, reward [n], done [n])
  - AtariTask: ALE through ale_py.vector_env.AtariVectorEnv (ROMs ship in the wheel): full
    210x160 frames (grey or RGB, no frame stack), frame skip with max-pooling, no-op starts,
    same-step auto-reset; rewards unclipped (PPO clips its training reward, config.ppo.clip_rewards).
Episodes end at termination or truncation (`done`), purejaxrl-style.
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from palmup.data import transforms

TASKS = ("craftax_classic_pixels", "minatar", "atari")
MINATAR_GAMES = {"asterix": "Asterix-MinAtar", "breakout": "Breakout-MinAtar", "freeway": "Freeway-MinAtar",
                 "seaquest": "Seaquest-MinAtar", "space_invaders": "SpaceInvaders-MinAtar"}


def to_encoder_obs(images, obs_shape) -> jax.Array:
  """Any task's images -> the encoder's input. images: uint8 [B, H, W, C] in [0, 255] or float in
  [0, 1], any size, 1 or 3 channels -> uint8 [B, *obs_shape] (bilinear, antialiased resize to the
  square obs_shape[0]; grey <-> RGB by luma / repetition)."""
  x = images if images.dtype == jnp.uint8 else jnp.asarray(images, jnp.float32) * 2.0 - 1.0
  return transforms.to_uint8(transforms.prepare(x, obs_shape[0], obs_shape[2]))


def minatar_rgb(obs) -> jax.Array:
  """MinAtar object channels [B, 10, 10, K] in {0, 1} -> RGB [B, 10, 10, 3] in [0, 1], one fixed
  colour per channel (where channels overlap, the brightest wins)."""
  k = obs.shape[-1]
  phase = jnp.arange(k)[:, None] / k + jnp.asarray([0.0, 1 / 3, 2 / 3])
  palette = 0.5 + 0.5 * jnp.cos(2 * jnp.pi * phase)  # [K, 3]
  return jnp.max(jnp.asarray(obs, jnp.float32)[..., None] * palette, axis=-2)


def _where_done(done, new, old):
  """Per env: leaves [N, ...] of `new` where done [N], else of `old`."""
  return jax.tree.map(lambda a, b: jnp.where(done.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old)


class MinAtarTask:
  """gymnax MinAtar `game` (a MINATAR_GAMES key), observed as obs_shape."""

  def __init__(self, game: str, obs_shape):
    import gymnax  # imported outside any trace: its modules build jnp constants on import
    self.obs_shape = tuple(obs_shape)
    self._env = gymnax.make(MINATAR_GAMES[game])
    self.num_actions = self._env[0].num_actions

  def _observe(self, obs):
    return to_encoder_obs(minatar_rgb(obs), self.obs_shape)

  def reset(self, key, n):
    env, params = self._env
    obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(key, n), params)
    return self._observe(obs), state

  def begin_rollout(self, key, state):
    return state

  def step(self, key, state, action):
    env, params = self._env
    keys = jax.random.split(key, action.shape[0])
    obs, state, reward, terminated, truncated, _ = jax.vmap(env.step, (0, 0, 0, None))(keys, state, action, params)
    return self._observe(obs), state, reward, terminated | truncated


@flax.struct.dataclass
class PoolState:
  envs: object         # env states [N]
  pool: object         # fresh env states [P], regenerated each rollout
  pool_obs: jax.Array  # their observations, uint8 [P, *obs_shape]


class PoolResetTask:
  """A task over a gymnax-style env without auto-reset (reset(key, params) -> (obs, state);
  step(key, state, action, params) -> (obs, state, reward, done, info); obs float in [0, 1]):
  pool_size fresh episodes are generated once per rollout (begin_rollout), and an env whose
  episode ends takes a random one of them (two envs may draw the same one)."""

  def __init__(self, env, env_params, obs_shape, pool_size: int):
    self._env, self._params = env, env_params
    self.obs_shape, self.pool_size, self.num_actions = tuple(obs_shape), pool_size, env.num_actions

  def _fresh(self, key, n):
    obs, state = jax.vmap(self._env.reset, (0, None))(jax.random.split(key, n), self._params)
    return to_encoder_obs(obs, self.obs_shape), state

  def reset(self, key, n):
    obs, states = self._fresh(key, n + self.pool_size)  # one batched generation: envs, then pool
    envs, pool = jax.tree.map(lambda x: x[:n], states), jax.tree.map(lambda x: x[n:], states)
    return obs[:n], PoolState(envs, pool, obs[n:])

  def begin_rollout(self, key, state):
    pool_obs, pool = self._fresh(key, self.pool_size)
    return state.replace(pool=pool, pool_obs=pool_obs)

  def step(self, key, state, action):
    k_step, k_chosen = jax.random.split(key)
    n = action.shape[0]
    obs, envs, reward, done, _ = jax.vmap(self._env.step, (0, 0, 0, None))(
        jax.random.split(k_step, n), state.envs, action, self._params)
    chosen = jax.random.randint(k_chosen, (n,), 0, self.pool_size)
    fresh = jax.tree.map(lambda x: x[chosen], (state.pool_obs, state.pool))
    obs, envs = _where_done(done, fresh, (to_encoder_obs(obs, self.obs_shape), envs))
    return obs, state.replace(envs=envs), reward, done


def craftax_classic_task(obs_shape, pool_size: int) -> PoolResetTask:
  """Craftax-Classic-Pixels without auto-reset, episodes restarted from a pool. Its first use ever
  writes a texture cache into site-packages (about 45 s); later ones read it (1-2 s)."""
  # imported here, outside any trace: craftax's modules build jnp constants on import
  from craftax.craftax_classic.envs.craftax_pixels_env import CraftaxClassicPixelsEnvNoAutoReset
  env = CraftaxClassicPixelsEnvNoAutoReset()
  return PoolResetTask(env, env.default_params, obs_shape, pool_size)


class AtariTask:
  """ALE host task over num_envs emulators (AtariVectorEnv, same-step auto-reset)."""

  def __init__(self, game: str, obs_shape, num_envs: int, seed: int, frameskip: int,
               repeat_action_probability: float):
    from ale_py.vector_env import AtariVectorEnv
    self.obs_shape = tuple(obs_shape)
    self.seed = seed
    self.env = AtariVectorEnv(
        game, num_envs, autoreset_mode="SameStep", img_height=210, img_width=160,
        grayscale=self.obs_shape[2] == 1, stack_num=1, frameskip=frameskip, reward_clipping=False,
        repeat_action_probability=repeat_action_probability)
    self.num_actions = int(self.env.single_action_space.n)
    self._observe = jax.jit(lambda frames: to_encoder_obs(frames, self.obs_shape))

  def _obs(self, frames) -> np.ndarray:
    frames = frames[:, 0]  # no frame stack: [n, 210, 160] grey or [n, 210, 160, 3] RGB
    return np.asarray(self._observe(frames[..., None] if frames.ndim == 3 else frames))

  def reset(self, n):
    assert n == self.env.num_envs, (n, self.env.num_envs)
    return self._obs(self.env.reset(seed=self.seed)[0])

  def step(self, action):
    frames, reward, terminated, truncated, _ = self.env.step(np.asarray(action, np.int32))
    return self._obs(frames), reward.astype(np.float32), terminated | truncated

  def close(self):
    self.env.close()


def make_task(c, obs_shape, num_envs: int = 0, seed: int = 0):
  """The task config.task names. num_envs and seed: host tasks only (all seeds' envs together)."""
  if c.name == "craftax_classic_pixels":
    return craftax_classic_task(obs_shape, c.reset_pool)
  if c.name == "minatar":
    return MinAtarTask(c.game, tuple(obs_shape))
  if c.name == "atari":
    return AtariTask(c.game, obs_shape, num_envs, seed, c.frameskip, c.repeat_action_probability)
  raise ValueError(f"task.name must be one of {TASKS}, got {c.name!r}")


def is_host(c) -> bool:
  return c.name == "atari"
