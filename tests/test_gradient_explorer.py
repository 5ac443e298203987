"""The gradient explorer: an actor trained through the differentiable world learns a state-dependent
best action and beats random actions; the world's step is differentiable in the action and the
representation never is."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import tiny_generator
from palmup import apt
from palmup.env import EnvParams, LatentEnv, latent_transition
from palmup.explorer import action_stats
from palmup.gradient_explorer import GradientExplorer
from palmup.learner import Learner

GRADIENT = ml_collections.ConfigDict(dict(lr=3e-3, hidden=64, feature_dim=16, observe="latent", reference="population",
                                            center_actions=False))
APT = ml_collections.ConfigDict(dict(k=4, average=True, running_mean=False, clip=0.0))
PARAMS = EnvParams(ema=0.7, action_weight=0.5)


def _ring_world(explorer, blind: bool, steps: int = 300, envs: int = 64):
  """Trains the explorer's actor in a world whose frames are the 2-d latents themselves: 64 envs at
  N(0, I) states, the particle reward among the frames they reach. Moving every env straight out from
  the centre spreads them most, so the best action depends on the state: a = z / |z|. `blind`: the
  actor sees a constant instead of the state. -> (final state, test latents, their actions)."""
  state = explorer.init(jax.random.PRNGKey(0), 2, 2)

  @jax.jit
  def train_step(state, key):
    kz, kn = jax.random.split(key)
    z = jax.random.normal(kz, (envs, 2))
    noise = jax.random.normal(kn, (envs, 2))
    step = lambda a: (latent_transition(z, a, noise, PARAMS), None)
    observed = jnp.zeros_like(z) if blind else z
    return explorer.play(state, observed, step, lambda x: x)[3]

  for i in range(steps):
    state = train_step(state, jax.random.PRNGKey(i + 1))
  z = jax.random.normal(jax.random.PRNGKey(10_000), (envs, 2))
  return state, z, explorer.policy(state, jnp.zeros_like(z) if blind else z)


def _reached_rewards(z, actions, key) -> np.ndarray:
  """Mean particle reward (k = 4) among the frames reached from z by actions, per noise draw [32]."""
  noise = jax.random.normal(key, (32,) + z.shape)
  return np.asarray(jnp.mean(apt.particle_reward(latent_transition(z, actions, noise, PARAMS), 4), axis=-1))


def test_actor_learns_the_state_dependent_best_action_and_beats_random_actions():
  explorer = GradientExplorer(GRADIENT, APT, action_dim=2, batch_size=8)
  _, z, actions = _ring_world(explorer, blind=False)
  stats = action_stats(actions)
  outward = jnp.mean(jnp.sum(actions * z, -1) / (jnp.linalg.norm(actions, axis=-1) * jnp.linalg.norm(z, axis=-1)))
  assert float(outward) > 0.8  # the known best direction, per state
  assert float(stats["std"]) > 0.3 and float(stats["cosine"]) < 0.1  # healthy: spread, no shared direction
  uniform = jax.random.uniform(jax.random.PRNGKey(3), z.shape, minval=-1.0, maxval=1.0)
  key = jax.random.PRNGKey(4)
  gain = _reached_rewards(z, actions, key) - _reached_rewards(z, uniform, key)  # paired: the same noise draws
  assert gain.mean() > 5 * gain.std(ddof=1) / np.sqrt(gain.size)  # above random actions, t > 5


def test_an_actor_blind_to_the_state_reads_as_state_independent():
  """The same training with the state hidden from the actor: one action for every env, which the
  health statistics flag (the check above fails on it)."""
  explorer = GradientExplorer(GRADIENT, APT, action_dim=2, batch_size=8)
  _, _, actions = _ring_world(explorer, blind=True, steps=100)
  assert float(action_stats(actions)["std"]) < 1e-5 and float(action_stats(actions)["cosine"]) > 0.99


def test_batch_reference_is_the_remembered_replayed_batch():
  """gradient.reference = "batch": the reward is among the features `remember` kept, and the reached
  frames' gradient pushes them away from that batch."""
  batch = ml_collections.ConfigDict({**GRADIENT.to_dict(), "reference": "batch"})
  explorer = GradientExplorer(batch, APT, action_dim=2, batch_size=8)
  state = explorer.remember(explorer.init(jax.random.PRNGKey(0), 2, 2), jnp.zeros((8, 2)))
  z = jnp.full((4, 2), 0.1)
  step = lambda a: (latent_transition(z, a, jnp.zeros_like(z), PARAMS), None)
  _, reached, _, new, metrics = explorer.play(state, z, step, lambda x: x)
  expected = np.log1p(np.linalg.norm(np.asarray(reached), axis=-1))  # every batch point at 0: all k at |x|
  np.testing.assert_allclose(float(metrics["explorer_reward"]), expected.mean(), rtol=1e-5)
  assert int(new.updates) == 1 and not np.allclose(new.actor["params"]["Dense_2"]["kernel"],
                                                   state.actor["params"]["Dense_2"]["kernel"])


def test_world_step_is_differentiable_in_the_action_but_a_reset_frame_is_not():
  env = LatentEnv(*tiny_generator(), obs_size=8)
  params = EnvParams(ema=0.7, action_weight=0.5, episode_length=3)
  _, state = env.reset(jax.random.PRNGKey(0), params)
  action = jnp.full((env.latent_dim,), 0.3)
  key = jax.random.PRNGKey(1)
  images, *_ = env.step_images(key, state, action, params)
  obs, *_ = env.step(key, state, action, params)
  np.testing.assert_array_equal(obs, np.clip(np.round((np.asarray(images) + 1) * 127.5), 0, 255).astype(np.uint8))
  grad = lambda s: jax.grad(lambda a: jnp.sum(env.step_images(key, s, a, params)[0]))(action)
  assert float(jnp.abs(grad(state)).max()) > 0
  np.testing.assert_array_equal(grad(state.replace(t=jnp.asarray(2))), 0.0)  # this step truncates: a fresh episode


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_encode_passes_gradient_to_images_and_never_to_the_encoder(dtype):
  cfg = ml_collections.ConfigDict(dict(
      encoder=dict(name="conv", widths=(8, 16), features=16, conv_grad="auto", stem="cifar", width=8),
      dtype=dtype, head_hidden=16, head_out=8, temperature=0.5, lr=1e-3, weight_decay=0.0))
  learner = Learner(cfg, 3)
  params = learner.init(jax.random.PRNGKey(0), (8, 8, 1)).params
  images = jax.random.uniform(jax.random.PRNGKey(1), (4, 8, 8, 1), minval=-1, maxval=1)
  g_params, g_images = jax.grad(lambda p, x: jnp.sum(jnp.square(learner.encode(p, x))), argnums=(0, 1))(params, images)
  assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(g_params))
  assert float(jnp.abs(g_images).max()) > 0
  np.testing.assert_allclose(learner.encode(params, images), learner.features(params, images), rtol=1e-6)
