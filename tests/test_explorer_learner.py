"""The APT explorer (DDPG/TD3/SAC on particle rewards), the learner's views and probe, and the coverage
statistic."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.stats

from palmup import apt
from palmup.explorer import ActorCritic, action_stats, straight_through_clip, tanh_log_det
from palmup.learner import Learner, contrastive_views

AGENT = dict(lr=1e-3, hidden=32, feature_dim=8, discount=0.9, tau=0.05, nstep=3, std_start=0.5,
             std_end=0.1, std_decay_steps=100, std_clip=0.3, td3=False, policy_delay=2, seed_steps=0,
             standardize=False, center_actions=False, algo="ddpg", init_temperature=0.1,
             standardize_reward=False)


NO_NOVELTY = jnp.zeros((32, 4))  # the stored population reward, unused by the batch reward


def _agent(running_mean=False, reference="batch", nstep_reward="sum", scope=0, **overrides):
  cfg = ml_collections.ConfigDict({**AGENT, **overrides})
  return ActorCritic(cfg, ml_collections.ConfigDict(dict(k=4, average=True, running_mean=running_mean, clip=0.0,
                                                  reference=reference, nstep_reward=nstep_reward, scope=scope)), 3)


def _batch(key, b=32, n=3, d=6):
  kf, ka = jax.random.split(key)
  return (jax.random.normal(kf, (b, n + 1, d)), jax.random.uniform(ka, (b, 3), minval=-1, maxval=1),
          jnp.zeros((b, n + 1), bool))


def test_rewards_are_particle_rewards_of_frames_1_to_n_under_one_running_mean_update():
  """Each of frames 1..n among the batch's same frame; the running mean moves once per update, with
  the k nearest distances of all n frames, and normalises all of them (not n updates, one a frame)."""
  features, _, _ = _batch(jax.random.PRNGKey(0))
  agent = _agent(running_mean=True)
  rewards, mean = agent.nstep_rewards(features, NO_NOVELTY, apt.RunningMean.init())
  f = np.asarray(features, np.float64)[:, 1:].transpose(1, 0, 2)  # [3 frames, 32, 6]
  knn = np.sort(np.sqrt(((f[:, :, None] - f[:, None]) ** 2).sum(-1)), -1)[:, :, :4]  # [3, 32, 4]
  np.testing.assert_allclose(float(mean.count), 1e-4 + knn.size, rtol=1e-6)
  np.testing.assert_allclose(float(mean.mean), knn.sum() / (1e-4 + knn.size), rtol=1e-5)
  np.testing.assert_allclose(rewards, np.log1p((knn / float(mean.mean)).mean(-1)).T, rtol=1e-4, atol=1e-6)
  assert rewards.shape == (32, 3) and agent.frames_read(3) == (0, 1, 2, 3)


def test_first_nstep_reward_is_urlbs_one_reward_of_frame_0():
  """URLB's APT agent: one particle reward per sampled transition, of its first frame; the update
  then reads frames 0 and n only, whichever the reference."""
  features, _, _ = _batch(jax.random.PRNGKey(0))
  novelty = jax.random.uniform(jax.random.PRNGKey(1), (32, 4))
  agent = _agent(running_mean=True, nstep_reward="first")
  rewards, mean = agent.nstep_rewards(features, novelty, apt.RunningMean.init())
  expected, m = apt.particle_reward(features[:, 0], 4, running_mean=apt.RunningMean.init(), clip=0.0)
  np.testing.assert_allclose(rewards[:, 0], expected, rtol=1e-6)
  np.testing.assert_allclose(mean.mean, m.mean, rtol=1e-6)
  assert rewards.shape == (32, 1) and agent.frames_read(3) == (0, 3)
  stored = _agent(reference="population", nstep_reward="first")
  np.testing.assert_array_equal(stored.nstep_rewards(features, novelty, m)[0], novelty[:, :1])
  np.testing.assert_array_equal(_agent(reference="population").nstep_rewards(features, novelty, m)[0], novelty[:, 1:])
  assert stored.frames_read(3) == (0, 3) == _agent(reference="population").frames_read(3)


def test_exploration_std_follows_its_linear_schedule():
  agent = _agent()
  np.testing.assert_allclose([agent.std(s) for s in (0, 50, 100, 1000)], [0.5, 0.3, 0.1, 0.1], rtol=1e-6)
  state = agent.init(jax.random.PRNGKey(0), 6)
  mean = agent.actor.apply(state.actor, jnp.zeros((1, 6)))
  for step, std in ((0, 0.5), (100, 0.1)):
    a = agent.act(state, jnp.zeros((4000, 6)), jax.random.PRNGKey(1), step)
    np.testing.assert_allclose(np.std(a - mean), std, rtol=0.1)


def test_acting_noise_is_unclipped_as_urlbs():
  agent = _agent(std_start=0.5, std_end=0.5)
  state = agent.init(jax.random.PRNGKey(0), 6)
  a = agent.act(state, jnp.zeros((4000, 6)), jax.random.PRNGKey(1), 0)
  offset = np.asarray(a - agent.actor.apply(state.actor, jnp.zeros((1, 6))))
  assert np.abs(offset).max() > 0.6 and np.abs(a).max() <= 1.0  # noise beyond std_clip=0.3 reaches the env
  np.testing.assert_allclose(offset.std(), 0.5, atol=0.03)  # the actor's mean is ~0 at init: few clamped


def test_straight_through_clip_clamps_forward_and_passes_gradient_beyond_the_bounds():
  x = jnp.array([-3.0, -0.5, 0.2, 1.7])
  np.testing.assert_array_equal(straight_through_clip(x), jnp.clip(x, -1, 1))
  np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(3.0 * straight_through_clip(v)))(x), [3.0] * 4)
  # In the actor loss: an actor whose mean is saturated still gets a gradient (a hard clip gives 0).
  agent = _agent(std_start=0.3, std_end=0.3)
  mean = jnp.full((64, 3), 0.999)
  grad = jax.grad(lambda m: jnp.sum(agent._noisy(jax.random.PRNGKey(0), m, 0.3)))(mean)
  hard = jax.grad(lambda m: jnp.sum(jnp.clip(m + 0.3 * jax.random.normal(jax.random.PRNGKey(0), m.shape), -1, 1)))(mean)
  assert float(jnp.min(grad)) == 1.0 and float(jnp.mean(hard == 0)) > 0.4


def test_seed_phase_acts_uniformly_whatever_the_actor():
  agent = _agent(seed_steps=10, std_start=0.0, std_end=0.0)
  state = agent.init(jax.random.PRNGKey(0), 6)
  collapsed = jax.tree.map(jnp.zeros_like, state.actor)
  collapsed["params"]["Dense_2"]["bias"] = jnp.full((3,), 5.0)  # tanh(5): every env, every feature
  state = state.replace(actor=collapsed)
  features = jax.random.normal(jax.random.PRNGKey(1), (4000, 6))
  seed, after = (agent.act(state, features, jax.random.PRNGKey(2), step) for step in (9, 10))
  np.testing.assert_allclose(seed.mean(0), 0.0, atol=0.05)
  np.testing.assert_allclose(seed.std(0), 1 / np.sqrt(3), atol=0.02)  # U(-1, 1)
  assert float(seed.min()) >= -1 and float(seed.max()) <= 1
  np.testing.assert_allclose(after, np.tanh(5.0), rtol=1e-6)  # then the (collapsed) actor acts


def test_action_stats_tell_a_collapsed_policy_from_a_spread_one():
  same = jnp.tile(jnp.array([[0.999, -1.0, 0.995, 1.0]]), (64, 1))
  uniform = jax.random.uniform(jax.random.PRNGKey(0), (64, 4), minval=-1, maxval=1)
  collapsed, spread = action_stats(same), action_stats(uniform)
  assert float(collapsed["std"]) < 1e-6 and float(collapsed["saturation"]) == 1.0
  np.testing.assert_allclose(collapsed["cosine"], 1.0, rtol=1e-5)
  assert 0.5 < float(spread["std"]) < 0.65 and float(spread["saturation"]) < 0.02
  assert abs(float(spread["cosine"])) < 0.1
  # the O(B A) cosine is the mean off-diagonal entry of the B x B cosine matrix
  mixed = jnp.concatenate([uniform[:32], same[:32]]) * jnp.linspace(0.1, 3.0, 64)[:, None]
  unit = mixed / jnp.linalg.norm(mixed, axis=-1, keepdims=True)
  gram = np.asarray(unit @ unit.T, np.float64)
  np.testing.assert_allclose(action_stats(mixed)["cosine"], (gram.sum() - np.trace(gram)) / (64 * 63), rtol=1e-5)


@pytest.mark.slow  # about 15 s: apt.reference=population, not the default; `make test-slow`
def test_population_reward_is_the_stored_novelty_of_frames_1_to_n():
  agent = _agent(reference="population")
  features, action, first = _batch(jax.random.PRNGKey(3))
  np.testing.assert_allclose(agent.novelty(features[:, 0]), apt.particle_reward(features[:, 0], 4), rtol=1e-6)
  novelty = jax.random.uniform(jax.random.PRNGKey(4), (32, 4))
  _, m = agent.update(agent.init(jax.random.PRNGKey(5), 6), features, action, first, novelty,
                      jax.random.PRNGKey(6), 0)
  np.testing.assert_allclose(m["intrinsic_reward"], novelty[:, 1:].mean(), rtol=1e-6)
  assert float(jnp.max(jnp.abs(_agent().novelty(features[:, 0])))) == 0.0  # batch reward: nothing stored


def test_standardized_inputs_ignore_what_all_envs_share():
  agent = _agent(standardize=True)
  state = agent.init(jax.random.PRNGKey(0), 6)
  features = jax.random.normal(jax.random.PRNGKey(1), (16, 6))
  shifted = 10.0 + 3.0 * features  # a common offset and scale: the same differences between envs
  np.testing.assert_allclose(agent.policy(state, shifted), agent.policy(state, features), atol=1e-5)
  assert float(jnp.std(agent.policy(state, features), axis=0).mean()) > 0.01


def test_standardizing_a_dimension_constant_across_the_batch_keeps_it_near_zero():
  """A feature every env shares up to float rounding has variance ~0: dividing by std + 1e-6 blew
  its rounding noise up to order 1; the inputs now stay near 0 there, and unit-variance elsewhere."""
  agent = _agent(standardize=True)
  features = jax.random.normal(jax.random.PRNGKey(1), (64, 6))
  features = features.at[:, 0].set(5.0 + 1e-6 * features[:, 0])  # constant up to rounding-size noise
  inputs = np.asarray(agent.inputs(features))
  assert np.abs(inputs[:, 0]).max() < 1e-3
  np.testing.assert_allclose(inputs[:, 1:].std(0), 1.0, rtol=1e-3)


def test_tanh_log_det_is_exact_where_tanh_rounds_to_one():
  u = np.linspace(-15, 15, 61)
  exact = 2 * (np.log(2) - np.abs(u) - np.log1p(np.exp(-2 * np.abs(u))))  # log(1 - tanh(u)^2), float64
  np.testing.assert_allclose(tanh_log_det(jnp.asarray(u, jnp.float32)), exact, rtol=1e-5, atol=1e-5)
  assert float(tanh_log_det(jnp.float32(12.0))) < -22  # log(1 - tanh^2 + 1e-6) stops at log(1e-6) = -13.8


def test_critic_target_is_reward_plus_discounted_min_target_q_and_targets_move_by_tau():
  """y = R + gamma^n (min(Q1', Q2')(f_n, a') - alpha log pi(a' | f_n)), R = sum_i gamma^i r_i, with the
  target critic, a' from the online actor (DDPG: noisy, here std 0; SAC: sampled with its log-prob);
  after the update each target parameter is tau x online + (1 - tau) x target."""
  features, action, first = _batch(jax.random.PRNGKey(6))
  for algo in ("ddpg", "sac"):
    agent = _agent(algo=algo, std_start=0.0, std_end=0.0)
    state = agent.init(jax.random.PRNGKey(7), 6)
    state = state.replace(critic_target=jax.tree.map(lambda x: x + 0.1, state.critic))  # targets differ
    key = jax.random.PRNGKey(8)
    new, m = agent.update(state, features, action, first, NO_NOVELTY, key, 0)
    rewards, _ = agent.nstep_rewards(features, NO_NOVELTY, state.reward_mean)
    ret = (np.asarray(rewards, np.float64) * 0.9 ** np.arange(3)).sum(1)
    hn = features[:, 3]
    next_action, log_prob = agent.sample(state.actor, hn, jax.random.split(key)[0], 0.0)
    q1, q2 = agent.critic.apply(state.critic_target, hn, next_action)
    alpha = float(jnp.exp(state.log_alpha)) if algo == "sac" else 0.0
    soft = np.minimum(np.asarray(q1, np.float64), np.asarray(q2, np.float64)) - alpha * np.asarray(log_prob)
    np.testing.assert_allclose(float(m["q_target"]), np.mean(ret + 0.9 ** 3 * soft), rtol=1e-5)
    for target, online, old in zip(jax.tree.leaves(new.critic_target), jax.tree.leaves(new.critic),
                                   jax.tree.leaves(state.critic_target)):
      np.testing.assert_allclose(target, 0.05 * np.asarray(online) + 0.95 * np.asarray(old), rtol=1e-5, atol=1e-7)


def test_centered_actor_shares_no_direction_across_the_batch():
  agent = _agent(center_actions=True)
  state = agent.init(jax.random.PRNGKey(0), 6)
  features = jax.random.normal(jax.random.PRNGKey(1), (64, 6))
  pre_tanh = np.arctanh(np.asarray(agent.policy(state, features), np.float64))
  np.testing.assert_allclose(pre_tanh.mean(0), 0.0, atol=1e-5)
  collapsed = jax.tree.map(jnp.zeros_like, state.actor)
  collapsed["params"]["Dense_2"]["bias"] = jnp.full((3,), 5.0)  # a constant push: removed entirely
  np.testing.assert_allclose(agent.policy(state.replace(actor=collapsed), features), 0.0, atol=1e-6)


def test_sac_log_probability_is_the_squashed_gaussians_density():
  agent = _agent(algo="sac")
  state = agent.init(jax.random.PRNGKey(0), 6)
  h = jax.random.normal(jax.random.PRNGKey(1), (16, 6))
  action, log_prob = agent.sample(state.actor, h, jax.random.PRNGKey(2), 0.0)
  mean, log_std = (np.asarray(x, np.float64) for x in agent.actor.apply(state.actor, h))
  pre = np.arctanh(np.asarray(action, np.float64))
  expected = scipy.stats.norm.logpdf(pre, mean, np.exp(log_std)) - np.log(1 - np.tanh(pre) ** 2)
  np.testing.assert_allclose(log_prob, expected.sum(-1), rtol=1e-3, atol=1e-2)
  assert float(jnp.max(jnp.abs(agent.policy(state, h) - jnp.tanh(mean)))) < 1e-6
  acted = agent.act(state, jnp.zeros((4000, 6)), jax.random.PRNGKey(3), 0)  # one state: the spread is the policy's
  assert acted.shape == (4000, 3) and float(jnp.max(jnp.abs(acted))) <= 1.0
  std_at_zero = np.exp(np.asarray(agent.actor.apply(state.actor, jnp.zeros((1, 6)))[1][0]))
  np.testing.assert_allclose(np.arctanh(np.asarray(acted, np.float64)).std(0), std_at_zero, rtol=0.1)


def test_sac_temperature_rises_when_the_policy_is_too_certain():
  agent = _agent(algo="sac")
  features, action, first = _batch(jax.random.PRNGKey(3))
  state = agent.init(jax.random.PRNGKey(4), 6)
  certain = jax.tree.map(lambda x: x, state.actor)
  certain["params"]["Dense_3"]["bias"] = jnp.full((3,), -5.0)  # std e^-5: entropy far below -3
  new, m = agent.update(state.replace(actor=certain), features, action, first, NO_NOVELTY, jax.random.PRNGKey(5), 0)
  assert float(new.log_alpha) > float(state.log_alpha) and float(m["policy_entropy"]) < -3
  assert np.isfinite(float(m["critic_loss"])) and float(m["alpha"]) > 0.1


def test_critic_ignores_sequences_that_cross_a_reset():
  """The stored action enters only Q(f_0, a_0) of its own sequence: changing the actions of masked
  sequences changes neither the critic loss nor the critic update; changing a valid one does."""
  agent = _agent()
  features, action, first = _batch(jax.random.PRNGKey(1))
  first = first.at[:8, 2].set(True)  # sequences 0..7 cross a reset before frame n
  state = agent.init(jax.random.PRNGKey(2), 6)
  update = lambda a: agent.update(state, features, a, first, NO_NOVELTY, jax.random.PRNGKey(3), 0)
  (s1, m1), (s2, m2) = update(action), update(action.at[:8].set(-action[:8]))
  assert float(m1["critic_loss"]) == float(m2["critic_loss"])
  for x, y in zip(jax.tree.leaves(s1.critic), jax.tree.leaves(s2.critic)):
    np.testing.assert_array_equal(x, y)
  s3, m3 = update(action.at[8:].set(-action[8:]))
  assert float(m3["critic_loss"]) != float(m1["critic_loss"])


def test_critic_fits_its_targets_on_a_fixed_batch():
  agent = _agent()
  features, action, first = _batch(jax.random.PRNGKey(4))
  state = agent.init(jax.random.PRNGKey(5), 6)
  update = jax.jit(agent.update)
  losses = []
  for i in range(150):
    state, m = update(state, features, action, first, NO_NOVELTY, jax.random.PRNGKey(i), 0)
    losses.append(float(m["critic_loss"]))
  assert losses[-1] < 0.2 * losses[0], losses[::30]


def test_td3_delays_actor_and_target_updates():
  agent = _agent(td3=True)
  features, action, first = _batch(jax.random.PRNGKey(6))
  s0 = agent.init(jax.random.PRNGKey(7), 6)
  s1, _ = agent.update(s0, features, action, first, NO_NOVELTY, jax.random.PRNGKey(8), 0)
  s2, _ = agent.update(s1, features, action, first, NO_NOVELTY, jax.random.PRNGKey(9), 0)
  changed = lambda a, b: any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert changed(s0.actor, s1.actor) and not changed(s1.actor, s2.actor)  # update 2 skips the actor
  assert changed(s1.critic, s2.critic) and not changed(s1.actor_target, s2.actor_target)


def _learner(**overrides):
  cfg = ml_collections.ConfigDict(dict(
      encoder=dict(name="conv", widths=(8, 16), features=16, conv_grad="auto", stem="cifar", width=8), head_hidden=16,
      head_out=8, temperature=0.1, lr=1e-3, weight_decay=0.0, pair_offset=1, augment="none", dtype="float32", **overrides))
  return Learner(cfg, num_classes=3)


@pytest.mark.slow  # about 40 s; `make test-slow`
def test_bfloat16_computes_in_bfloat16_and_keeps_float32_state():
  f32, bf16 = _learner(dtype="float32"), _learner(dtype="bfloat16")
  state = f32.init(jax.random.PRNGKey(0), (8, 8, 1))
  a, b = jax.random.uniform(jax.random.PRNGKey(1), (2, 16, 8, 8, 1), minval=-1)
  labels, valid = jnp.arange(16) % 3, jnp.ones(16, bool)
  assert "bf16[" in str(jax.make_jaxpr(lambda p: bf16.apply(p, a))(state.params))
  assert "bf16[" not in str(jax.make_jaxpr(lambda p: f32.apply(p, a))(state.params))
  (s32, m32, _), (s16, m16, _) = (learner.update(state, a, b, labels, valid) for learner in (f32, bf16))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((s16.params, s16.opt_state))
             if jnp.issubdtype(leaf.dtype, jnp.floating))
  assert bf16.features(s16.params, (a * 127 + 128).astype(jnp.uint8)).dtype == jnp.float32
  np.testing.assert_allclose(m16["ntxent"], m32["ntxent"], rtol=0.02)  # bf16 rounding, not a different loss
  assert float(m16["ntxent"]) != float(m32["ntxent"])


def test_probe_gradient_never_reaches_the_encoder():
  learner = _learner()
  state = learner.init(jax.random.PRNGKey(0), (8, 8, 1))
  x = jax.random.uniform(jax.random.PRNGKey(1), (4, 8, 8, 1), minval=-1)
  y = jnp.array([0, 1, 2, 0])

  def probe_loss(params):
    logits = learner.model.apply(params, x)[2]
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), y])

  grads = jax.grad(probe_loss)(state.params)["params"]
  assert all(float(jnp.abs(g).max()) == 0 for k, v in grads.items() if k != "probe" for g in jax.tree.leaves(v))
  assert float(jnp.abs(grads["probe"]["kernel"]).max()) > 0


def test_views_temporal_pairs_and_augmentation_modes():
  obs = jax.random.randint(jax.random.PRNGKey(0), (6, 3, 8, 8, 1), 0, 256).astype(jnp.uint8)
  first = jnp.zeros((6, 3), bool).at[0, 2].set(True).at[1, 1].set(True)
  a, b, valid = contrastive_views(jax.random.PRNGKey(1), obs, first, 2, "none", 0.3, 0.4)
  np.testing.assert_allclose(a, obs[:, 0] / 127.5 - 1, atol=1e-6)
  np.testing.assert_allclose(b, obs[:, 2] / 127.5 - 1, atol=1e-6)
  np.testing.assert_array_equal(valid, [False, False, True, True, True, True])
  a, b, valid = contrastive_views(jax.random.PRNGKey(1), obs, first, 1, "only", 0.3, 0.4)
  assert bool(valid.all()) and not np.allclose(a, b)
  a2, b2, valid = contrastive_views(jax.random.PRNGKey(1), obs, first, 1, "add", 0.3, 0.4)
  np.testing.assert_array_equal(valid, [True, False, True, True, True, True])
  assert not np.allclose(a2, obs[:, 0] / 127.5 - 1)


@pytest.mark.parametrize("d", [1, 4])
def test_knn_entropy_matches_a_gaussians_entropy(d):
  x = jax.random.normal(jax.random.PRNGKey(0), (4096, d))
  assert abs(float(apt.knn_entropy(x, 3)) - 0.5 * d * np.log(2 * np.pi * np.e)) < 0.1
  assert float(apt.knn_entropy(2 * x, 3)) > float(apt.knn_entropy(x, 3)) + d * np.log(2) - 0.1


def test_critic_diagnostics_measure_how_much_q_separates_actions():
  """q_spread_actions is 0 for a critic blind to the action and grows with the action's weight in Q;
  td_error and target_std are the valid sequences' root mean squares."""
  agent = _agent()
  state = agent.init(jax.random.PRNGKey(0), 6)
  h = jax.random.normal(jax.random.PRNGKey(1), (32, 6))
  kernel = state.critic["params"]["q1_0"]["kernel"]  # [trunk 8 + action 3, hidden]
  blind = jax.tree.map(lambda x: x, state.critic)
  blind["params"]["q1_0"]["kernel"] = kernel.at[8:].set(0.0)
  q = agent.critic.apply(state.critic, h, jnp.zeros((32, 3)))[0]
  target = q + jnp.linspace(-1.0, 1.0, 32)
  valid = jnp.arange(32) < 16
  key = jax.random.PRNGKey(2)
  d_blind = agent.critic_diagnostics(blind, h, q, target, valid, key)
  d = agent.critic_diagnostics(state.critic, h, q, target, valid, key)
  assert float(d_blind["q_spread_actions"]) < 1e-6 < float(d["q_spread_actions"])
  assert float(d["q_spread_states"]) > 0
  err = np.linspace(-1.0, 1.0, 32)[:16]
  np.testing.assert_allclose(float(d["td_error"]), np.sqrt(np.mean(err ** 2)), rtol=1e-5)
  np.testing.assert_allclose(float(d["target_std"]), np.std(np.asarray(target)[:16]), rtol=1e-4)


