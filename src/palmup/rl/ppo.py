"""PPO (purejaxrl-style) with actor-critic heads on a palmup image encoder.

`make_train(config, task, agent)` returns a pure `train(rng, encoder_params)`: the whole run is
one program of nested `lax.scan`s, jitted once; `jax.vmap` over rngs runs several seeds in it:

    update step (scan over num_updates)
      begin_rollout  the task's once-per-rollout work (Craftax: a pool of fresh worlds)
      rollout        scan over num_steps: encoder -> heads -> sample an action -> task.step
      gae            advantages and value targets (a reverse scan)
      update         update_epochs x num_minibatches clipped-PPO Adam steps (scans)

`train_host` runs host tasks (ALE) from a Python loop with the same `act`, `gae` and `update`,
jitted and vmapped over seeds: one PPO loss (`ppo_loss`), one GAE (`gae`) for both paths.

Encoder modes (agent.train_encoder): the agent's params are {"encoder": ..., "heads": ...}.
  frozen (pretrained, random): the rollout stores stop_gradient features, the update trains the
    heads only; the encoder's params are not in the optimiser and come back bit-identical;
  scratch: the rollout stores the uint8 observations; the update trains encoder and heads.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from palmup.data import transforms


def _init(scale: float):
  """N(0, scale^2 / fan_in) weights: purejaxrl's gains (sqrt 2 hidden, 0.01 actor, 1 critic) on a
  normal init instead of its orthogonal one, whose batched QR (init vmapped over 3 seeds) hangs
  in jaxlib 0.10.2's CPU LAPACK kernel."""
  return nn.initializers.variance_scaling(scale ** 2, "fan_in", "normal")


class Heads(nn.Module):
  """features [B, D] -> (logits [B, A], value [B]): LayerNorm (features of any encoder arrive on
  one scale), then separate two-layer tanh MLPs for the actor and the critic."""
  num_actions: int
  hidden: int = 256

  @nn.compact
  def __call__(self, h):
    h = nn.LayerNorm()(h)

    def mlp(x, out, scale, name):
      for i in range(2):
        x = nn.tanh(nn.Dense(self.hidden, kernel_init=_init(math.sqrt(2)), name=f"{name}_{i}")(x))
      return nn.Dense(out, kernel_init=_init(scale), name=f"{name}_out")(x)

    return mlp(h, self.num_actions, 0.01, "actor"), mlp(h, 1, 1.0, "critic")[..., 0]


@dataclasses.dataclass(frozen=True)
class Agent:
  """Encoder + heads. encoder: palmup encoder module, float [B, H, W, C] in [-1, 1] -> [B, D]."""
  encoder: nn.Module
  obs_shape: tuple
  num_actions: int
  hidden: int
  train_encoder: bool

  @property
  def heads(self) -> Heads:
    return Heads(self.num_actions, self.hidden)

  def init_encoder(self, key) -> dict:
    return self.encoder.init(key, jnp.zeros((1,) + tuple(self.obs_shape)))["params"]

  def features(self, encoder_params, obs) -> jax.Array:
    """uint8 obs [B, H, W, C] -> features [B, D]."""
    return self.encoder.apply({"params": encoder_params}, transforms.to_float(obs))

  def inputs(self, params, obs) -> jax.Array:
    """What the rollout stores per observation: frozen features [B, D] or the uint8 obs (scratch)."""
    return obs if self.train_encoder else jax.lax.stop_gradient(self.features(params["encoder"], obs))

  def apply(self, params, inputs):
    """inputs (see `inputs`) -> (logits [B, A], value [B])."""
    h = self.features(params["encoder"], inputs) if self.train_encoder else inputs
    return self.heads.apply({"params": params["heads"]}, h)


@flax.struct.dataclass
class AgentState:
  trainable: dict  # {"heads"} or {"heads", "encoder"} (scratch): what the optimiser updates
  frozen: dict     # {"encoder"} or {} (scratch): never updated
  opt_state: optax.OptState

  @property
  def params(self) -> dict:
    return {**self.frozen, **self.trainable}


@flax.struct.dataclass
class Transition:
  """One rollout step of N envs (a rollout stacks them to [T, N, ...])."""
  inputs: jax.Array    # features [N, D] float32, or obs [N, H, W, C] uint8 (scratch)
  action: jax.Array    # [N] int32
  log_prob: jax.Array  # [N]
  value: jax.Array     # [N]
  reward: jax.Array    # [N] training reward (sign-clipped when config.clip_rewards)
  done: jax.Array      # [N] bool: the episode ended at this step (terminated or truncated)


def num_updates(c) -> int:
  return c.total_env_steps // (c.num_envs * c.num_steps)


