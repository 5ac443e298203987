"""NT-Xent and the APT particle reward against direct reference implementations."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from palmup.apt import RunningMean, particle_reward
from palmup.losses import ntxent


def _ntxent_reference(a, b, t, valid):
  x = np.concatenate([a, b]) / np.linalg.norm(np.concatenate([a, b]), axis=1, keepdims=True)
  n, losses = len(a), []
  for i in range(2 * n):
    if not valid[i % n]:
      continue
    partner = (i + n) % (2 * n)
    others = [j for j in range(2 * n) if j != i]
    logits = np.array([x[i] @ x[j] / t for j in others])
    losses.append(-(x[i] @ x[partner] / t - np.log(np.sum(np.exp(logits)))))
  return np.mean(losses)


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_ntxent_matches_reference_and_optax(t):
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(6, 5)).astype(np.float32)
  got = float(ntxent(a, b, t))
  np.testing.assert_allclose(got, _ntxent_reference(a, b, t, [True] * 6), rtol=1e-5)
  labels = jnp.concatenate([jnp.arange(6), jnp.arange(6)])
  np.testing.assert_allclose(got, float(optax.ntxent(jnp.concatenate([a, b]), labels, t)), rtol=1e-5)


def test_ntxent_valid_mask_drops_anchors_keeps_negatives():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)
  valid = np.array([True, False, True, True, False])
  np.testing.assert_allclose(float(ntxent(a, b, 0.2, jnp.asarray(valid))), _ntxent_reference(a, b, 0.2, valid),
                             rtol=1e-5)
  np.testing.assert_allclose(float(ntxent(a, b, 0.2, jnp.ones(5, bool))), float(ntxent(a, b, 0.2)), rtol=1e-6)


def test_ntxent_is_low_for_identical_pairs_and_high_for_random():
  x = jax.random.normal(jax.random.PRNGKey(0), (64, 32))
  y = jax.random.normal(jax.random.PRNGKey(1), (64, 32))
  assert float(ntxent(x, x, 0.1)) < 0.1
  assert float(ntxent(x, y, 0.1)) > np.log(127) - 1


def _pbe_reference(f, k, average, clip, rms):
  """URLB's utils.PBE, line by line in numpy. rms: [mean, count] (mutated) or None."""
  d = np.linalg.norm(f[:, None] - f[None], axis=-1)
  knn = np.sort(d, axis=1)[:, :k]
  if not average:
    knn = knn[:, -1:]
  if rms is not None:
    flat = knn.reshape(-1)
    rms[0] = rms[0] + (flat.mean() - rms[0]) * len(flat) / (rms[1] + len(flat))
    rms[1] += len(flat)
    knn = knn / rms[0]
  return np.log(1 + np.maximum(knn - clip, 0).mean(axis=1))


@pytest.mark.parametrize("k,average,clip", [(1, True, 0.0), (3, True, 0.0), (4, False, 0.0), (3, True, 0.5)])
def test_particle_reward_matches_urlb(k, average, clip):
  f = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
  got = particle_reward(jnp.asarray(f), k, average=average, clip=clip)
  np.testing.assert_allclose(got, _pbe_reference(f, k, average, clip, None), rtol=1e-4, atol=1e-5)
  if k == 1:  # the point itself is its nearest neighbour
    np.testing.assert_allclose(got, 0.0, atol=1e-3)


