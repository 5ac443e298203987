"""The commands end to end on tiny sizes: train-generator (and its resume), eval-generator,
render, and the CLI's handling of bad config keys and values."""
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import load_config
from palmup import generators
from palmup.evaluators import generator_quality
from palmup import train_generator as train_lib
from palmup import render as render_lib

ROOT = Path(__file__).parents[1]


def tiny_gan_config(steps):
  return load_config("train_generator_fashion_mnist", **{
      "data.name": "digits", "data.class_names": (), "model.resolution": 8, "model.latent_dim": 8,
      "model.w_dim": 16, "model.channels": (16, 8), "model.d_channels": (16, 8),
      "train.batch_size": 16, "train.steps": steps, "train.r1_every": 2, "log_every": 1,
      "sample_every": 2, "checkpoint_every": 2, "eval.enabled": False})


def _params(workdir):
  return jax.tree.leaves(generators.load(str(workdir / "generator"))[1])


@pytest.mark.slow  # about 80 s: three GAN runs (the checkpoint code it uses is tested by test_faults); `make test-slow`
def test_train_generator_resumes_exactly(tmp_path):
  train_lib.main(tiny_gan_config(4), tmp_path / "straight")
  train_lib.main(tiny_gan_config(2), tmp_path / "resumed")
  train_lib.main(tiny_gan_config(4), tmp_path / "resumed")  # picks up the step-2 checkpoint
  for a, b in zip(_params(tmp_path / "straight"), _params(tmp_path / "resumed")):
    np.testing.assert_array_equal(a, b)
  rows = [json.loads(l) for l in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
  assert rows[0]["r1"] > 0  # R1 steps are 1, 3 (every 2): the logged value is the last R1 penalty
  assert (tmp_path / "straight" / "samples" / "step_0000004.png").exists()
  assert json.loads((tmp_path / "straight" / "config.json").read_text())["train"]["steps"] == 4


@pytest.mark.slow  # about 45 s: a GAN step and a classifier trained on digits; `make test-slow`
def test_generator_quality_separates_untrained_from_real(tmp_path):
  train_lib.main(tiny_gan_config(1), tmp_path)
  q = generator_quality.evaluate(str(tmp_path / "generator"), "digits", num_samples=200,
                                 classifier_steps=150, batch_size=64, seed=0)
  assert q["classifier_test_accuracy"] > 0.8  # the judge works on real 8x8 digits
  assert q["conditional_accuracy"] < 0.4  # a 1-step generator does not draw its classes
  assert q["frechet_distance"] > 3 * q["frechet_distance_real_train_vs_test"]
  assert q["train_generated_test_real_accuracy"] < 0.4  # its samples teach nothing about real digits


def test_frechet_distance_of_known_gaussians():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(20000, 2))
  b = rng.normal(size=(20000, 2)) * 2 + [3, 0]
  # |mu|^2 + tr(I + 4I - 2*2I) = 9 + 2
  assert abs(generator_quality.frechet_distance(a, b) - 11.0) < 0.3


@pytest.mark.slow  # about 10 s (the render rollout test stays in the default run); `make test-slow`
def test_render_writes_strips_and_gif(tiny_gen, tmp_path):
  gen, params = tiny_gen
  generators.save(tmp_path / "gen", gen, params)
  config = load_config("render_fashion_mnist", **{
      "generator.path": str(tmp_path / "gen"), "obs_size": 8, "render.classes": (0, 2),
      "render.steps": 3, "render.sweep": {"ema": (0.0, 0.9)}, "scale": 1})
  render_lib.main(config, tmp_path / "out")
  strip = np.asarray(Image.open(tmp_path / "out" / "strips" / "ema=0.9.png"))
  assert strip.shape == (2 * 9 + 1, 4 * 9 + 1, 3)  # 2 classes x 4 frames of 8x8, 1px borders
  gif = Image.open(tmp_path / "out" / "trajectories.gif")
  assert gif.n_frames == 4 and gif.size == (2 * 9 + 1, 2 * 9 + 1)


def test_render_rollout_holds_class_and_constant_action_differs_from_random(tiny_gen):
  from palmup.env import EnvParams, LatentEnv
  gen, params = tiny_gen
  env = LatentEnv(gen, params, 8)
  classes = jax.numpy.array([0, 1, 2])
  frames = {p: render_lib.rollout(env, EnvParams(ema=0.5), classes, 4, p, jax.random.PRNGKey(0))
            for p in render_lib.POLICIES}
  assert frames["random"].shape == (5, 3, 8, 8, 1)
  np.testing.assert_array_equal(frames["random"][0], frames["zero"][0])  # same start
  assert not np.array_equal(frames["random"][-1], frames["constant"][-1])


def _cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "palmup", *args], capture_output=True, text=True, env=env,
                        cwd=ROOT, timeout=300)


def test_cli_rejects_unknown_key_and_bad_value_before_work(tmp_path):
  out = _cli("render", "--config", "configs/render_fashion_mnist.py", "--workdir", str(tmp_path / "a"),
             "--config.render.nope=1")
  assert out.returncode != 0
  assert "unknown config key config.render.nope; valid keys under config.render: classes, policy" in out.stderr
  out = _cli("render", "--config", "configs/render_fashion_mnist.py", "--workdir", str(tmp_path / "b"),
             "--config.render.policy=wiggle")
  assert out.returncode != 0
  assert "config.render.policy='wiggle' is invalid; valid: one of 'random', 'constant', 'zero'" in out.stderr
  assert not (tmp_path / "b").exists()  # stopped before writing anything
  out = _cli("render", "--config", "configs/render_fashion_mnist.py", "--workdir", str(tmp_path / "d"),
             "--config.env.ema=1.5")
  assert "config.env.ema=1.5 is invalid; valid: in [0, 1]" in out.stderr
  out = _cli("fly", "--config", "configs/render_fashion_mnist.py", "--workdir", str(tmp_path / "c"))
  assert out.returncode != 0 and "train-generator" in out.stderr


def test_palmup_turns_off_xla_cpus_ynnpack_fusion_unless_xla_flags_say_otherwise():
  import palmup
  environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  palmup.xla_defaults(environ)
  assert environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4 --xla_cpu_experimental_ynn_fusion_type="
  chosen = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot"}
  palmup.xla_defaults(chosen)
  assert chosen == {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot"}
  empty = {}
  palmup.xla_defaults(empty)
  assert empty == {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}
  # a fresh process that imports palmup starts JAX with the flag set
  out = subprocess.run([sys.executable, "-c", "import palmup, os; print(os.environ['XLA_FLAGS'])"],
                       env={k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}, capture_output=True, text=True)
  assert out.stdout.strip() == "--xla_cpu_experimental_ynn_fusion_type="
