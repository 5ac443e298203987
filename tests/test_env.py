"""The latent environment: dynamics formula, persistence, auto-reset, vmap, determinism."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from palmup.env import EnvParams, LatentEnv, latent_transition


@pytest.fixture(scope="module")
def env(tiny_gen):
  gen, params = tiny_gen
  return LatentEnv(gen, params, obs_size=12)


def test_transition_formula_standard_and_variance_preserving():
  z, a, n = jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0]), jnp.array([0.2, -1.0])
  p = EnvParams(ema=0.8, action_weight=0.25, action_scale=2.0, noise_scale=0.5)
  u = 0.25 * 2.0 * np.array([0.5, 1.0]) + 0.75 * 0.5 * np.array([0.2, -1.0])  # action clipped to 1
  np.testing.assert_allclose(latent_transition(z, a, n, p), 0.8 * np.array([1.0, -2.0]) + 0.2 * u, rtol=1e-6)
  p_vp = p.replace(variance_preserving=True)
  np.testing.assert_allclose(latent_transition(z, a, n, p_vp),
                             0.8 * np.array([1.0, -2.0]) + np.sqrt(1 - 0.64) * u, rtol=1e-6)


def test_transition_bounds_without_noise():
  """With zero noise and |a| <= 1 the standard EMA keeps |z| within max(|z0|, w * scale)."""
  p = EnvParams(ema=0.7, action_weight=0.6, action_scale=1.5)
  z = jnp.full((4,), 3.0)
  for i in range(50):
    a = jax.random.uniform(jax.random.PRNGKey(i), (4,), minval=-5, maxval=5)
    z = latent_transition(z, a, jnp.zeros(4), p)
    assert np.all(np.abs(z) <= 3.0 + 1e-6)
  assert np.all(np.abs(z) <= 0.6 * 1.5 + 1e-3)  # the initial 3.0 has decayed by 0.7**50


@pytest.mark.parametrize("vp", [False, True])
def test_stationary_variance_with_zero_action(vp):
  """Var_inf = g^2 s^2 / (1 - ema^2) with g the input gain and s = (1 - w) * noise_scale."""
  p = EnvParams(ema=0.9, action_weight=0.3, noise_scale=2.0, variance_preserving=vp)
  step = jax.jit(lambda z, k: latent_transition(z, jnp.zeros_like(z), jax.random.normal(k, z.shape), p))
  z = jnp.zeros((20000,))
  for k in jax.random.split(jax.random.PRNGKey(0), 200):
    z = step(z, k)
  gain = np.sqrt(1 - 0.81) if vp else 0.1
  expected = gain ** 2 * (0.7 * 2.0) ** 2 / (1 - 0.81)
  assert abs(float(jnp.var(z)) / expected - 1) < 0.05
  if vp:  # variance preserving: stationary std is exactly the input's
    assert abs(float(jnp.std(z)) - 1.4) < 0.05


def _rollout(env, params, num_envs, steps, key, action_fn=None):
  keys = jax.random.split(key, num_envs)
  obs, state = jax.vmap(env.reset, (0, None))(keys, params)

  def body(carry, k):
    state = carry
    actions = jnp.zeros((num_envs, env.latent_dim)) if action_fn is None else action_fn(k, num_envs)
    out = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(k, num_envs), state, actions, params)
    return out[1], (out[0], out[1], out[4], out[5])

  _, traj = jax.lax.scan(body, state, jax.random.split(key, steps))
  return obs, state, traj


def test_reset_and_step_shapes(env):
  params = EnvParams(episode_length=5)
  obs, state = env.reset(jax.random.PRNGKey(0), params)
  assert obs.shape == (12, 12, 1) and obs.dtype == jnp.uint8
  assert state.z.shape == (env.latent_dim,) and int(state.t) == 0
  out = env.step(jax.random.PRNGKey(1), state, jnp.zeros(env.latent_dim), params)
  obs2, state2, reward, terminated, truncated, info = out
  assert obs2.shape == obs.shape and float(reward) == 0.0 and not bool(terminated) and not bool(truncated)
  assert int(info["t"]) == 1 and int(info["episode"]) == 0


def test_class_held_within_episodes_and_auto_reset(env):
  params = EnvParams(episode_length=4)
  _, state0, (obs, states, truncated, info) = jax.jit(
      lambda k: _rollout(env, params, num_envs=16, steps=12, key=k))(jax.random.PRNGKey(3))
  t, ep, labels = np.asarray(info["t"]), np.asarray(info["episode"]), np.asarray(info["label"])
  trunc = np.asarray(truncated)
  # t counts 1, 2, 3, then the 4th step truncates and returns the new episode's first obs (t = 0).
  np.testing.assert_array_equal(t[:, 0], [1, 2, 3, 0] * 3)
  np.testing.assert_array_equal(trunc[:, 0], [False, False, False, True] * 3)
  np.testing.assert_array_equal(ep[:, 0], [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3])
  for e in range(1, 3):  # the label is constant within each full episode
    in_ep = ep == e
    for j in range(16):
      assert len(set(labels[in_ep[:, j], j])) == 1
  np.testing.assert_array_equal(labels[:3], np.broadcast_to(np.asarray(state0.label), (3, 16)))
  # across 16 envs x 4 episodes the uniform class draw hits all 3 classes
  assert set(np.unique(labels)) == {0, 1, 2}


@pytest.mark.slow  # about 10 s: env.resample_class_each_step, not the default; `make test-slow`
def test_resample_class_each_step_changes_labels(env):
  params = EnvParams(episode_length=100, resample_class_each_step=True)
  _, _, (_, _, _, info) = _rollout(env, params, num_envs=8, steps=10, key=jax.random.PRNGKey(0))
  labels = np.asarray(info["label"])
  assert np.mean(labels[1:] != labels[:-1]) > 0.4  # 2/3 expected for 3 classes


def test_observation_is_decode_of_state(env):
  params = EnvParams()
  _, state = env.reset(jax.random.PRNGKey(0), params)
  obs, state, *_ = env.step(jax.random.PRNGKey(1), state, jnp.ones(env.latent_dim), params)
  np.testing.assert_array_equal(obs, env.decode(state.z, state.label))


def test_step_decodes_once(env, monkeypatch):
  """Auto-reset must not render a second image per step."""
  calls = []
  gen = env.generator
  counting = type(gen)(gen.kind, gen.module, gen.latent_dim, gen.num_classes, gen.image_shape)
  object.__setattr__(counting, "apply", lambda p, z, y: calls.append(z.shape) or gen.apply(p, z, y))
  env2 = LatentEnv(counting, env.generator_params, obs_size=12)
  _, state = env2.reset(jax.random.PRNGKey(0), EnvParams())
  calls.clear()
  jax.make_jaxpr(env2.step)(jax.random.PRNGKey(1), state, jnp.zeros(env.latent_dim), EnvParams())
  assert len(calls) == 1


def test_256_vmapped_envs_each_equal_that_env_stepped_alone(env):
  """vmap is only batching: env i of 256 vmapped envs (through an episode end, with its own keys and
  actions) sees exactly the latents, labels and frames it sees when reset and stepped alone."""
  params = EnvParams(episode_length=3)
  actions = lambda k, n: jax.random.uniform(k, (n, env.latent_dim), minval=-1)
  key = jax.random.PRNGKey(7)
  _, _, (obs, states, truncated, _) = jax.jit(lambda k: _rollout(env, params, 256, 5, k, actions))(key)
  assert obs.shape == (5, 256, 12, 12, 1) and bool(truncated[2].all())  # every episode ended at step 3
  assert len({np.asarray(o).tobytes() for o in obs[-1]}) > 200  # envs differ from each other
  step_keys, step = jax.random.split(key, 5), jax.jit(env.step)
  for i in (0, 77, 255):
    _, state = env.reset(jax.random.split(key, 256)[i], params)
    for t in range(5):
      action = actions(step_keys[t], 256)[i]
      o, state, *_ = step(jax.random.split(step_keys[t], 256)[i], state, action, params)
      np.testing.assert_array_equal(o, obs[t, i])
      np.testing.assert_allclose(state.z, states.z[t, i], rtol=1e-6, atol=1e-6)
      assert int(state.label) == int(states.label[t, i]) and int(state.t) == int(states.t[t, i])


def test_vmap_over_env_params(env):
  """A sweep: one jitted call over 4 ema values matches the closed-form latent spread after t steps,
  Var_t = ema^(2t) + (1 - ema)^2 s^2 (1 - ema^(2t)) / (1 - ema^2), s = (1 - w) noise_scale."""
  emas = np.array([0.0, 0.5, 0.9, 0.99])
  params = EnvParams(episode_length=1000).replace(ema=jnp.asarray(emas))
  axes = jax.tree.map(lambda _: None, EnvParams()).replace(ema=0)

  def spread(p):
    _, _, (_, states, _, _) = _rollout(env, p, 64, 30, jax.random.PRNGKey(0))
    return jnp.std(states.z[-1])

  stds = np.asarray(jax.jit(jax.vmap(spread, in_axes=(axes,)))(params))
  expected = np.sqrt(emas ** 60 + (1 - emas) ** 2 * 0.25 * (1 - emas ** 60) / (1 - emas ** 2))
  np.testing.assert_allclose(stds, expected, rtol=0.1)
