"""The fused pretraining loop on tiny sizes: every explorer runs and learns, checkpoints resume
exactly, corrupt checkpoints are skipped, NaN and SIGTERM stop cleanly, bad configs are named."""
import json
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import load_config
from palmup import generators, learner as learner_lib, pretrain, pretrain_job, sharding, workdirs
from palmup.checkpoints import CheckpointError
from palmup.config_checks import ConfigError
from palmup.env import LatentEnv

def tiny_config(gen_dir=None, **overrides):
  """The tiny config; no judge (the tiny generator has 3 classes, the shipped judge 10)."""
  config = load_config("pretrain_tiny", **{"log.judge": "", **overrides})
  if gen_dir is not None:
    config.generator = str(gen_dir)
  return config


@pytest.fixture(scope="module")
def gen_dir(tiny_gen, tmp_path_factory):
  path = tmp_path_factory.mktemp("gen")
  generators.save(path, *tiny_gen)
  return path


@pytest.fixture(scope="module")
def env(tiny_gen):
  return LatentEnv(*tiny_gen, obs_size=8)


def _run_chunks(config, env, chunks):
  pretrain.validate(config)
  world = pretrain.make_world(config, env)
  init, chunk, _ = pretrain.jit_pretrain(config, world, sharding.make_mesh())
  state = init(world, jax.random.PRNGKey(config.seed))
  start = jax.device_get(state)  # chunk donates its input
  rows = []
  for _ in range(chunks):
    state, metrics, strips = chunk(world, state)
    rows.append({k: float(v) for k, v in metrics.items()})
  return start, state, rows, strips


