"""The APT explorer: an actor-critic, DDPG (URLB's; TD3's tricks optional) or SAC, maximising the particle
reward `palmup.apt.particle_reward` of encoder features, for latent-sized continuous actions.

Inputs are what the caller lets the agent observe: encoder features it has already detached (the
learner's encoder; RL gradients never reach it), the env's Markov state, or both (agent.observe in
palmup.pretrain). The particle reward is always of encoder features. Actor and critic each have URLB's trunk (Dense(feature_dim), LayerNorm, tanh)
then an MLP; the critic has two Q heads and uses their minimum. The actor's mean is tanh-bounded;
noise N(0, std(step)^2) is added as URLB's TruncatedNormal does (std linear from std_start to
std_end over std_decay_steps):
  acting:          mean + noise, noise unclipped, the sum clamped to [-1, 1];
  actor / target:  mean + clip(noise, +-std_clip), clamped to [-1, 1] with a straight-through
                   gradient (`straight_through_clip`): a hard clip inside the actor loss has zero
                   gradient wherever the noisy action leaves [-1, 1], which makes saturation absorbing.
`act` is uniform on [-1, 1] for the first seed_steps loop steps, as URLB's seed frames are (the
agent still updates during them, off-policy, so the critic starts from varied actions).

Rewards and n-step returns come from a replayed sequence of n + 1 frames f_0..f_n. A frame's particle
reward r(f) is computed either among the replayed batch at update time (apt.reference = "batch",
URLB) or among all envs' frames of the step it was seen in, when it was stored (apt.reference =
"population": moving every env the same way earns nothing). The n-step reward R is
sum_{i<n} gamma^i r(f_{i+1}) (apt.nstep_reward = "sum") or, as URLB's APT agent computes it, r(f_0)
alone, one reward per sampled transition ("first", the configs' default: the update then encodes
only f_n beyond the learner's f_0). Target y = R + gamma^n min Q_target(f_n, a'), with a' from the actor (DDPG, URLB) or
the target actor (TD3). Episodes end by truncation only; a sequence that crosses a reset is masked out of the
critic loss (its bootstrap frame would belong to another episode).
TD3 (config.td3): target actor, actor and target updates every config.policy_delay steps.
config.standardize: actor and critic see the features standardised per dimension over the batch
(the envs when acting, the replayed batch when updating), i.e. how a frame differs from the others.
config.standardize_reward: the n-step rewards standardised over the replayed batch (zero mean, unit std),
so their scale no longer depends on the feature space's (against SAC's temperature and target entropy).
config.center_actions: the actor's pre-tanh output is centred over the same batch, so no action
direction is shared by all envs. Measured reason (T4): without it DDPG follows a critic gradient
dQ/da that is nearly the same for every state, and the policy herds every env one way.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from palmup import apt
from palmup.replay import same_episode


def straight_through_clip(x, low: float = -1.0, high: float = 1.0) -> jax.Array:
  """clip(x, low, high) in the forward pass, the identity's gradient in the backward pass."""
  return x + jax.lax.stop_gradient(jnp.clip(x, low, high) - x)


def tanh_log_det(u) -> jax.Array:
  """log(1 - tanh(u)^2), elementwise, as 2 (log 2 - u - softplus(-2u)): exact at any |u|, where
  log(1 - tanh(u)^2 + eps) saturates at log(eps) once tanh(u) rounds to 1 (|u| above about 9)."""
  return 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))


def action_stats(actions) -> dict[str, jax.Array]:
  """Collapse diagnostics of actions [B, A] taken in B envs at one step, in O(B A):
  std: across-env std per dimension, averaged over dimensions (a constant policy gives 0; U(-1, 1)
       gives 0.577); saturation: fraction of components with |a| > 0.99; cosine: mean pairwise
  cosine between different envs' actions (1 when every env gets the same direction, ~0 for U(-1, 1)),
  as (|sum_i u_i|^2 - sum_i |u_i|^2) / (B (B - 1)) of the unit vectors u_i (no B x B matrix)."""
  b = actions.shape[0]
  unit = actions / jnp.maximum(jnp.linalg.norm(actions, axis=-1, keepdims=True), 1e-8)
  pairs = jnp.sum(jnp.square(jnp.sum(unit, axis=0))) - jnp.sum(jnp.square(unit))
  return {"std": jnp.mean(jnp.std(actions, axis=0)), "saturation": jnp.mean(jnp.abs(actions) > 0.99),
          "cosine": pairs / float(max(b * (b - 1), 1))}  # a float: B (B - 1) overflows int32 past 46,341 envs