def test_particle_reward_running_mean_over_batches():
  rng = np.random.default_rng(0)
  state, ref = RunningMean.init(), [0.0, 1e-4]
  for _ in range(3):
    f = rng.normal(size=(20, 4)).astype(np.float32) * rng.uniform(0.5, 3)
    got, state = particle_reward(jnp.asarray(f), 12, clip=1e-4, running_mean=state)
    np.testing.assert_allclose(got, _pbe_reference(f, 12, True, 1e-4, ref), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([float(state.mean), float(state.count)], ref, rtol=1e-5)


def test_k1_with_the_running_mean_is_zero_not_nan():
  """With k = 1 the nearest neighbour is the point itself at distance 0, so the running mean of
  the kept distances is 0: the reward is 0, not 0 / 0."""
  f = jnp.asarray(np.random.default_rng(0).normal(size=(16, 6)), jnp.float32)
  reward, state = particle_reward(f, 1, running_mean=RunningMean.init())
  np.testing.assert_array_equal(reward, 0.0)
  assert float(state.mean) == 0.0


def test_several_batches_update_the_running_mean_once_and_share_it():
  """features [m, B, D]: each batch's kNN among itself, the running mean updated once with all
  m batches' distances, and every batch normalised by that one mean."""
  rng = np.random.default_rng(1)
  f = (rng.normal(size=(3, 20, 4)) * np.array([0.5, 1.0, 3.0])[:, None, None]).astype(np.float32)
  got, state = particle_reward(jnp.asarray(f), 5, running_mean=RunningMean.init())
  knn = np.sort(np.sqrt(((f[:, :, None] - f[:, None]) ** 2).sum(-1)), -1)[:, :, :5]  # [3, 20, 5]
  mean = knn.sum() / (knn.size + 1e-4)  # URLB's RMS from M = 0, n = 1e-4, one update
  np.testing.assert_allclose(float(state.mean), mean, rtol=1e-5)
  np.testing.assert_allclose(float(state.count), knn.size + 1e-4, rtol=1e-6)
  np.testing.assert_allclose(got, np.log1p((knn / mean).mean(-1)), rtol=1e-4, atol=1e-5)


def test_knn_distances_ask_for_full_float32_matmuls_on_every_backend():
  """At DEFAULT precision a TPU multiplies float32 in bfloat16 passes and a GPU in TF32; the
  distance expansion asks for HIGHEST (what CPU computes anyway), and the StyleGAN2-ADA float32
  path's convolutions and demodulation too, while its bfloat16 path keeps the default."""
  from palmup.apt import kth_distance, pairwise_distances
  from palmup.generators.stylegan2_ada import modulated_conv
  x = jnp.zeros((8, 4))
  highest = lambda f, *a: "HIGHEST" in jax.jit(f).lower(*a).as_text()
  assert highest(pairwise_distances, x) and highest(lambda c, r: kth_distance(c, r, 2), x, x)
  conv = lambda dtype: lambda a, w, s: modulated_conv(a, w, s, True, up=2, f=np.ones((4, 4)) / 16, dtype=dtype)
  args = (jnp.zeros((2, 4, 4, 3)), jnp.zeros((3, 3, 3, 5)), jnp.ones((2, 3)))
  with_highest = lambda dtype: [line.split("=")[1].split()[0].split("(")[0] for line in
                                jax.jit(conv(dtype)).lower(*args).as_text().splitlines() if "HIGHEST" in line]
  # float32: the demodulation, the transposed conv and the resample filter's conv; bfloat16: all but the conv
  assert with_highest(jnp.float32) == ["stablehlo.dot_general", "stablehlo.convolution", "stablehlo.convolution"]
  assert with_highest(jnp.bfloat16) == ["stablehlo.dot_general", "stablehlo.convolution"]


def test_particle_reward_grows_with_spread_and_its_gradient_spreads_the_points():
  """Finite everywhere (a point's zero distance to itself included), and a step along it raises the
  reward; against a reference, each point's own distance is not among its neighbours."""
  f = jax.random.normal(jax.random.PRNGKey(0), (64, 8))
  assert float(particle_reward(2 * f, 5).mean()) > float(particle_reward(f, 5).mean())
  g = jax.grad(lambda f: particle_reward(f, 5).sum())(f)
  assert np.all(np.isfinite(g)) and float(jnp.abs(g).max()) > 0
  assert float(particle_reward(f + 0.1 * g, 5).sum()) > float(particle_reward(f, 5).sum())
  reference = jax.random.normal(jax.random.PRNGKey(1), (32, 8))
  fn = np.asarray(f, np.float64)
  d = np.sqrt(((fn[:, None] - np.asarray(reference, np.float64)[None]) ** 2).sum(-1))
  np.testing.assert_allclose(particle_reward(f, 5, reference=reference), np.log1p(np.sort(d, -1)[:, :5].mean(-1)),
                             rtol=1e-5)
  g = jax.grad(lambda f: particle_reward(f, 5, reference=reference).sum())(f)
  assert np.all(np.isfinite(g)) and float(jnp.abs(g).max()) > 0
  with pytest.raises(ValueError, match="k must be in \\[1, batch size 64\\], got 65"):
    particle_reward(f, 65)
  with pytest.raises(ValueError, match="k must be in \\[1, reference size 32\\], got 33"):
    particle_reward(f, 33, reference=reference)


def test_grouped_negatives_are_each_groups_own_ntxent_weighted_by_its_valid_pairs():
  rng = np.random.default_rng(0)
  a, b = (jnp.asarray(rng.normal(size=(12, 5)), jnp.float32) for _ in range(2))
  valid = jnp.asarray(rng.random(12) > 0.3)
  grouped = ntxent(a, b, 0.5, valid, group=4)
  parts = [(ntxent(a[i:i + 4], b[i:i + 4], 0.5, valid[i:i + 4]), valid[i:i + 4].sum()) for i in range(0, 12, 4)]
  np.testing.assert_allclose(grouped, sum(l * n for l, n in parts) / sum(n for _, n in parts), rtol=1e-5)
  np.testing.assert_allclose(ntxent(a, b, 0.5, valid, group=12), ntxent(a, b, 0.5, valid), rtol=1e-6)
  assert not np.isclose(grouped, ntxent(a, b, 0.5, valid))  # fewer negatives: another loss
  with pytest.raises(ValueError, match="group 5 must divide the batch of 12 pairs"):
    ntxent(a, b, 0.5, group=5)