def _changed(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("explorer,augment", [  # the baselines' loops are also run by T1's slow tiny test
    ("apt", "none"), pytest.param("random", "add", marks=pytest.mark.slow),
    pytest.param("static", "only", marks=pytest.mark.slow)])
def test_every_explorer_runs_and_updates(env, explorer, augment):
  config = tiny_config(explorer=explorer, **{"learner.augment": augment})
  start, state, rows, strips = _run_chunks(config, env, 2)
  assert all(np.isfinite(v) for row in rows for v in row.values())
  assert int(state.step) == 6
  assert _changed(start.learner.params, state.learner.params)
  assert strips["trajectory"].shape == (3, 4, 8, 8, 1) and strips["pairs"].shape == (2, 8, 8, 8, 1)
  for row in rows:
    assert 0 < row["valid_pairs"] <= 1 and 0 < row["class_coverage"] <= 1 and row["feature_std"] > 0
    assert 0 <= row["probe_acc"] <= 1 and 0 < row["ntxent"] < 2 * np.log(2 * 16)  # below chance's log(2B-1) x 2
  if explorer != "static":  # 4 warm-up steps and 6 loop steps written per env; episodes of 5 steps
    assert int(state.buffer.current_index) == 10 and np.all(np.asarray(state.env_state.t) == 0)
    assert np.all(np.asarray(state.env_state.episode) == 2)
  if explorer == "apt":
    assert _changed(start.agent.actor, state.agent.actor) and rows[-1]["intrinsic_reward"] > 0
    assert {"critic_loss", "actor_loss", "q", "exploration_std"} <= set(rows[-1])
    assert int(state.agent.updates) == 6 and 0.1 < rows[-1]["action_std"] <= 1.0
  else:
    assert state.agent is None
  for key in ("ntxent", "probe_acc", "knn_entropy", "class_coverage", "latent_norm"):
    assert key in rows[-1]


def test_collapsed_actor_reads_as_collapsed_on_the_logged_diagnostics(env):
  """An actor that gives every env the same saturated action (zero weights, bias 5) reads as
  collapsed (policy/action std 0, saturation 1, pairwise cosine 1); uniform actions do not."""
  config = tiny_config(**{"agent.algo": "ddpg", "agent.seed_steps": 0, "agent.std_start": 0.0,
                          "agent.std_end": 0.0, "agent.lr": 1e-7})
  pretrain.validate(config)
  world = pretrain.make_world(config, env)
  init, chunk, _ = pretrain.jit_pretrain(config, world, sharding.make_mesh())
  state = init(world, jax.random.PRNGKey(0))
  actor = jax.tree.map(np.zeros_like, jax.device_get(state.agent.actor))
  actor["params"]["Dense_2"]["bias"] = np.full(env.latent_dim, 5.0, np.float32)
  state, collapsed, _ = chunk(world, state.replace(agent=state.agent.replace(actor=actor)))
  for who in ("policy", "action"):
    assert float(collapsed[f"{who}_std"]) < 1e-3 and float(collapsed[f"{who}_saturation"]) == 1.0
    np.testing.assert_allclose(float(collapsed[f"{who}_cosine"]), 1.0, atol=1e-4)
  _, _, rows, _ = _run_chunks(tiny_config(explorer="random"), env, 1)
  assert rows[0]["action_std"] > 0.5 and abs(rows[0]["action_cosine"]) < 0.15
  assert rows[0]["action_saturation"] < 0.05
  for key in ("dq_da_norm", "q", "q_target", "critic_loss", "intrinsic_reward", "intrinsic_reward_std"):
    assert np.isfinite(float(collapsed[key]))
  assert float(collapsed["apt_objective"]) > 0 and rows[0]["apt_objective"] > 0


def test_agent_updates_per_step_run_that_many_updates_each_on_its_own_batch(env):
  """agent.updates_per_step = 3: three agent updates a loop step (the counter says so), the critic
  diagnostics averaged over them and finite."""
  _, state, rows, _ = _run_chunks(tiny_config(**{"agent.updates_per_step": 3}), env, 1)
  assert int(state.agent.updates) == 3 * 3  # 3 steps a chunk
  for key in ("q_spread_actions", "q_spread_states", "td_error", "target_std"):
    assert np.isfinite(rows[0][key]) and rows[0][key] >= 0


@pytest.mark.parametrize("reference", ["population", pytest.param("batch", marks=pytest.mark.slow)])
def test_gradient_explorer_runs_and_trains_its_actor_through_the_world(env, reference):
  """explorer = "gradient": the actor's parameters move every step, with a finite reward and a
  nonzero gradient, and its health statistics are logged (that the encoder never gets the
  explorer's gradient, and the batch reference's kNN: test_gradient_explorer)."""
  config = tiny_config(explorer="gradient", **{"gradient.reference": reference})
  start, state, rows, _ = _run_chunks(config, env, 2)
  assert int(state.agent.updates) == 6 and _changed(start.agent.actor, state.agent.actor)
  assert all(np.isfinite(r["explorer_reward"]) and r["actor_grad_norm"] > 0 for r in rows)
  assert {"policy_std", "policy_cosine"} <= set(rows[0])


def test_static_baseline_on_real_images_draws_the_datasets_images(env):
  """static_source = digits: SimCLR on real 8x8 digits (10 classes) instead of the 3-class generator."""
  config = tiny_config(explorer="static", static_source="digits", **{"learner.augment": "only"})
  start, state, rows, strips = _run_chunks(config, env, 2)
  assert _changed(start.learner.params, state.learner.params) and np.isfinite(rows[-1]["ntxent"])
  assert state.learner.params["params"]["probe"]["kernel"].shape[-1] == 10  # the dataset's classes
  assert 0.5 < rows[-1]["class_coverage"] <= 1.0 and "latent_norm" not in rows[-1]  # 16 draws of 10 classes
  digits = pretrain.real_source(config, (8, 8, 1)).images
  shown = np.asarray(strips["trajectory"])[-1]  # the last step's first images, unaugmented
  assert all(any(np.array_equal(img, d) for d in digits) for img in shown)


def test_latent_views_are_one_class_neighbours_at_sigma(env):
  """GenRep's latent views: G(z, y) and G(z + sigma n, y), n ~ N(0, I) truncated at +-2 (variance
  0.774 per dimension), so the latents lie noise_scale * sigma * sqrt(0.774 d) apart; at a tiny
  sigma the two views are the same image (same z, same class); single views are one image."""
  def batch(**overrides):
    config = tiny_config(explorer="static", **{"learner.augment": "none", "static_views": "latent", **overrides})
    pretrain.validate(config)
    loop = pretrain.Loop.make(config, pretrain.make_world(config, env))
    return jax.jit(loop.static_batch)(jax.random.PRNGKey(0)), loop.env_params.noise_scale
  (obs, labels, stats), noise_scale = batch(**{"static_sigma": 0.5})
  assert obs.shape == (16, 2, 8, 8, 1) and labels.shape == (16,)
  expected = noise_scale * 0.5 * np.sqrt(0.7737 * env.latent_dim)
  np.testing.assert_allclose(float(stats["view_latent_distance"]), expected, rtol=0.1)
  assert np.mean(np.abs(obs[:, 0].astype(int) - obs[:, 1])) > 2  # grey levels: the neighbour is another image
  (close, _, stats), _ = batch(**{"static_sigma": 1e-6})
  assert float(stats["view_latent_distance"]) < 1e-4
  assert np.max(np.abs(close[:, 0].astype(int) - close[:, 1])) <= 1
  (single, _, _), _ = batch(**{"static_views": "single", "learner.augment": "only"})
  assert single.shape == (16, 1, 8, 8, 1)


def test_static_latent_views_train_with_and_without_augmentation(env):
  for augment in ("none", "add"):
    config = tiny_config(explorer="static", **{"static_views": "latent", "learner.augment": augment})
    start, state, rows, strips = _run_chunks(config, env, 1)
    assert _changed(start.learner.params, state.learner.params) and np.isfinite(rows[-1]["ntxent"])
    assert rows[-1]["view_latent_distance"] > 0 and strips["pairs"].shape == (2, 8, 8, 8, 1)


@pytest.mark.parametrize("observe", [pytest.param("latent", marks=pytest.mark.slow), "both"])  # both holds the latent
def test_agent_that_observes_the_state_sees_the_latent_and_class(env, observe):
  """agent.observe: the actor's input is the env's Markov state (z over its RMS, as the tiny
  StyleGAN normalises it, and the one-hot class), with or without the features. A 'latent' actor
  acts the same whatever the features; a 'both' one does not; replayed sequences carry z."""
  config = tiny_config(**{"agent.observe": observe, "agent.seed_steps": 0})
  start, state, rows, _ = _run_chunks(config, env, 1)
  assert _changed(start.agent.actor, state.agent.actor) and np.isfinite(rows[-1]["critic_loss"])
  loop = pretrain.Loop.make(config, pretrain.make_world(config, env))
  features = loop.current_features(state)
  markov = env.markov_state(state.env_state.z, state.env_state.label)
  assert markov.shape == (8, env.latent_dim + env.num_classes) and env.generator.normalizes_latent
  np.testing.assert_allclose(np.sqrt(np.mean(np.square(markov[:, :env.latent_dim]), -1)), 1.0, rtol=1e-4)
  np.testing.assert_array_equal(markov[:, env.latent_dim:], jax.nn.one_hot(state.env_state.label, env.num_classes))
  inputs = state.agent.actor["params"]["_Trunk_0"]["Dense_0"]["kernel"].shape[0]
  assert inputs == markov.shape[-1] + (features.shape[-1] if observe == "both" else 0)
  act = jax.jit(loop.act)
  other = act(state, jax.random.PRNGKey(5), features + 1.0)
  same = np.allclose(act(state, jax.random.PRNGKey(5), features), other)
  assert same == (observe == "latent")
  seq = jax.jit(loop.sample)(state.buffer, jax.random.PRNGKey(2))
  assert seq.z.shape == seq.action.shape  # [B, L, d]: the replayed latents


def test_pairs_crossing_an_episode_boundary_are_masked_in_the_loop(env):
  """Episodes of 3 steps: a third of consecutive pairs cross a reset, with offset 2 two thirds."""
  for offset, expected in ((1, 2 / 3), (2, 1 / 3)):
    config = tiny_config(explorer="random", **{"env.episode_length": 3, "learner.pair_offset": offset,
                                               "replay.batch_size": 64, "train.chunk_steps": 8})
    _, _, rows, _ = _run_chunks(config, env, 1)
    assert abs(rows[0]["valid_pairs"] - expected) < 0.12, (offset, rows[0]["valid_pairs"])


def test_ntxent_falls_when_training_on_temporal_pairs(env):
  """The paper's unaugmented pairs. (Augmented 8 x 8 pairs do not fall by 0.1 in 60 steps: crops of
  8 pixels; `make pretrain`'s run shows the default, augmented, falling.)"""
  config = tiny_config(explorer="random", **{"train.chunk_steps": 10, "learner.lr": 3e-3, "learner.augment": "none"})
  _, _, rows, _ = _run_chunks(config, env, 3)
  assert rows[-1]["ntxent"] < rows[0]["ntxent"] - 0.1, [r["ntxent"] for r in rows]


def _final_params(workdir):
  manager = ocp.CheckpointManager(Path(workdir) / "checkpoints")
  step = manager.latest_step()
  restored = manager.restore(step)
  manager.close()
  return step, restored


def test_stopped_and_resumed_run_equals_uninterrupted_run(gen_dir, tmp_path):
  pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 9}), tmp_path / "straight")
  pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 3}), tmp_path / "stopped")
  pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 9}), tmp_path / "stopped")
  (s1, a), (s2, b) = _final_params(tmp_path / "straight"), _final_params(tmp_path / "stopped")
  assert s1 == s2 == 3
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b) > 20  # learner, agent, replay, env state, RNG, running mean
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)
  steps = [row["step"] for row in workdirs.read_metrics(tmp_path / "stopped")]
  assert steps == [3, 6, 9]  # chunk 1 from the first run, 2 and 3 after resuming
  starts = [json.loads(line) for line in (tmp_path / "stopped" / "provenance.jsonl").read_text().splitlines()]
  assert [s["from_step"] for s in starts] == [0, 3]  # one line per process that ran it, with its commit
  assert all(s["commit"] == workdirs.commit_info()["commit"] and s["dirty"] == workdirs.commit_info()["dirty"]
             for s in starts)
  assert workdirs.run_commits(tmp_path / "stopped") == [
      workdirs.commit_info()["commit"] + ("+dirty" if workdirs.commit_info()["dirty"] else "")]
  assert workdirs.run_commits(tmp_path / "nothing here") == ["not recorded"]
  learner, params, obs_shape = learner_lib.load_encoder(tmp_path / "stopped" / "encoder")
  assert obs_shape == (8, 8, 1)
  for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(b["learner"]["params"])):
    np.testing.assert_array_equal(x, y)
  assert list((tmp_path / "stopped" / "strips").glob("*_pairs.png"))


