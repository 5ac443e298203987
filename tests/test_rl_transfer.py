"""RL transfer on tiny sizes: PPO learns a pixel bandit, frozen encoders stay bit-identical and
scratch trains them, GAE, observation conversion, config errors, and the Craftax, MinAtar, ALE and
T2 paths end to end. Craftax's texture cache is read once per session (its first use ever writes
it into site-packages, about 45 s)."""
import dataclasses
import json
import runpy
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import load_config
from palmup.config_checks import ConfigError
from palmup.learner import Learner, save_encoder
from palmup.nn.encoders import ConvEncoder
from palmup.rl import envs, ppo, transfer

ROOT = Path(__file__).resolve().parents[1]
TINY = {"num_seeds": 3, "ppo.num_envs": 4, "ppo.num_steps": 16, "ppo.total_env_steps": 128, "ppo.update_epochs": 1,
        "ppo.num_minibatches": 2, "ppo.hidden": 16, "task.reset_pool": 4, "eval.final_fraction": 0.5,
        "learner.encoder.widths": (8, 16), "learner.encoder.features": 16, "encoder.obs_size": 16}


@dataclasses.dataclass(frozen=True)
class SideTask:
  """A pixel bandit: the lit half of an 8x8 image names the rewarded action (0 left, 1 right);
  4-step episodes, so a random policy scores 2 and a perfect one 4."""
  num_actions: int = 2

  def _draw(self, key, n):
    side = jax.random.bernoulli(key, 0.5, (n,))
    lit = (jnp.arange(8) >= 4)[None, :] == side[:, None]  # [n, 8] columns
    return jnp.broadcast_to(jnp.where(lit, 255, 0).astype(jnp.uint8)[:, None, :, None], (n, 8, 8, 1)), side

  def reset(self, key, n):
    obs, side = self._draw(key, n)
    return obs, (side, jnp.zeros(n, jnp.int32))

  def begin_rollout(self, key, state):
    return state

  def step(self, key, state, action):
    side, t = state
    reward = (action == side).astype(jnp.float32)
    obs, side = self._draw(key, action.shape[0])
    done = t + 1 >= 4
    return obs, (side, jnp.where(done, 0, t + 1)), reward, done


def ppo_config(**kw):
  c = dict(num_envs=8, num_steps=16, total_env_steps=2048, lr=3e-3, anneal_lr=True, update_epochs=4,
           num_minibatches=4, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5,
           max_grad_norm=0.5, hidden=32, clip_rewards=False)
  return ml_collections.ConfigDict({**c, **kw})


@pytest.fixture(scope="module")
def side_runs():
  """Frozen (random) and scratch PPO on SideTask, 2 seeds each: (initial encoder params, results)."""
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  runs = {}
  for mode in ("random", "scratch"):
    agent = ppo.Agent(ConvEncoder((8, 16), 16), (8, 8, 1), 2, 32, train_encoder=mode == "scratch")
    encoder = jax.vmap(agent.init_encoder)(keys)
    params, metrics = jax.jit(jax.vmap(ppo.make_train(ppo_config(), SideTask(), agent)))(keys, encoder)
    runs[mode] = encoder, params, jax.device_get(metrics)
  return runs


@pytest.mark.parametrize("mode", ["random", "scratch"])
def test_ppo_learns_a_pixel_bandit(side_runs, mode):
  metrics = side_runs[mode][2]
  returns = metrics["episode_return_sum"] / metrics["episodes"]  # [seeds, updates]
  assert returns.shape == (2, 16)
  assert np.all(returns[:, 0] < 3.0)  # near chance (2 of 4) at first
  assert np.all(returns[:, -4:].mean(1) > 3.8)  # near perfect at the end


def test_frozen_encoder_is_bit_identical_and_scratch_trains_it(side_runs):
  encoder, params, _ = side_runs["random"]
  jax.tree.map(np.testing.assert_array_equal, params["encoder"], encoder)
  encoder, params, _ = side_runs["scratch"]
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), params["encoder"], encoder)
  assert all(jax.tree.leaves(changed))


