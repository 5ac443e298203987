"""The gradient explorer (explorer = "gradient"): an actor trained by the analytic gradient of APT's
particle reward through the world palmup knows exactly.

APT's critic has to learn what an action does to the next frame's novelty from sampled rewards, of
which the action decides a few percent (experiments/t4_controllability.py). Here nothing about that
is unknown: the next latent is `latent_transition(z, a, noise)`, its frame the frozen generator's
render, its features the learner's encoder (parameters detached: RL never trains the
representation), its reward APT's particle reward. All are differentiable, so the actor ascends

    J(theta) = mean_i r_i,   r_i = the particle reward of phi(G(T(z_i, pi_theta(o_i), noise_i), y_i))

by backpropagating through the reward, the encoder's input, the generator and the transition, one
step ahead. It does so on the step the envs really take: the envs step on the actor's actions with
their own fresh noise (the reparameterisation trick: the gradient is of the reward of this draw), and
the render of that step is the forward pass of the actor's update, so an update costs the backward
pass through generator and encoder and one encoder pass, not a simulation of its own. On-policy: no
replay, no critic, no seed phase. r_i is each reached frame's particle reward (palmup.apt.particle_reward
with apt.k, apt.average, apt.clip and, if apt.running_mean, URLB's running mean of kNN distances) among
  gradient.reference = "population": the envs' reached frames. Each env's gradient includes its effect
      on the others' neighbourhoods: J is the particle entropy of the step's frames, which herding lowers;
  gradient.reference = "batch": the features of the batch the learner replayed at the previous step
      (APT's reference, detached; its views: augmented unless learner.augment = "none"). Measured: the
      shared action that carries every env away from the batch maximises it, and the actor herds.

The actor is palmup.explorer.Actor (URLB's trunk and MLP, tanh mean; gradient.hidden,
gradient.feature_dim; with gradient.center_actions its pre-tanh output centred over the envs, so no
direction is shared by all) on what gradient.observe names, trained by Adam at gradient.lr. It acts with
its mean: the world's fresh noise is the only randomness. Its health is the loop's policy_*
statistics; `explorer_reward` is J.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from palmup import apt
from palmup.explorer import Actor


@flax.struct.dataclass
class GradientActorState:
  """actor / opt_state: the actor's parameters and Adam state; reward_mean: URLB's running mean of
  kNN distances; reference [B, D]: the last replayed batch's features (apt.reference = "batch")."""
  actor: dict
  opt_state: optax.OptState
  reward_mean: apt.RunningMean
  reference: jax.Array
  updates: jax.Array


@dataclasses.dataclass(frozen=True)
class GradientExplorer:
  """Pure init / policy / act / play. config: the `gradient` ConfigDict (the actor's network, lr,
  reference); apt_config: the `apt` one (the reward); action_dim: the env's latent size; batch_size:
  the replayed batch's (replay.batch_size)."""
  config: object
  apt_config: object
  action_dim: int
  batch_size: int

  @property
  def actor(self) -> Actor:
    c = self.config
    return Actor(self.action_dim, c.feature_dim, c.hidden, c.center_actions)

  @property
  def optimizer(self):
    return optax.adam(self.config.lr)

  def init(self, key, observed_size: int, feature_size: int) -> GradientActorState:
    actor = self.actor.init(key, jnp.zeros((1, observed_size)))
    return GradientActorState(actor, self.optimizer.init(actor), apt.RunningMean.init(),
                              jnp.zeros((self.batch_size, feature_size)), jnp.zeros((), jnp.int32))

  def policy(self, state: GradientActorState, observed) -> jax.Array:
    """The actor's actions [N, action_dim] in (-1, 1) for observed [N, O]."""
    return self.actor.apply(state.actor, observed)

  def act(self, state: GradientActorState, observed, key=None, step=None) -> jax.Array:
    """The actions it takes [N, action_dim]: the policy's (no noise, no seed phase; `play` acts so)."""
    return self.policy(state, observed)

  def reward(self, features, reward_mean: apt.RunningMean, reference):
    """(the configured particle reward [N] of reached frames' features [N, D], among themselves or
    among reference [B, D], the updated running mean)."""
    c = self.apt_config
    kwargs = dict(average=c.average, clip=c.clip, reference=reference)
    if c.running_mean:
      return apt.particle_reward(features, c.k, running_mean=reward_mean, **kwargs)
    return apt.particle_reward(features, c.k, **kwargs), reward_mean

  def play(self, state: GradientActorState, observed, step: Callable, encode: Callable):
    """Acts, steps the envs and takes one Adam step on -J, in one pass.

    observed [N, O]: what the actor sees of the envs' current frames; step(actions [N, d]) -> (images
    float [N, H, W, C] in [-1, 1], aux): the envs' step, differentiable in the actions (aux: what
    else it returns, e.g. the new env states); encode(images) -> features [N, D], differentiable in
    the images. -> (actions [N, d], images, aux, state, metrics)."""
    reference = state.reference if self.config.reference == "batch" else None

    def objective(actor_params):
      actions = self.actor.apply(actor_params, observed)
      images, aux = step(actions)
      reward, reward_mean = self.reward(encode(images), state.reward_mean, reference)
      return -jnp.mean(reward), (actions, jax.lax.stop_gradient(images), aux, reward_mean)

    (loss, (actions, images, aux, reward_mean)), grads = jax.value_and_grad(objective, has_aux=True)(state.actor)
    updates, opt_state = self.optimizer.update(grads, state.opt_state)
    new = state.replace(actor=optax.apply_updates(state.actor, updates), opt_state=opt_state, reward_mean=reward_mean,
                        updates=state.updates + 1)
    return actions, images, aux, new, {"explorer_reward": -loss, "actor_grad_norm": optax.tree.norm(grads)}

  def remember(self, state: GradientActorState, batch_features) -> GradientActorState:
    """The state with the replayed batch's features [B, D] kept as the next step's reference."""
    return state.replace(reference=jax.lax.stop_gradient(batch_features))