def test_corrupt_latest_checkpoint_is_skipped_with_a_warning(gen_dir, tmp_path):
  pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 6}), tmp_path)
  latest = tmp_path / "checkpoints" / "2"
  for f in latest.rglob("*"):
    if f.is_file() and f.stat().st_size > 0 and "metadata" not in f.name:
      f.write_bytes(b"\0" * 7)
  with pytest.warns(UserWarning, match="checkpoint 2 .* unreadable"):
    pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 9}), tmp_path)
  steps = [row["step"] for row in workdirs.read_metrics(tmp_path)]
  assert steps == [3, 6, 9]  # chunk 2 redone from checkpoint 1, its old row dropped
  (damaged,) = (tmp_path / "damaged_checkpoints").iterdir()  # moved out of rotation's reach, not deleted
  assert damaged.name.startswith("2_") and (damaged / "_CHECKPOINT_METADATA").exists()
  assert ocp.CheckpointManager(tmp_path / "checkpoints").all_steps() == [2, 3]  # 2 written anew, 3


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(gen_dir, tmp_path, monkeypatch):
  monkeypatch.setattr(pretrain_job, "_RESUMABLE_CHANGES", pretrain_job._RESUMABLE_CHANGES + ("learner.lr",))
  pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 3}), tmp_path)
  with pytest.raises(FloatingPointError, match=r"non-finite .*ntxent.* in chunk 2: stopping; the last good checkpoint \(chunk 1\) is kept"):
    pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 9, "learner.lr": 1e30}), tmp_path)
  manager = ocp.CheckpointManager(tmp_path / "checkpoints")
  assert manager.all_steps() == [1]