def test_standardized_reward_has_zero_mean_and_unit_std_over_the_batch():
  features, action, first = _batch(jax.random.PRNGKey(3))
  state = _agent().init(jax.random.PRNGKey(4), 6)
  _, plain = _agent().update(state, features, action, first, NO_NOVELTY, jax.random.PRNGKey(5), 0)
  _, scaled = _agent(standardize_reward=True).update(state, features, action, first, NO_NOVELTY, jax.random.PRNGKey(5), 0)
  assert float(plain["intrinsic_reward"]) > 0.1
  np.testing.assert_allclose([float(scaled["intrinsic_reward"]), float(scaled["intrinsic_reward_std"])], [0.0, 1.0],
                             atol=1e-5)


def test_a_scoped_reward_is_each_groups_own_reward_under_one_running_mean_update():
  """apt.scope = 8 on a batch of 32: each group of 8 consecutive frames among itself, the running
  mean moved once by every group's distances; scope 0 is the whole batch."""
  features = jax.random.normal(jax.random.PRNGKey(3), (2, 32, 6))  # two rewarded frames of 32 sequences
  scoped, mean = _agent(running_mean=True, scope=8).reward(features, apt.RunningMean.init())
  groups = features.reshape(2, 4, 8, 6)
  expected, expected_mean = apt.particle_reward(groups, 4, running_mean=apt.RunningMean.init())
  np.testing.assert_allclose(scoped, expected.reshape(2, 32), rtol=1e-6)
  np.testing.assert_allclose(mean.mean, expected_mean.mean, rtol=1e-6)
  alone = apt.particle_reward(features[0, 8:16], 4)  # one group by itself, without the running mean
  np.testing.assert_allclose(_agent(scope=8).reward(features, apt.RunningMean.init())[0][0, 8:16], alone, rtol=1e-6)
  whole = _agent(scope=0).reward(features, apt.RunningMean.init())[0]
  assert whole.shape == (2, 32) and not np.allclose(whole, _agent(scope=8).reward(features, apt.RunningMean.init())[0])