class _Trunk(nn.Module):
  feature_dim: int

  @nn.compact
  def __call__(self, h):
    return jnp.tanh(nn.LayerNorm()(nn.Dense(self.feature_dim)(h)))


def _actor_mean(h, action_dim: int, feature_dim: int, hidden: int, centered: bool):
  """Inside an actor's compact call: trunk, two ReLU layers and the pre-tanh mean [B, action_dim]
  (minus its batch mean when centered) -> (last hidden layer, mean)."""
  x = _Trunk(feature_dim)(h)
  x = nn.relu(nn.Dense(hidden)(x))
  x = nn.relu(nn.Dense(hidden)(x))
  mean = nn.Dense(action_dim)(x)
  return x, (mean - jnp.mean(mean, axis=0) if centered else mean)


class Actor(nn.Module):
  """features [B, D] -> deterministic action [B, action_dim] in (-1, 1). centered: the pre-tanh
  output minus its mean over the batch (no direction shared by every env)."""
  action_dim: int
  feature_dim: int = 50
  hidden: int = 1024
  centered: bool = False

  @nn.compact
  def __call__(self, h):
    return jnp.tanh(_actor_mean(h, self.action_dim, self.feature_dim, self.hidden, self.centered)[1])


class GaussianActor(Actor):
  """features [B, D] -> (pre-tanh mean [B, action_dim], log std [B, action_dim] in [-5, 2]): SAC's
  tanh-squashed Gaussian on Actor's network (centered as there)."""

  @nn.compact
  def __call__(self, h):
    x, mean = _actor_mean(h, self.action_dim, self.feature_dim, self.hidden, self.centered)
    return mean, jnp.clip(nn.Dense(self.action_dim)(x), -5.0, 2.0)


class Critic(nn.Module):
  """(features [B, D], action [B, A]) -> (Q1 [B], Q2 [B])."""
  feature_dim: int = 50
  hidden: int = 1024

  @nn.compact
  def __call__(self, h, action):
    x = jnp.concatenate([_Trunk(self.feature_dim)(h), action], axis=-1)

    def q(name):
      y = nn.relu(nn.Dense(self.hidden, name=f"{name}_0")(x))
      y = nn.relu(nn.Dense(self.hidden, name=f"{name}_1")(y))
      return nn.Dense(1, name=f"{name}_out")(y)[:, 0]

    return q("q1"), q("q2")


@flax.struct.dataclass
class AgentState:
  actor: dict
  critic: dict
  actor_target: dict
  critic_target: dict
  actor_opt: optax.OptState
  critic_opt: optax.OptState
  reward_mean: apt.RunningMean
  updates: jax.Array
  log_alpha: jax.Array  # SAC's entropy temperature (unused by DDPG)
  alpha_opt: optax.OptState