def test_sigterm_checkpoints_after_the_current_chunk_and_resumes(gen_dir, tmp_path, monkeypatch):
  write = workdirs.MetricWriter.write

  def write_then_sigterm(self, step, metrics):
    write(self, step, metrics)
    if step == 3:
      signal.raise_signal(signal.SIGTERM)

  monkeypatch.setattr(workdirs.MetricWriter, "write", write_then_sigterm)
  pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 12, "train.checkpoint_every": 10}), tmp_path)
  assert ocp.CheckpointManager(tmp_path / "checkpoints").all_steps() == [1]
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
  monkeypatch.setattr(workdirs.MetricWriter, "write", write)
  pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 12, "train.checkpoint_every": 10}), tmp_path)
  assert [row["step"] for row in workdirs.read_metrics(tmp_path)] == [3, 6, 9, 12]


@pytest.mark.parametrize("override,match", [
    ({"explorer": "ddpg"}, r"config.explorer='ddpg' is invalid; valid: one of 'apt', 'gradient', 'novelty', 'random', 'static'"),
    ({"explorer": "static"}, r"config.learner.augment='add' is invalid; valid: one of 'only' when explorer='static' "
                             r"and static_views='single'"),
    ({"explorer": "static", "static_views": "latent", "learner.augment": "only"},
     r"config.learner.augment='only' is invalid; valid: one of 'none', 'add' when explorer='static' and static_views='latent'"),
    ({"explorer": "static", "static_views": "pairs", "learner.augment": "only"},
     r"config.static_views='pairs' is invalid; valid: one of 'single', 'latent'"),
    ({"explorer": "static", "static_views": "latent", "static_sigma": 0.0},
     r"config.static_sigma=0.0 is invalid; valid: > 0"),
    ({"explorer": "static", "static_views": "latent", "static_source": "digits"},
     r"config.static_source='digits' is invalid; valid: 'generator' when static_views='latent'"),
    ({"apt.k": 99}, r"config.apt.k=99 is invalid; valid: <= replay.batch_size=16"),
    ({"apt.k": 1}, r"config.apt.k=1 is invalid; valid: >= 2 \(a frame's nearest neighbour is itself"),
    ({"apt.k": 9, "apt.reference": "population"},
     r"config.apt.k=9 is invalid; valid: <= min\(log.stats_envs, num_envs\) = 8 \(the logged APT objective, and "
     r"with apt.reference='population' the reward"),
    ({"log.stats_envs": 4, "log.entropy_k": 4}, r"config.log.entropy_k=4 is invalid; valid: < min\(log.stats_envs, num_envs\) = 4"),
    ({"replay.storage": "jpeg"}, r"config.replay.storage='jpeg'"),
    ({"learner.encoder.name": "vit"}, r"config.learner.encoder.name='vit'"),
    ({"learner.dtype": "float16"}, r"config.learner.dtype='float16' is invalid; valid: one of 'float32', 'bfloat16'"),
    ({"learner.encoder.conv_grad": "fast"}, r"config.learner.encoder.conv_grad='fast' is invalid; valid: one of"),
    ({"train.warmup_steps": 1}, r"config.train.warmup_steps=1 is invalid; valid: >= the sequence length 4"),
    ({"static_source": "digits"}, r"config.static_source='digits' is invalid; valid: 'generator' when explorer='apt'"),
    ({"agent.observe": "pixels"}, r"config.agent.observe='pixels' is invalid; valid: one of 'features', 'latent', 'both'"),
    ({"apt.nstep_reward": "last"}, r"config.apt.nstep_reward='last' is invalid; valid: one of 'sum', 'first'"),
    ({"apt.scope": 5}, r"config.apt.scope=5 is invalid; valid: 0, or a divisor of replay.batch_size=16 that is >= apt.k"),
    ({"learner.negatives": 3}, r"config.learner.negatives=3 is invalid; valid: 0 or a divisor of replay.batch_size=16"),
    ({"eval.enabled": True, "eval.few_shot.shots": (0,)}, r"config.eval.few_shot.shots=\(0,\) is invalid"),
])
def test_bad_config_is_named(override, match):
  with pytest.raises(ConfigError, match=match):
    pretrain.validate(tiny_config(**override))