def test_gae_by_hand():
  reward, value = jnp.asarray([[1.0], [2.0]]), jnp.asarray([[0.5], [1.0]])
  done, last = jnp.asarray([[False], [True]]), jnp.asarray([9.0])
  adv, target = ppo.gae(reward, value, done, last, gamma=0.9, lam=0.5)
  a1 = 2.0 - 1.0  # the episode ends at step 1: no bootstrap from last
  a0 = 1.0 + 0.9 * 1.0 - 0.5 + 0.9 * 0.5 * a1
  np.testing.assert_allclose(adv[:, 0], [a0, a1], rtol=1e-6)
  np.testing.assert_allclose(target, adv + value)


def test_windowed_return_pools_the_episodes_of_the_last_updates():
  metrics = {"episode_return_sum": np.asarray([[1.0, 0.0, 3.0, 4.0, 0.0]]), "episodes": np.asarray([[1, 0, 1, 2, 0]])}
  np.testing.assert_allclose(transfer.windowed_return(metrics, 2), [[1.0, 1.0, 3.0, 7 / 3, 2.0]])
  assert np.isnan(transfer.windowed_return(metrics, 1)[0, [1, 4]]).all()  # no episode ended there


@pytest.mark.parametrize("images, shape", [
    (np.random.default_rng(0).random((2, 63, 63, 3), np.float32), (32, 32, 1)),  # Craftax
    (np.full((2, 210, 160, 1), 255, np.uint8), (16, 16, 3)),  # ALE grey
    (np.zeros((2, 10, 10, 4), np.float32), (32, 32, 3)),  # MinAtar channels, coloured first
])
def test_to_encoder_obs_gives_the_encoders_shape(images, shape):
  if images.shape[-1] == 4:
    images = envs.minatar_rgb(images)
  obs = envs.to_encoder_obs(jnp.asarray(images), shape)
  assert obs.shape == (2,) + shape and obs.dtype == jnp.uint8
  if images.dtype == np.uint8:
    assert np.all(np.asarray(obs) == 255)  # white stays white through resize and grey -> RGB


def test_config_rejects_a_bad_mode_and_a_pretrained_run_without_path():
  with pytest.raises(ConfigError, match=r"config\.encoder\.mode='frozen' is invalid; valid: one of 'pretrained', "
                     r"'random', 'scratch'"):
    transfer.validate(load_config("rl_transfer_craftax", **{"encoder.mode": "frozen"}))
  with pytest.raises(ConfigError, match=r"config\.encoder\.path=None is invalid; valid: an encoder directory"):
    transfer.validate(load_config("rl_transfer_craftax", **{"encoder.mode": "pretrained"}))
  with pytest.raises(ConfigError, match=r"config\.task\.game='nope'"):
    transfer.validate(load_config("rl_transfer_atari", **{"task.game": "nope"}))


def test_cli_names_the_bad_mode(tmp_path):
  out = subprocess.run([sys.executable, "-m", "palmup", "rl-transfer", "--config", str(ROOT / "configs/rl_transfer_craftax.py"),
                        "--workdir", str(tmp_path), "--config.encoder.mode=frozen"], capture_output=True, text=True)
  assert out.returncode != 0
  assert "palmup rl-transfer: config.encoder.mode='frozen' is invalid" in out.stderr


def _run(tmp_path, config_name, **overrides):
  config = load_config(config_name, **{**TINY, **overrides})
  result = transfer.run(config, tmp_path)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [64, 128]  # one row per update, in env steps per seed
  assert json.loads((tmp_path / "rl_transfer.json").read_text()) == json.loads(json.dumps(result))
  assert len(result["final_return"]["per_seed"]) == 3 and result["env_steps_per_seed"] == 128
  return result, rows


