"""Replay of short trajectories: consecutive items, boundary masks, pixels == decoded latents."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from palmup.env import EnvParams, LatentEnv
from palmup.replay import Replay, same_episode


@pytest.fixture(scope="module")
def env(tiny_gen):
  return LatentEnv(*tiny_gen, obs_size=8)


def _fill(replay, env, params, steps, key):
  """Rolls out replay.num_envs envs with random actions, adding (o_t, a_t, first_t) each step."""
  n = replay.num_envs
  obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(key, n), params)
  first = jnp.ones(n, bool)
  buffer_state = replay.init()

  @jax.jit
  def step(carry, k):
    buffer_state, obs, state, first = carry
    ka, ks = jax.random.split(k)
    action = jax.random.uniform(ka, (n, env.latent_dim), minval=-1)
    buffer_state = replay.add(buffer_state, replay.item(obs, state, action, first))
    obs, state, _, _, truncated, _ = jax.vmap(env.step, (0, 0, 0, None))(jax.random.split(ks, n), state, action, params)
    return (buffer_state, obs, state, truncated), None

  (buffer_state, *_), _ = jax.lax.scan(step, (buffer_state, obs, state, first), jax.random.split(key, steps))
  return buffer_state


@pytest.mark.parametrize("length", [2, 4])
def test_sequences_are_consecutive_and_masked_at_episode_boundaries(env, length):
  """Actions encode (env, t); episodes last 3 steps (item t is `first` iff t % 3 == 0), so frames
  0 and j of a sequence starting at t share an episode iff no t+1..t+j is a multiple of 3."""
  replay = Replay(env, num_envs=4, capacity=16, batch_size=256, sequence_length=length)
  state = replay.init()
  for t in range(10):
    action = jnp.stack([jnp.full(env.latent_dim, 100 * e + t, jnp.float32) for e in range(4)])
    first = jnp.full(4, t % 3 == 0)
    labels = jnp.arange(4, dtype=jnp.int32)
    state = replay.add(state, replay.item(jnp.zeros((4, 8, 8, 1), jnp.uint8),
                                          env_state_with(labels, env.latent_dim), action, first))
  seq = replay.sample(state, jax.random.PRNGKey(0))
  code = np.asarray(seq.action[:, :, 0])
  t0 = code[:, 0] % 100
  np.testing.assert_array_equal(code, code[:, :1] + np.arange(length))  # one env, consecutive steps
  np.testing.assert_array_equal(np.asarray(seq.label), np.repeat(code[:, :1] // 100, length, 1))
  assert set(t0) <= set(range(10 - length + 1))  # sequences end at the last written item
  for j in range(1, length):
    expected = np.array([all((t + i) % 3 for i in range(1, j + 1)) for t in t0])
    np.testing.assert_array_equal(np.asarray(same_episode(seq.first, j)), expected)
    assert not expected.all() and (expected.any() or j == 3)  # j = 3 always spans a reset


def test_sampling_is_stratified_by_env_block_and_the_same_on_a_mesh(env):
  """8 envs, batch 12: gcd 4 blocks of 2 envs and 3 rows; rows 3j..3j+2 come from envs 2j, 2j+1.
  Sampled through a mesh (a shard_map over its devices), the sequences are the same."""
  from palmup import sharding
  replay = Replay(env, num_envs=8, capacity=16, batch_size=12, sequence_length=2)
  state = replay.init()
  for t in range(6):
    action = jnp.stack([jnp.full(env.latent_dim, 100 * e + t, jnp.float32) for e in range(8)])
    state = replay.add(state, replay.item(jnp.zeros((8, 8, 8, 1), jnp.uint8),
                                          env_state_with(jnp.zeros(8, jnp.int32), env.latent_dim), action,
                                          jnp.zeros(8, bool)))
  assert replay.blocks == 4
  seqs = [replay.sample(state, jax.random.PRNGKey(k)) for k in range(20)]
  envs = np.stack([np.asarray(s.action[:, 0, 0]) // 100 for s in seqs])  # [draws, 12]
  np.testing.assert_array_equal(envs // 2, np.broadcast_to(np.arange(12) // 3, envs.shape))
  assert set(np.unique(envs)) == set(range(8))  # both envs of every block are drawn
  on_mesh = jax.jit(lambda s, k: replay.sample(s, k, sharding.make_mesh()))(state, jax.random.PRNGKey(0))
  for field in ("action", "label", "first", "obs"):
    np.testing.assert_array_equal(getattr(on_mesh, field), getattr(seqs[0], field))


def env_state_with(labels, d):
  from palmup.env import EnvState
  n = labels.shape[0]
  return EnvState(jnp.zeros((n, d)), labels, jnp.zeros(n, jnp.int32), jnp.zeros(n, jnp.int32))


@pytest.mark.slow  # about 15 s: latent storage (the accelerator config's); `make test-slow`
def test_latent_storage_decodes_to_the_stored_pixels(env):
  params = EnvParams(episode_length=4)
  key = jax.random.PRNGKey(3)
  out = {}
  for storage in ("pixels", "latents"):
    replay = Replay(env, num_envs=8, capacity=12, batch_size=32, sequence_length=3, storage=storage)
    buffer_state = _fill(replay, env, params, 10, key)
    assert bool(replay.can_sample(buffer_state))
    out[storage] = (replay.sample(buffer_state, jax.random.PRNGKey(9)), replay.bytes_per_transition())
  (pix, pix_bytes), (lat, lat_bytes) = out["pixels"], out["latents"]
  for field in ("obs", "action", "label", "first"):
    np.testing.assert_array_equal(getattr(pix, field), getattr(lat, field))
  assert not np.all(np.asarray(same_episode(pix.first, 2)))  # 4-step episodes: some cross a reset
  lanes = lambda n: -(-n // 128) * 128  # vectors are stored padded to 128 entries
  d = env.latent_dim
  assert pix_bytes == lanes(8 * 8 * 1) + 4 + 4 * lanes(d) + 1 + 4  # obs, label, action, first, novelty
  assert lat_bytes == 4 * lanes(d) + 4 + 4 * lanes(d) + 1 + 4


def test_bad_storage_named(env):
  with pytest.raises(ValueError, match="'jpeg'"):
    Replay(env, 2, 4, 2, storage="jpeg")