def test_per_env_leaves_are_split_by_their_path_not_by_a_name_inside_a_network(env):
  """The env states, observations and the replay's storage are split along their env axis; a
  network parameter that happens to be called "obs" is replicated, as are the replay's write head
  and fill flag."""
  config = tiny_config()
  world = pretrain.make_world(config, env)
  init, _, shardings = pretrain.jit_pretrain(config, world, sharding.make_mesh())
  state = jax.eval_shape(init, world, jax.random.PRNGKey(0))
  state = state.replace(learner=state.learner.replace(params={"obs": jax.ShapeDtypeStruct((8, 3), jnp.float32)}))
  specs = jax.tree.map(lambda s: s.spec, sharding.state_shardings(state, sharding.make_mesh()))
  split, rep = jax.sharding.PartitionSpec("data"), jax.sharding.PartitionSpec()
  assert specs.learner.params["obs"] == rep and specs.obs == split
  assert all(s == split for s in jax.tree.leaves(specs.env_state))
  assert {k: s for k, s in specs.buffer.experience.items()} == {k: split for k in state.buffer.experience}
  assert (specs.buffer.current_index, specs.buffer.is_full) == (rep, rep)
  assert all(s == rep for s in jax.tree.leaves((specs.agent, specs.step, specs.key)))
  assert jax.tree.structure(shardings) == jax.tree.structure(jax.eval_shape(init, world, jax.random.PRNGKey(0)))