def make_optimizer(c):
  """Adam (eps 1e-5) after global-norm clipping; lr annealed linearly to 0 when c.anneal_lr."""
  steps = num_updates(c) * c.update_epochs * c.num_minibatches
  lr = optax.linear_schedule(c.lr, 0.0, steps) if c.anneal_lr else c.lr
  return optax.chain(optax.clip_by_global_norm(c.max_grad_norm), optax.adam(lr, eps=1e-5))


def init_state(agent: Agent, tx, key, encoder_params) -> AgentState:
  """Fresh heads on the given encoder; the optimiser state covers the trainable params only."""
  features = jax.eval_shape(agent.features, encoder_params, jnp.zeros((1,) + tuple(agent.obs_shape), jnp.uint8))
  heads = agent.heads.init(key, jnp.zeros(features.shape))["params"]
  trainable, frozen = ({"heads": heads, "encoder": encoder_params}, {}) if agent.train_encoder else (
      {"heads": heads}, {"encoder": encoder_params})
  return AgentState(trainable, frozen, tx.init(trainable))


def act(agent: Agent, params, obs, key):
  """uint8 obs [N, H, W, C] -> (inputs, action [N], log_prob [N], value [N]), actions sampled."""
  inputs = agent.inputs(params, obs)
  logits, value = agent.apply(params, inputs)
  action = jax.random.categorical(key, logits)
  log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
  return inputs, action, log_prob, value


def track_episodes(episode_return, reward, done):
  """Running returns [N] -> (running returns, sum [] and count [] of the returns that ended now)."""
  total = episode_return + reward
  return jnp.where(done, 0.0, total), jnp.sum(jnp.where(done, total, 0.0)), jnp.sum(done)


def gae(reward, value, done, last_value, gamma: float, lam: float):
  """Generalised advantage estimation. reward, value, done [T, N], last_value [N] (the value of
  the observation after the last step) -> (advantages [T, N], value targets [T, N])."""
  def step(carry, x):
    next_advantage, next_value = carry
    r, v, d = x
    not_done = 1.0 - d
    delta = r + gamma * next_value * not_done - v
    advantage = delta + gamma * lam * not_done * next_advantage
    return (advantage, v), advantage

  _, advantages = jax.lax.scan(step, (jnp.zeros_like(last_value), last_value),
                               (reward, value, done.astype(jnp.float32)), reverse=True)
  return advantages, advantages + value


def ppo_loss(trainable, frozen, agent: Agent, batch: Transition, advantages, targets, c):
  """Clipped PPO objective on a minibatch [B]: actor + vf_coef * value - ent_coef * entropy."""
  logits, value = agent.apply({**frozen, **trainable}, batch.inputs)
  log_probs = jax.nn.log_softmax(logits)
  log_prob = jnp.take_along_axis(log_probs, batch.action[:, None], -1)[:, 0]
  value_clipped = batch.value + jnp.clip(value - batch.value, -c.clip_eps, c.clip_eps)
  value_loss = 0.5 * jnp.mean(jnp.maximum((value - targets) ** 2, (value_clipped - targets) ** 2))
  ratio = jnp.exp(log_prob - batch.log_prob)
  adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
  actor_loss = -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - c.clip_eps, 1 + c.clip_eps) * adv))
  entropy = -jnp.mean(jnp.sum(jnp.exp(log_probs) * log_probs, -1))
  total = actor_loss + c.vf_coef * value_loss - c.ent_coef * entropy
  return total, {"actor_loss": actor_loss, "value_loss": value_loss, "entropy": entropy,
                 "approx_kl": jnp.mean((ratio - 1) - jnp.log(ratio))}


def update(agent: Agent, tx, c, state: AgentState, traj: Transition, last_value, key):
  """PPO update on a rollout traj [T, N]: update_epochs passes over num_minibatches shuffled
  minibatches of the T * N steps. -> (state, losses averaged over the steps)."""
  advantages, targets = gae(traj.reward, traj.value, traj.done, last_value, c.gamma, c.gae_lambda)
  flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), (traj, advantages, targets))
  size = advantages.size

  def epoch(state, key):
    order = jax.random.permutation(key, size)
    minibatches = jax.tree.map(lambda x: x[order].reshape((c.num_minibatches, -1) + x.shape[1:]), flat)

    def minibatch(state, mb):
      grads, metrics = jax.grad(ppo_loss, has_aux=True)(state.trainable, state.frozen, agent, *mb, c)
      updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
      return state.replace(trainable=optax.apply_updates(state.trainable, updates), opt_state=opt_state), metrics

    return jax.lax.scan(minibatch, state, minibatches)

  state, metrics = jax.lax.scan(epoch, state, jax.random.split(key, c.update_epochs))
  return state, jax.tree.map(jnp.mean, metrics)


def _train_reward(c, reward):
  return jnp.sign(reward) if c.clip_rewards else reward