@dataclasses.dataclass(frozen=True)
class ActorCritic:
  """Pure init / act / update. config: the `agent` ConfigDict; apt_config: the `apt` one.
  config.algo = "sac" swaps the deterministic actor and its noise for SAC's squashed Gaussian with
  a learned temperature (target entropy -action_dim, start config.init_temperature), the APT
  paper's own backbone: with a critic that carries no signal about the action, it stays spread
  instead of following that critic's gradient."""
  config: object
  apt_config: object
  action_dim: int

  @property
  def sac(self) -> bool:
    return self.config.algo == "sac"

  @property
  def actor(self) -> Actor | GaussianActor:
    module = GaussianActor if self.sac else Actor
    return module(self.action_dim, self.config.feature_dim, self.config.hidden, self.config.center_actions)

  @property
  def critic(self) -> Critic:
    return Critic(self.config.feature_dim, self.config.hidden)

  @property
  def optimizer(self):
    return optax.adam(self.config.lr)

  def init(self, key, feature_size: int) -> AgentState:
    ka, kc = jax.random.split(key)
    h, a = jnp.zeros((1, feature_size)), jnp.zeros((1, self.action_dim))
    actor, critic = self.actor.init(ka, h), self.critic.init(kc, h, a)
    log_alpha = jnp.log(jnp.asarray(self.config.init_temperature, jnp.float32))
    return AgentState(actor, critic, actor, critic, self.optimizer.init(actor),
                      self.optimizer.init(critic), apt.RunningMean.init(), jnp.zeros((), jnp.int32),
                      log_alpha, self.optimizer.init(log_alpha))

  def std(self, step) -> jax.Array:
    c = self.config
    frac = jnp.clip(step / max(c.std_decay_steps, 1), 0.0, 1.0)
    return c.std_start + frac * (c.std_end - c.std_start)

  def _noisy(self, key, mean, std):
    """mean + clip(noise, +-std_clip), clamped to [-1, 1] with a straight-through gradient."""
    noise = jnp.clip(std * jax.random.normal(key, mean.shape), -self.config.std_clip, self.config.std_clip)
    return straight_through_clip(mean + noise)

  def inputs(self, features) -> jax.Array:
    """What actor and critic see of features [B, D]: as they are, or standardised over the batch:
    (f - mean) / sqrt(var + 1e-4 mean(var)), so that a dimension constant across the batch (var 0)
    stays near 0 instead of its rounding noise being scaled up."""
    if not self.config.standardize:
      return features
    mean, var = jnp.mean(features, 0), jnp.var(features, 0)
    return (features - mean) * jax.lax.rsqrt(var + 1e-4 * jnp.mean(var) + 1e-12)

  def policy(self, state: AgentState, features) -> jax.Array:
    """The actor's noiseless actions [B, action_dim] for features [B, D] (SAC: tanh of the mean)."""
    out = self.actor.apply(state.actor, self.inputs(features))
    return jnp.tanh(out[0]) if self.sac else out

  def sample(self, params, h, key, std):
    """(actions [B, A] in [-1, 1], log-probabilities [B]) at actor inputs h: DDPG's mean plus
    clipped noise, straight-through clamped (log-probability 0), or a squashed-Gaussian sample."""
    if not self.sac:
      return self._noisy(key, self.actor.apply(params, h), std), jnp.zeros(h.shape[0])
    mean, log_std = self.actor.apply(params, h)
    eps = jax.random.normal(key, mean.shape)
    u = mean + jnp.exp(log_std) * eps
    log_prob = -0.5 * jnp.square(eps) - log_std - 0.5 * jnp.log(2 * jnp.pi) - tanh_log_det(u)
    return jnp.tanh(u), jnp.sum(log_prob, axis=-1)

  def act(self, state: AgentState, features, key, step) -> jax.Array:
    """Exploration actions [B, action_dim] for features [B, D]: uniform on [-1, 1] for the first
    config.seed_steps steps, then the actor's mean plus unclipped noise, clamped to [-1, 1]."""
    k_noise, k_seed = jax.random.split(key)
    if self.sac:
      policy = self.sample(state.actor, self.inputs(features), k_noise, 0.0)[0]
    else:
      mean = self.policy(state, features)
      policy = jnp.clip(mean + self.std(step) * jax.random.normal(k_noise, mean.shape), -1.0, 1.0)
    uniform = jax.random.uniform(k_seed, policy.shape, minval=-1.0, maxval=1.0)
    return jnp.where(step < self.config.seed_steps, uniform, policy)

  def reward(self, features, reward_mean: apt.RunningMean):
    """The configured particle reward [..., B] of features [..., B, D], each batch among itself (with
    apt.scope = G > 0: each group of G consecutive points among itself, a scope that does not grow
    with the mesh), and the running mean (updated once when apt.running_mean; the population reward
    passes a fresh one: its batch mean)."""
    c = self.apt_config
    kwargs = dict(average=c.average, clip=c.clip)
    features = jax.lax.stop_gradient(features)  # the representation is detached from RL
    shape = features.shape[:-1]
    if c.scope:  # groups of apt.scope consecutive points, each among its own group
      features = features.reshape(shape[:-1] + (shape[-1] // c.scope, c.scope, features.shape[-1]))
    if c.running_mean:
      reward, reward_mean = apt.particle_reward(features, c.k, running_mean=reward_mean, **kwargs)
    else:
      reward = apt.particle_reward(features, c.k, **kwargs)
    return reward.reshape(shape), reward_mean

  def rewarded_frames(self, n: int) -> tuple[int, ...]:
    """The frames of a replayed sequence whose particle rewards make its n-step reward:
    1..n (apt.nstep_reward = "sum") or 0 (apt.nstep_reward = "first", URLB's agent)."""
    return (0,) if self.apt_config.nstep_reward == "first" else tuple(range(1, n + 1))

  def frames_read(self, n: int) -> tuple[int, ...]:
    """The frames of a replayed sequence whose features the update reads: 0 and n (the critic's
    and the bootstrap's inputs) and, for the batch reward, the rewarded frames."""
    rewarded = self.rewarded_frames(n) if self.apt_config.reference == "batch" else ()
    return tuple(sorted({0, n, *rewarded}))

  def nstep_rewards(self, features, novelty, reward_mean: apt.RunningMean):
    """(rewards [B, m] of the rewarded frames, in order, and the updated running mean), from
    features [B, n+1, D] among the batch (apt.reference = "batch") or the stored novelty [B, n+1]
    ("population"); the running mean moves once per update, over every rewarded frame's distances.
    The n-step reward is sum_i gamma^i rewards[:, i]."""
    frames = jnp.asarray(self.rewarded_frames(features.shape[1] - 1))
    if self.apt_config.reference == "population":
      return novelty[:, frames], reward_mean
    rewards, reward_mean = self.reward(jnp.swapaxes(features[:, frames], 0, 1), reward_mean)  # [m, B]: one update
    return rewards.T, reward_mean

  def novelty(self, features) -> jax.Array:
    """features [num_envs, D] of all envs' frames of one step -> the population reward [num_envs]
    stored with them (apt.reference = "population"); 0 for the batch reward."""
    if self.apt_config.reference != "population":
      return jnp.zeros(features.shape[0])
    return self.reward(features, apt.RunningMean.init())[0]

  def critic_diagnostics(self, critic, h, q, target, valid, key, actions: int = 8) -> dict[str, jax.Array]:
    """Whether the critic separates actions, at critic inputs h [B, O] with its Q1 [B] of the taken
    actions and their targets [B] (valid [B]: the sequences the loss counts):
      q_spread_actions  std of Q1 over `actions` uniform actions at one state, averaged over states:
                        what the actor can climb (0: every action looks alike);
      q_spread_states   std over states of Q1 averaged over those actions: what the state decides;
      td_error          root mean square of Q1 - target; target_std: the targets' std over the batch
                        (td_error near target_std: the critic explains none of the target's variance)."""
    a = jax.random.uniform(jax.random.fold_in(key, 7), (actions,) + (h.shape[0], self.action_dim), minval=-1.0,
                           maxval=1.0)
    q_any = jax.vmap(lambda act: self.critic.apply(critic, h, act)[0])(a)  # [actions, B]
    count = jnp.maximum(jnp.sum(valid), 1.0)
    mean = lambda x: jnp.sum(valid * x) / count
    return {"q_spread_actions": jnp.mean(jnp.std(q_any, axis=0)), "q_spread_states": jnp.std(jnp.mean(q_any, axis=0)),
            "td_error": jnp.sqrt(mean(jnp.square(q - target))),
            "target_std": jnp.sqrt(mean(jnp.square(target - mean(target))))}

  def update(self, state: AgentState, features, action, first, novelty, key, step, observed=None):
    """One actor-critic update from detached features [B, n+1, D] of replayed frames (what the batch
    reward reads), the actions [B, A] taken at frame 0, first [B, n+1], the stored novelty [B, n+1]
    and observed [B, 2, O]: what actor and critic observe of frames 0 and n (default: their features)."""
    c = self.config
    n = features.shape[1] - 1
    k_next, k_pi = jax.random.split(key)
    reward, reward_mean = self.nstep_rewards(features, novelty, state.reward_mean)
    if c.standardize_reward:  # zero mean, unit std over the batch: the reward's scale against SAC's temperature
      reward = (reward - jnp.mean(reward)) / (jnp.std(reward) + 1e-8)
    ret = jnp.sum(reward * c.discount ** jnp.arange(reward.shape[1]), axis=1)
    std = self.std(step)
    observed = jnp.stack([features[:, 0], features[:, n]], axis=1) if observed is None else observed
    h0, hn = self.inputs(observed[:, 0]), self.inputs(observed[:, 1])
    alpha = jnp.exp(state.log_alpha) if self.sac else 0.0
    next_actor = state.actor_target if c.td3 else state.actor
    next_action, next_log_prob = self.sample(next_actor, hn, k_next, std)
    q1_next, q2_next = self.critic.apply(state.critic_target, hn, next_action)
    soft_value = jnp.minimum(q1_next, q2_next) - alpha * next_log_prob
    target = jax.lax.stop_gradient(ret + c.discount ** n * soft_value)
    valid = same_episode(first, n).astype(jnp.float32)

    def critic_loss(params):
      q1, q2 = self.critic.apply(params, h0, action)
      err = jnp.square(q1 - target) + jnp.square(q2 - target)
      return jnp.sum(valid * err) / jnp.maximum(jnp.sum(valid), 1.0), q1

    (c_loss, q1), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic)
    c_updates, critic_opt = self.optimizer.update(c_grads, state.critic_opt)
    critic = optax.apply_updates(state.critic, c_updates)

    def actor_loss(params):
      sample, log_prob = self.sample(params, h0, k_pi, std)
      q1, q2 = self.critic.apply(critic, h0, sample)
      return jnp.mean(alpha * log_prob - jnp.minimum(q1, q2)), log_prob

    (a_loss, log_prob), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor)
    # SAC's temperature: raised when the policy's entropy falls below -action_dim, lowered above.
    alpha_loss = lambda la: -la * jnp.mean(jax.lax.stop_gradient(log_prob) - self.action_dim)
    log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
    if self.sac:
      al_updates, alpha_opt = self.optimizer.update(jax.grad(alpha_loss)(log_alpha), alpha_opt)
      log_alpha = optax.apply_updates(log_alpha, al_updates)
    policy = self.policy(state, observed[:, 0])
    dq_da = jax.grad(lambda a: jnp.sum(jnp.minimum(*self.critic.apply(critic, h0, a))))(policy)
    a_updates, actor_opt = self.optimizer.update(a_grads, state.actor_opt)
    actor = optax.apply_updates(state.actor, a_updates)
    delay = c.policy_delay if c.td3 else 1
    act_now = state.updates % delay == 0
    when_acting = lambda new, old: jax.tree.map(lambda a, b: jnp.where(act_now, a, b), new, old)
    actor, actor_opt = when_acting(actor, state.actor), when_acting(actor_opt, state.actor_opt)
    polyak = lambda target, online: optax.incremental_update(online, target, c.tau)
    critic_target = when_acting(polyak(state.critic_target, critic), state.critic_target)
    actor_target = when_acting(polyak(state.actor_target, actor), state.actor_target)
    new = AgentState(actor, critic, actor_target, critic_target, actor_opt, critic_opt, reward_mean,
                     state.updates + 1, log_alpha, alpha_opt)
    metrics = {"critic_loss": c_loss, "actor_loss": a_loss, "q": jnp.mean(q1), "q_target": jnp.mean(target),
               **self.critic_diagnostics(state.critic, h0, q1, target, valid, key),
               "dq_da_norm": jnp.mean(jnp.linalg.norm(dq_da, axis=-1)),
               "dq_da_cosine": action_stats(dq_da)["cosine"], "intrinsic_reward": jnp.mean(reward),
               "intrinsic_reward_std": jnp.std(reward), "exploration_std": std}
    if self.sac:
      metrics.update(alpha=jnp.exp(log_alpha), policy_entropy=-jnp.mean(log_prob))
    return new, metrics