@pytest.mark.slow  # about 60 s: two loops compiled; `make test-slow`
def test_latent_storage_gives_the_same_run_as_pixel_storage(env):
  """Same frames either way; decoding a different batch shape may move a pixel by one grey level,
  so the runs agree to float tolerance rather than bit for bit."""
  rows = {}
  for storage in ("pixels", "latents"):
    _, state, r, _ = _run_chunks(tiny_config(**{"replay.storage": storage}), env, 1)
    rows[storage] = (r[0], jax.device_get(state.learner.params))
  for key, value in rows["pixels"][0].items():
    np.testing.assert_allclose(rows["latents"][0][key], value, rtol=3e-3, atol=1e-5, err_msg=key)
  for x, y in zip(jax.tree.leaves(rows["pixels"][1]), jax.tree.leaves(rows["latents"][1])):
    np.testing.assert_allclose(x, y, rtol=1e-2, atol=1e-4)


@pytest.mark.slow  # about 45 s: ResNet-50 compile; `make test-slow`
def test_accelerator_config_builds_and_compiles_at_tiny_scale(env):
  """configs/pretrain_accelerator.py unchanged except its sizes: ResNet-50 (imagenet stem), latent
  replay, its agent at full size; lowered and compiled on CPU. A step of the compiled chunk costs
  at least its learner update (XLA counts the scanned step once)."""
  config = load_config("pretrain_accelerator", **{
      "num_envs": 8, "replay.batch_size": 16, "replay.capacity": 8, "learner.encoder.width": 4,
      "learner.head_hidden": 16, "agent.hidden": 16, "train.chunk_steps": 2, "apt.k": 4})
  assert (config.learner.encoder.name, config.replay.storage, config.obs_size) == ("resnet50", "latents", 64)
  pretrain.validate(config)
  world = pretrain.make_world(config, LatentEnv(env.generator, env.generator_params, obs_size=config.obs_size))
  init, chunk, _ = pretrain.jit_pretrain(config, world, sharding.make_mesh())
  state = jax.eval_shape(init, world, jax.random.PRNGKey(0))
  chunk_flops = chunk.lower(world, state).compile().cost_analysis()["flops"]
  parts, key = pretrain.step_parts(config, world), jax.random.PRNGKey(0)
  seq = jax.eval_shape(parts["sample"], state.buffer, key)
  learn_flops = jax.jit(parts["learn"]).lower(state.learner, seq, key).compile().cost_analysis()["flops"]
  assert chunk_flops >= learn_flops > 0


def test_resuming_with_a_different_computation_is_refused(gen_dir, tmp_path):
  pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 3}), tmp_path)
  with pytest.raises(CheckpointError, match=r"different config \(learner.lr changed\).*use a new --workdir, or add --config.train.restart=True"):
    pretrain_job.main(tiny_config(gen_dir, **{"train.steps": 6, "learner.lr": 0.5}), tmp_path)