class CountEnv:
  """A no-auto-reset env: fresh episodes start at a random count in [100, 200), each step adds 1,
  action 1 ends the episode; the observation is a grey image of brightness count / 255."""
  num_actions = 2

  def reset(self, key, params):
    count = jax.random.randint(key, (), 100, 200)
    return jnp.full((4, 4, 1), count / 255.0), count

  def step(self, key, count, action, params):
    return jnp.full((4, 4, 1), (count + 1) / 255.0), count + 1, 1.0, action == 1, {}


def test_pool_reset_restarts_ended_episodes_from_the_pool():
  task = envs.PoolResetTask(CountEnv(), None, (4, 4, 1), pool_size=3)
  obs, state = task.reset(jax.random.PRNGKey(0), 2)
  state = task.begin_rollout(jax.random.PRNGKey(1), state)
  obs, after, reward, done = task.step(jax.random.PRNGKey(2), state, jnp.asarray([0, 1]))
  assert done.tolist() == [False, True] and obs.shape == (2, 4, 4, 1) and obs.dtype == jnp.uint8
  assert int(after.envs[0]) == int(state.envs[0]) + 1 and int(obs[0, 0, 0, 0]) == int(after.envs[0])
  assert int(after.envs[1]) in state.pool.tolist()  # a fresh episode from this rollout's pool
  assert int(obs[1, 0, 0, 0]) == int(after.envs[1])  # with its own first observation


@pytest.mark.slow  # about 90 s: Craftax's compile; the Atari path stays in the default run; `make test-slow`
def test_craftax_path_runs(tmp_path):
  pytest.importorskip("craftax")
  result, rows = _run(tmp_path, "rl_transfer_craftax")
  assert result["task"] == "craftax_classic_pixels" and np.isfinite(rows[-1]["value_loss"])


@pytest.mark.slow  # about 20 s: the ALE path (the PPO and encoder paths are tested on the pixel bandit); `make test-slow`
def test_atari_path_runs(tmp_path):
  pytest.importorskip("ale_py")
  result, rows = _run(tmp_path, "rl_transfer_atari", **{"task.game": "pong"})
  assert result["game"] == "pong" and np.isfinite(rows[-1]["actor_loss"])


@pytest.mark.slow  # about 25 s; `make test-slow`
def test_t2_tiny_writes_results_and_plot(tmp_path):
  learner_config = load_config("pretrain_fashion_mnist").learner
  learner_config.encoder.update(widths=(8, 16), features=16)
  learner = Learner(learner_config, num_classes=3)
  params = learner.init(jax.random.PRNGKey(0), (16, 16, 1)).params
  save_encoder(tmp_path / "pre" / "encoder", learner, params, (16, 16, 1))
  sys.path.insert(0, str(ROOT / "experiments"))  # the table scripts import experiments/common.py
  t2 = runpy.run_path(str(ROOT / "experiments" / "t2_rl_transfer.py"))
  t2["main"](["--workdir", str(tmp_path / "t2"), "--scale", "tiny", "--tasks", "minatar_breakout",
              "--modes", "pretrained,scratch", "--encoder", str(tmp_path / "pre")])
  table = (tmp_path / "t2" / "results.md").read_text()
  row = next(line for line in table.splitlines() if line.startswith("| minatar_breakout | 128 | 2 |"))
  pretrained, random, scratch = [cell.strip() for cell in row.strip("|").split("|")][3:]
  assert "±" in pretrained and random == "not run" and "±" in scratch
  assert (tmp_path / "t2" / "returns.png").stat().st_size > 1000
  pretrained = json.loads((tmp_path / "t2" / "minatar_breakout" / "pretrained" / "rl_transfer.json").read_text())
  assert pretrained["mode"] == "pretrained" and pretrained["obs_shape"] == [16, 16, 1]
  assert (tmp_path / "t2" / "minatar_breakout" / "scratch" / "metrics.jsonl").exists()