def make_train(c, task, agent: Agent):
  """-> pure train(rng, encoder_params) -> (final params, metrics {name: [num_updates]}).

  c: the `ppo` ConfigDict. task: a JAX task (palmup.rl.envs): reset(key, n), begin_rollout(key,
  state), step(key, state, action). Metrics per update: the losses, and episode_return_sum /
  episodes over the episodes that ended during its rollout.
  """
  tx = make_optimizer(c)

  def train(rng, encoder_params):
    k_init, k_env, rng = jax.random.split(rng, 3)
    state = init_state(agent, tx, k_init, encoder_params)
    obs, env_state = task.reset(k_env, c.num_envs)

    def update_step(runner, key):
      state, env_state, obs, episode_return = runner
      k_pool, k_rollout, k_update = jax.random.split(key, 3)
      env_state = task.begin_rollout(k_pool, env_state)
      params = state.params

      def env_step(carry, key):
        env_state, obs, episode_return = carry
        k_act, k_env = jax.random.split(key)
        inputs, action, log_prob, value = act(agent, params, obs, k_act)
        next_obs, env_state, reward, done = task.step(k_env, env_state, action)
        episode_return, ended_sum, ended = track_episodes(episode_return, reward, done)
        step = Transition(inputs, action, log_prob, value, _train_reward(c, reward), done)
        return (env_state, next_obs, episode_return), (step, ended_sum, ended)

      (env_state, obs, episode_return), (traj, ended_sum, ended) = jax.lax.scan(
          env_step, (env_state, obs, episode_return), jax.random.split(k_rollout, c.num_steps))
      last_value = agent.apply(params, agent.inputs(params, obs))[1]
      state, metrics = update(agent, tx, c, state, traj, last_value, k_update)
      metrics.update(episode_return_sum=ended_sum.sum(), episodes=ended.sum())
      return (state, env_state, obs, episode_return), metrics

    runner = (state, env_state, obs, jnp.zeros(c.num_envs))
    runner, metrics = jax.lax.scan(update_step, runner, jax.random.split(rng, num_updates(c)))
    return runner[0].params, metrics

  return train


def train_host(c, task, agent: Agent, rngs, encoder_params, encoder_axis):
  """The same PPO for a host task (ALE) stepped from Python, seeds vmapped in every jitted call.

  rngs [S]; encoder_params with a leading seed axis (encoder_axis=0) or shared (None); the task
  runs S * num_envs envs: reset(num_envs) -> obs, step(action) -> (obs, reward, done), numpy.
  -> (final params, metrics {name: [S, num_updates]}), as jit(vmap(make_train(...))) gives.
  """
  tx = make_optimizer(c)
  seeds, n = rngs.shape[0], c.num_envs
  keys = jax.vmap(lambda k: jax.random.split(k, 3))(rngs)
  state = jax.jit(jax.vmap(functools.partial(init_state, agent, tx), (0, encoder_axis)))(keys[:, 0], encoder_params)
  act_fn = jax.jit(jax.vmap(lambda s, o, k: act(agent, s.params, o, k)))
  value_fn = jax.jit(jax.vmap(lambda s, o: agent.apply(s.params, agent.inputs(s.params, o))[1]))
  update_fn = jax.jit(jax.vmap(functools.partial(update, agent, tx, c)))
  track = jax.jit(jax.vmap(track_episodes))
  split = jax.jit(jax.vmap(lambda k: jax.random.split(k, c.num_steps + 2)))
  obs = task.reset(seeds * n).reshape((seeds, n) + tuple(agent.obs_shape))
  episode_return = np.zeros((seeds, n), np.float32)
  rng, history = keys[:, 2], []
  for _ in range(num_updates(c)):
    step_keys = split(rng)
    rng, k_update = step_keys[:, 0], step_keys[:, 1]
    steps, ended_sum, ended = [], 0.0, 0
    for t in range(c.num_steps):
      inputs, action, log_prob, value = act_fn(state, obs, step_keys[:, t + 2])
      obs, reward, done = task.step(np.asarray(action).reshape(-1))
      obs, reward, done = obs.reshape((seeds, n) + obs.shape[1:]), reward.reshape(seeds, n), done.reshape(seeds, n)
      episode_return, s, e = track(episode_return, reward, done)
      ended_sum, ended = ended_sum + s, ended + e
      steps.append(Transition(inputs, action, log_prob, value, _train_reward(c, reward), done))
    traj = jax.tree.map(lambda *xs: jnp.stack(xs, axis=1), *steps)  # [S, T, N, ...]
    state, metrics = update_fn(state, traj, value_fn(state, obs), k_update)
    metrics.update(episode_return_sum=ended_sum, episodes=ended)
    history.append(jax.device_get(metrics))
  return state.params, jax.tree.map(lambda *xs: np.stack(xs, axis=1), *history)