def test_a_run_resumes_across_a_change_to_another_explorers_block_only(tmp_path):
  """The gradient explorer's block is read by gradient runs alone: an APT run's resume ignores it, a
  gradient run's does not."""
  old, new = tiny_config(explorer="apt"), tiny_config(**{"explorer": "apt", "gradient.lr": 0.5, "planner.k": 2})
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "config.json").write_text(old.to_json())
  pretrain_job.check_resumable(tmp_path, new)
  (tmp_path / "config.json").write_text(tiny_config(explorer="gradient").to_json())
  with pytest.raises(CheckpointError, match=r"different config \(gradient.lr changed\)"):
    pretrain_job.check_resumable(tmp_path, tiny_config(**{"explorer": "gradient", "gradient.lr": 0.5}))


def test_novelty_planner_picks_the_candidate_farthest_from_the_population(env):
  from palmup.apt import kth_distance
  reference = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
  candidates = np.array([[[0.1, 0.1]], [[3.0, 4.0]], [[1.0, 1.0]]])  # [K=3, N=1, D=2]
  np.testing.assert_allclose(kth_distance(candidates, reference, 1)[:, 0], [np.hypot(0.1, 0.1), np.hypot(3, 3), 1.0],
                             rtol=1e-5)
  np.testing.assert_allclose(kth_distance(candidates, reference, 3)[:, 0], [np.hypot(0.9, 0.1), 5.0, np.sqrt(2)],
                             rtol=1e-5)
  start, state, rows, _ = _run_chunks(tiny_config(explorer="novelty"), env, 2)
  assert state.agent is None and _changed(start.learner.params, state.learner.params)
  assert rows[-1]["action_std"] > 0.3  # picks among uniform candidates stay spread across envs
  with pytest.raises(ConfigError, match=r"config.planner.k=9 is invalid; valid: in \[1, num_envs=8\]"):
    pretrain.validate(tiny_config(**{"explorer": "novelty", "planner.k": 9}))


def _sampled_and_learned(config, env):
  """(step parts, initial state, key, a sampled batch, the learner's encoded features of it)."""
  pretrain.validate(config)
  world = pretrain.make_world(config, env)
  parts = pretrain.step_parts(config, world)
  init, _ = pretrain.make_pretrain(config)
  state = jax.jit(init)(world, jax.random.PRNGKey(0))
  key = jax.random.PRNGKey(1)
  seq = jax.jit(parts["sample"])(state.buffer, key)
  _, _, _, encoded = jax.jit(parts["learn"])(state.learner, seq, key)
  return parts, state, key, seq, encoded


@pytest.mark.parametrize("reference,nstep_reward", [  # the default suite keeps one; `make test-slow` all
    ("batch", "sum"), pytest.param("population", "sum", marks=pytest.mark.slow),
    pytest.param("batch", "first", marks=pytest.mark.slow)])
def test_agent_update_reusing_the_learners_features_equals_encoding_every_frame(env, reference, nstep_reward):
  """Encode once: the agent update fed the learner's features of frames 0 and pair_offset gives the
  same rewards, targets, losses and new agent state as one that encodes every frame itself. The
  features differ by float rounding only (about 1e-7: another batch, inside the learner's grad); the
  batch reward's kNN distances take a square root near 0 (a frame's distance to itself and to
  replayed duplicates), which lifts that to about 1e-4 relative, hence its looser tolerance."""
  config = tiny_config(**{"apt.reference": reference, "apt.nstep_reward": nstep_reward, "learner.pair_offset": 1,
                          "learner.augment": "none"})  # augmented views are not the frames: nothing to reuse
  parts, state, key, seq, encoded = _sampled_and_learned(config, env)
  assert sorted(encoded) == [0, 1]
  update = jax.jit(parts["agent_update"])
  reused = update(state.agent, state.learner.params, seq, key, state.step, encoded)
  alone = update(state.agent, state.learner.params, seq, key, state.step, {})
  rtol = 1e-5 if reference == "population" else 1e-3 if nstep_reward == "sum" else 2e-3  # "first": 1 reward, not 3
  for name in ("intrinsic_reward", "q_target", "critic_loss", "actor_loss"):
    np.testing.assert_allclose(reused[1][name], alone[1][name], rtol=rtol, atol=1e-6, err_msg=name)
  # Adam's first step moves each weight by about lr * sign(gradient): a gradient element near 0 whose
  # float noise flips its sign moves that weight up to 2 lr the other way.
  lr = config.agent.lr
  for net in ("actor", "critic", "actor_target", "critic_target"):
    for x, y in zip(jax.tree.leaves(getattr(reused[0], net)), jax.tree.leaves(getattr(alone[0], net))):
      np.testing.assert_allclose(x, y, rtol=0, atol=2.5 * lr, err_msg=net)


