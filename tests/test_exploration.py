"""The exploration judge: a frozen classifier of real Fashion-MNIST, shipped; coverage and entropies
of visited frames in its feature space; logged per chunk by the pretraining loop."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from palmup import generators, pretrain, sharding
from palmup.config_checks import ConfigError
from palmup.data import datasets
from palmup.env import LatentEnv
from palmup.errors import UserError
from palmup.evaluators import exploration


@pytest.fixture(scope="module")
def judged():
  judge = exploration.load("builtin:fashion_mnist_32")
  return judge, exploration.reference(judge, per_class=50)


def test_shipped_judge_classifies_real_test_images(judged):
  judge, _ = judged
  test = datasets.load("fashion_mnist", "test")
  logits, features = judge.apply(test.images[:2000])
  assert features.shape == (2000, 128) and judge.num_classes == 10
  assert float(np.mean(np.argmax(logits, -1) == test.labels[:2000])) > 0.85


def test_unknown_judge_is_named():
  with pytest.raises(UserError, match="builtin:fashion_mnist_32"):
    exploration.load("builtin:nope")


def test_real_images_cover_their_classes_and_duplicates_do_not(judged):
  judge, ref = judged
  test = datasets.load("fashion_mnist", "test")
  z = jax.random.normal(jax.random.PRNGKey(0), (1000, 16))
  steps = lambda x: jnp.asarray(x).reshape((10, 100) + x.shape[1:])  # 10 steps of 100 envs

  def metrics(idx, latents):
    logits, features = judge.apply(test.images[idx])
    return exploration.visit_metrics(judge, ref, steps(logits), steps(features), steps(test.labels[idx]),
                                     steps(latents))

  spread = metrics(np.arange(9000, 10000), z)
  one_per_class = np.concatenate([np.flatnonzero(test.labels[-1000:] == c)[:1] for c in range(10)]) + 9000
  idx = np.tile(one_per_class, 100)  # at each step, 10 copies of one image per class
  dup = metrics(idx, jnp.tile(z[:10], (100, 1)) * (1 + 1e-3 * z[:, :1]))
  assert float(spread["judge_coverage"]) > 0.5 and float(spread["judge_agreement"]) > 0.85
  assert float(dup["judge_coverage"]) < 0.15
  assert float(spread["judge_entropy"]) > float(dup["judge_entropy"]) + 100  # 128-d: nats scale with d
  assert float(spread["direction_entropy"]) > float(dup["direction_entropy"])
  exact = exploration.coverage(ref, ref.features, ref.labels, 10)  # each real image covers itself
  np.testing.assert_array_equal(exact, np.ones(10))


@pytest.mark.slow  # about 45 s; `make test-slow` (the default suite reads judge metrics in tests/test_sweep.py)
def test_the_loop_logs_judge_metrics_per_chunk():
  gen, params = generators.load("builtin:fashion_mnist_32")
  env = LatentEnv(gen, params, obs_size=8)
  config = load_config("pretrain_tiny", explorer="random", **{"log.judge_reference": 20})
  pretrain.validate(config)
  world = pretrain.make_world(config, env)
  init, chunk, _ = pretrain.jit_pretrain(config, world, sharding.make_mesh())
  _, metrics, _ = chunk(world, init(world, jax.random.PRNGKey(0)))
  for key in ("judge_coverage", "judge_coverage_min", "judge_agreement"):
    assert 0.0 <= float(metrics[key]) <= 1.0, key
  assert np.isfinite(float(metrics["judge_entropy"])) and np.isfinite(float(metrics["direction_entropy"]))
  bad = load_config("pretrain_tiny", **{"log.judge": "builtin:nope"})
  with pytest.raises(ConfigError, match="config.log.judge='builtin:nope' is invalid.*fashion_mnist_32"):
    pretrain.validate(bad)