@pytest.mark.parametrize("augment", [pytest.param("none", marks=pytest.mark.slow), "add"])
def test_first_nstep_reward_with_pairs_n_apart_encodes_no_frame_in_the_agent_update(env, augment):
  """URLB's one reward of frame 0, learner pairs (0, n): the learner has encoded every frame the
  agent update reads (with augment="add", their augmented views, which the agent then trains on), so
  it reads no pixels: blanking them changes nothing (benchmarks/step_flops.py counts what that saves)."""
  n = 3
  config = tiny_config(**{"apt.nstep_reward": "first", "agent.nstep": n, "learner.pair_offset": n,
                          "learner.augment": augment})
  parts, state, key, seq, encoded = _sampled_and_learned(config, env)
  update = jax.jit(parts["agent_update"])
  args = (state.agent, state.learner.params, seq, key, state.step, encoded)
  blank = seq.replace(obs=jnp.zeros_like(seq.obs))
  seen, blanked = update(*args), update(state.agent, state.learner.params, blank, key, state.step, encoded)
  for x, y in zip(jax.tree.leaves(seen), jax.tree.leaves(blanked)):
    np.testing.assert_array_equal(x, y)
  encoding = update(state.agent, state.learner.params, blank, key, state.step, {})  # it must encode 0 and n
  assert not np.allclose(encoding[1]["q_target"], seen[1]["q_target"])


def test_with_augmentation_the_agent_update_encodes_augmented_frames(env):
  """learner.augment="add": the frames the agent update encodes itself (frame n) are augmented as
  the learner's reused views are; "none": the raw frames. Same sample, key and parameters."""
  n = 3
  runs = {}
  for augment in ("none", "add"):
    config = tiny_config(**{"apt.nstep_reward": "first", "agent.nstep": n, "learner.pair_offset": 1,
                            "learner.augment": augment})
    parts, state, key, seq, encoded = _sampled_and_learned(config, env)
    assert sorted(encoded) == [0, 1]
    same_frame_0 = {0: runs["none"][1][0]} if runs else {0: encoded[0]}  # frame 0's features held fixed
    runs[augment] = (jax.jit(parts["agent_update"])(state.agent, state.learner.params, seq, key, state.step,
                                                     same_frame_0), encoded, seq.obs)
  (none, enc_none, obs_none), (add, enc_add, obs_add) = runs["none"], runs["add"]
  np.testing.assert_array_equal(obs_none, obs_add)  # the same sample
  assert not np.allclose(enc_none[1], enc_add[1], atol=1e-4)  # the learner's views: raw vs augmented
  assert not np.allclose(none[1]["q_target"], add[1]["q_target"], atol=1e-5)  # frame n: raw vs augmented


def test_a_run_made_before_a_key_was_added_resumes_as_if_it_had_its_neutral_value(tmp_path):
  """A config.json without apt.scope and learner.negatives (written before they existed) reads as
  having them at 0, what such a run computed; any other value of them is a change."""
  config = tiny_config()
  saved = json.loads(config.to_json_best_effort())
  del saved["apt"]["scope"], saved["learner"]["negatives"]
  (tmp_path / "config.json").write_text(json.dumps(saved))
  assert pretrain_job.config_changes(tmp_path, config) == {}
  assert pretrain_job.config_changes(tmp_path, tiny_config(**{"apt.scope": 8})) == {"apt.scope": (0, 8)}
