"""The table scripts (experiments/t1, t3, t4) end to end at --scale tiny: they run the real
pretraining and probes on toy sizes and write their tables and plots."""
import importlib
import json
import sys

import numpy as np
import pytest

from palmup import configs, workdirs

sys.path.insert(0, str(configs.ROOT / "experiments"))


def _main(monkeypatch, script, *args):
  module = importlib.import_module(script)
  monkeypatch.setattr(sys, "argv", [f"{script}.py", *args])
  module.main()
  return module


@pytest.fixture(scope="module")
def t1_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("t1")
  with pytest.MonkeyPatch.context() as mp:
    _main(mp, "t1_vision_transfer", "--workdir", str(path), "--scale", "tiny")
  return path


@pytest.mark.slow  # T1 at tiny scale: 13 pretraining runs and their probes, minutes; `make test-slow`
def test_t1_writes_a_row_per_method_and_a_plot(t1_dir):
  text = (t1_dir / "results.md").read_text()
  for method in ("palm", "random_actions", "palm_aug", "genrep_latent_s0.1", "genrep_latent_noaug", "genrep_single",
                 "simclr_real", "random_encoder", "raw_pixels"):
    assert f"| {method} |" in text
  sigma = json.loads((t1_dir / "results.json").read_text())["best_sigma"]
  assert sigma in (0.1, 0.2, 0.4) and f"| genrep_latent_s{sigma} vs |" in text
  assert not any("raw_pixels" in p.name for p in t1_dir.iterdir())  # the pixel floor pretrains nothing
  assert "| palm vs |" in text and "| raw_pixels | - | - |" in text  # one seed at tiny scale: no test
  assert "Commit:" in text and "Wall time:" in text and (t1_dir / "t1_vision_transfer.png").stat().st_size > 5000
  results = json.loads((t1_dir / "results.json").read_text())["results"]
  for method, by_dataset in results.items():
    linear = by_dataset["digits"]["linear"]
    assert len(linear) == 1 and 0.1 < linear[0] <= 1.0, (method, linear)
    assert f"{100 * linear[0]:.1f} +- n/a" in text
  assert results["raw_pixels"]["digits"]["linear"][0] > 0.8
  for method in results:  # the verdict on the pixel floor follows the numbers
    below = results[method]["digits"]["linear"][0] <= results["raw_pixels"]["digits"]["linear"][0]
    assert (f"{method} on digits does not beat raw pixels on logistic" in text) == (below and method != "raw_pixels")
  # each method trained its own encoder: the probes differ somewhere
  assert len({tuple(r["digits"]["few_shot"]) for r in results.values()}) > 1


@pytest.mark.slow  # uses T1's tiny runs; `make test-slow`
def test_finished_runs_are_skipped(t1_dir, monkeypatch):
  common = importlib.import_module("common")
  monkeypatch.setattr(common.pretrain_job, "main", lambda *a: pytest.fail("a finished run was rerun"))
  assert common.encoder_at(t1_dir / "palm_seed0", "tiny", {"explorer": "apt"}, 0, 6) == t1_dir / "palm_seed0" / "encoder_6"
  with pytest.raises(SystemExit, match="ran 6 steps without keeping encoder_3/"):  # a finished run cannot go back
    common.encoder_at(t1_dir / "palm_seed0", "tiny", {"explorer": "apt"}, 0, 3)


@pytest.mark.slow  # uses T1's tiny runs; `make test-slow`
def test_t4_tabulates_judge_metrics_of_apt_and_random_actions_from_t1(t1_dir, tmp_path, monkeypatch):
  t4 = _main(monkeypatch, "t4_exploration", "--workdir", str(tmp_path), "--from-t1", str(t1_dir))
  text = (tmp_path / "results.md").read_text()
  assert (tmp_path / "t4_0.png").stat().st_size > 5000
  rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[4:-1]]
          for line in text.splitlines() if line.startswith("| T1 |")}
  assert set(rows) == {"palm", "random_actions"}
  col = {m: i for i, m in enumerate(t4.METRICS)}
  for explorer, cells in rows.items():  # one seed: plain numbers, no spread
    assert float(cells[col["judge_entropy"]]) == float(cells[col["judge_entropy"]])  # a number, not "-"
    assert 0 <= float(cells[col["judge_coverage"]]) <= 1
  assert rows["random_actions"][col["policy_std"]] == "-" and float(rows["palm"][col["policy_std"]]) >= 0
  assert rows["palm"][-2:] == ["-", "-"]  # one seed: no gap, no test
  _main(monkeypatch, "t4_exploration", "--workdir", str(tmp_path / "windows"), "--from-t1", str(t1_dir),
        "--windows", "3", "6")
  text = (tmp_path / "windows" / "results.md").read_text()
  assert "| T1, steps 0-3 | palm |" in text and "| T1, steps 3-6 | random_actions |" in text


def test_t1_takes_kept_cells_as_they_are_and_pretrains_only_the_methods_named(tmp_path, monkeypatch):
  common, t1 = importlib.import_module("common"), importlib.import_module("t1_vision_transfer")
  cells = lambda v: {"digits": {"linear": [v], "few_shot": [v - 0.1]}}
  kept = {"palm": cells(0.9), "random_actions": cells(0.8), "random_encoder": cells(0.7), "raw_pixels": cells(0.95)}
  monkeypatch.setattr(common, "probed", lambda *a: pytest.fail("a kept cell was probed again"))
  ran = []
  monkeypatch.setattr(common, "encoder_at", lambda path, *a: ran.append(path.name) or pytest.fail(f"pretrained {path.name}"))
  results, _, sigma = t1.run(tmp_path, "tiny", methods=["palm", "random_actions"], kept=kept)
  assert not ran and sigma is None  # the sweep holds no cells: no best sigma, no genrep_latent_noaug
  for method, by_dataset in kept.items():
    assert results[method] == by_dataset
  assert all(not results[m]["digits"]["linear"] for m in results if m not in kept)
  with pytest.raises(pytest.fail.Exception, match="pretrained palm_aug_seed0"):  # named and not kept: it runs
    t1.run(tmp_path, "tiny", methods=["palm_aug"], kept=kept)


def test_t4_names_a_t1_dir_without_runs(tmp_path, monkeypatch):
  with pytest.raises(SystemExit, match="holds no random_actions, palm runs"):
    _main(monkeypatch, "t4_exploration", "--workdir", str(tmp_path / "t4"), "--from-t1", str(tmp_path))


@pytest.mark.slow  # about 1-2 min: four tiny pretraining runs; `make test-slow`
def test_t5_extends_one_run_budget_by_budget_and_probes_each(tmp_path, monkeypatch):
  _main(monkeypatch, "t5_budget_curve", "--workdir", str(tmp_path), "--scale", "tiny")
  results = json.loads((tmp_path / "results.json").read_text())
  for method in ("palm", "simclr_real"):
    assert sorted((tmp_path / f"{method}_seed0").glob("encoder_*")) == [tmp_path / f"{method}_seed0" / f"encoder_{b}"
                                                                        for b in (3, 6)]
    for budget in ("3", "6"):
      assert 0.1 < results["results"][method][budget]["linear"][0] <= 1.0
  steps = [row["step"] for row in workdirs.read_metrics(tmp_path / "palm_seed0")]
  assert steps == [3, 6]  # the second budget resumed the first: one row per chunk, none redone
  assert results["floors"]["raw_pixels"]["linear"] > 0.8
  assert "| palm | 6 |" in (tmp_path / "results.md").read_text() and (tmp_path / "t5_budget_curve.png").exists()
  _main(monkeypatch, "t5_budget_curve", "--workdir", str(tmp_path), "--scale", "tiny", "--seeds", "2",
        "--max-steps", "3")
  assert not (tmp_path / "palm_seed1" / "encoder_6").exists() and (tmp_path / "palm_seed1" / "encoder_3").exists()
  results = json.loads((tmp_path / "results.json").read_text())["results"]["palm"]
  assert len(results["3"]["linear"]) == 2 and len(results["6"]["linear"]) == 1  # seed 0's 6 steps kept in the table
  assert "(1/2 seeds)" in (tmp_path / "results.md").read_text()


@pytest.mark.slow  # about 90 s; `make test-slow`
def test_t3_vmapped_statistics_and_sweep(tmp_path, monkeypatch):
  t3 = _main(monkeypatch, "t3_dynamics_ablations", "--workdir", str(tmp_path), "--scale", "tiny")
  rows = json.loads((tmp_path / "results.json").read_text())["rows"]
  assert len(rows) == 1 + sum(len(v) - 1 for v in t3.SWEEP.values())  # the default once, then each change
  by_name = {(r["field"], r["value"]): r for r in rows}
  default = by_name[("default", None)]
  # the dynamics behave as the formula says: more persistence, less change between frames
  assert by_name[("ema", 0.99)]["frame_change"] < default["frame_change"] < by_name[("ema", 0.0)]["frame_change"]
  assert by_name[("noise_scale", 0.5)]["latent_norm"] < default["latent_norm"] < by_name[("noise_scale", 2.0)]["latent_norm"]
  assert default["same_class"] == 1.0
  swept = json.loads((tmp_path / "sweep" / "results.json").read_text())
  assert list(swept["members"]) == ["base", "env.ema=0.5"]
  assert 0.1 < swept["members"]["base"]["summary"]["digits linear"]["mean"] <= 1.0
  text = (tmp_path / "results.md").read_text()
  assert "| default |" in text and "| env.ema=0.5 |" in text and "(sweep/env.ema.png)" in text
  assert (tmp_path / "t3_dynamics_ablations.png").exists() and (tmp_path / "sweep" / "env.ema.png").exists()
  (tmp_path / "results.md").unlink()
  _main(monkeypatch, "t3_dynamics_ablations", "--workdir", str(tmp_path), "--scale", "tiny", "--table-only")
  assert "Holm-adjusted over the sweep's" in (tmp_path / "results.md").read_text()  # again from the two results.json


def test_t1_tests_each_comparison_paired_and_holm_corrected_over_its_probes():
  t1 = importlib.import_module("t1_vision_transfer")
  stats = importlib.import_module("palmup.stats")
  rng = np.random.default_rng(0)
  ref = {d: {"linear": list(0.8 + rng.normal(0, 0.01, 3)), "few_shot": list(0.6 + rng.normal(0, 0.02, 3))}
         for d in ("a", "b")}
  other = {d: {k: list(np.asarray(v) - 0.02 + rng.normal(0, 0.005, 3)) for k, v in by_k.items()} for d, by_k in ref.items()}
  pixels = {d: {"linear": [0.79], "few_shot": [0.55]} for d in ref}
  text = t1.tests_against({"palm": ref, "other": other, "raw_pixels": pixels}, "10", "palm")
  rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in text.splitlines()[2:]}
  order = [("a", "linear"), ("a", "few_shot"), ("b", "linear"), ("b", "few_shot")]
  paired = [stats.paired_p(ref[d][k], other[d][k]) for d, k in order]
  one_sample = [stats.one_sample_p(ref[d][k], pixels[d][k][0]) for d, k in order]
  for name, ps in (("other", paired), ("raw_pixels", one_sample)):
    for cell, p, h in zip(rows[name], ps, stats.holm(ps)):
      assert f"(p {p:.3f}, Holm {h:.3f}, detectable " in cell


@pytest.mark.slow  # about 20 s: T3's statistics; `make test-slow`
def test_vmapped_statistics_equal_one_setting_at_a_time(tiny_gen):
  t3 = importlib.import_module("t3_dynamics_ablations")
  import jax
  from palmup.env import EnvParams, LatentEnv
  env = LatentEnv(*tiny_gen, obs_size=8)
  points = [("default", None, EnvParams(ema=0.7)), ("ema", 0.9, EnvParams(ema=0.9))]
  batched = t3.all_statistics(env, points, num_envs=6, steps=3)
  for (_, _, params), stats in zip(points, batched):
    single = jax.device_get(t3.dynamics_statistics(env, params, jax.random.PRNGKey(0), 6, 3))
    for key, value in stats.items():
      assert abs(float(single[key]) - value) < 1e-4 * max(1.0, abs(value)), key


def test_t4_headroom_selectors_pick_what_they_say():
  t4h = importlib.import_module("t4_headroom")
  import jax.numpy as jnp
  features = jnp.array([[[0.0, 0.0], [5.0, 5.0]], [[0.1, 0.0], [3.0, -4.0]], [[0.0, 0.2], [9.0, 9.0]]])  # [N=3, P=2, F=2]
  picked = t4h.greedy_pick(features)
  assert picked.tolist() == [[0.0, 0.0], [3.0, -4.0], [9.0, 9.0]]  # env 0 its first; then the farthest from those picked
  assert t4h.greedy_pick(features[:, :1]).tolist() == features[:, 0].tolist()  # P = 1: the i.i.d. frames
  reference = jnp.array([[0.0, 0.0], [0.0, 0.1], [0.1, 0.0], [0.1, 0.1]])
  rare = t4h.rarest_pick(features, reference)
  assert rare.tolist() == [[5.0, 5.0], [3.0, -4.0], [9.0, 9.0]]  # each env alone: its candidate farthest from the reference


@pytest.mark.slow  # about 15 s; `make test-slow`
def test_t4_headroom_tiny_table(tmp_path, monkeypatch):
  _main(monkeypatch, "t4_headroom", "--workdir", str(tmp_path), "--scale", "tiny")
  per_seed = json.loads((tmp_path / "results.json").read_text())["per_seed"]
  assert per_seed["coordinated/1"] == per_seed["independent/1"] and len(per_seed) == 4
  assert "| 4 |" in (tmp_path / "results.md").read_text()


def test_t4_controllability_splits_novelty_into_state_action_and_noise():
  ctl = importlib.import_module("t4_controllability")
  import numpy as np
  rng = np.random.default_rng(0)
  n, a, e = 400, 8, 8
  state, action, noise = rng.normal(0, 2.0, (n, 1, 1)), rng.normal(0, 1.0, (n, a, 1)), rng.normal(0, 1.0, (n, a, e))
  shares = ctl.decompose(state + action + noise)
  for name, expected in (("state", 4 / 6), ("action", 1 / 6), ("noise", 1 / 6)):
    assert abs(shares[name] - expected) < 0.03, (name, shares)
  assert shares["gain"] > 0.7  # the best of 8 actions, picked on 4 noisy draws: about 0.9 within-state stds
  blind = ctl.decompose(state + noise + 0.0 * action)  # actions change nothing
  assert blind["action"] < 0.01 and abs(blind["gain"]) < 0.05  # cross-fitted: noise alone gains nothing


@pytest.mark.slow  # about 2 min (compiles per setting); `make test-slow`
def test_t4_controllability_tiny_table(tmp_path, monkeypatch):
  ctl = _main(monkeypatch, "t4_controllability", "--workdir", str(tmp_path), "--scale", "tiny")
  results = json.loads((tmp_path / "results.json").read_text())
  assert list(results) == list(ctl.SETTINGS)
  no_noise = results["action_weight 1.0 (no noise)"][0]["judge"]
  assert no_noise["noise"] < 1e-6  # no fresh latent: the action and the state decide everything
  for seeds in results.values():
    shares = seeds[0]["judge"]
    assert abs(shares["state"] + shares["action"] + shares["noise"] - 1.0) < 1e-6
  assert "| ema 0.9 | judge |" in (tmp_path / "results.md").read_text()


def test_a_run_stopped_before_its_budget_says_how_to_resume(tmp_path, monkeypatch):
  common = importlib.import_module("common")
  monkeypatch.setattr(common.pretrain_job, "main", lambda config, workdir: None)  # as after a SIGTERM: no encoder/
  with pytest.raises(SystemExit, match="stopped before 6 steps; rerun the same command to resume it"):
    common.encoder_at(tmp_path / "palm_seed0", "tiny", {"explorer": "apt"}, 0, 6)


def test_t1_pixel_verdicts_compare_only_cells_probed_beside_the_pixels():
  t1 = importlib.import_module("t1_vision_transfer")
  cells = lambda *v: {"digits": {"linear": list(v), "few_shot": list(v)}}
  results = {"palm": cells(0.9, 0.92), "random_encoder": cells(), "raw_pixels": cells()}
  assert t1.pixel_verdicts(results, "10").startswith("Raw pixels are not probed beside any method yet")
  results["raw_pixels"] = cells(0.95)
  verdicts = t1.pixel_verdicts(results, "10")
  assert "palm on digits" in verdicts and "random_encoder" not in verdicts  # below pixels; never probed
  results["raw_pixels"] = cells(0.5)
  assert t1.pixel_verdicts(results, "10") == "Every method probed beats raw pixels on every probe and dataset."


@pytest.mark.slow  # about 3 min: two tiny pretraining runs and the diagnosis of one; `make test-slow`
def test_t4_budget_reads_windows_of_agent_updates_and_the_diagnosis_reads_its_apt_run(tmp_path, monkeypatch):
  budget = _main(monkeypatch, "t4_budget", "--workdir", str(tmp_path), "--scale", "tiny", "--variants",
                 "random_actions", "apt_default")
  assert budget.windows((4, 8), 2) == {"4": (1, 2), "8": (2, 4)}
  text = (tmp_path / "results.md").read_text()
  rows = [line for line in text.splitlines() if line.startswith("| 8 |")]
  assert [r.split(" | ")[2:4] for r in rows] == [["random_actions", "1"], ["apt", "0"], ["apt_default", "1"]]
  assert (tmp_path / "t4_budget.png").stat().st_size > 5000
  _main(monkeypatch, "t4_diagnosis", "--workdir", str(tmp_path / "diagnosis"), "--scale", "tiny",
        str(tmp_path / "apt_default_seed0"))
  result = json.loads((tmp_path / "diagnosis" / "results.json").read_text())[0]
  shares = [result["reward"][k] for k in ("state", "action", "noise")]
  np.testing.assert_allclose(sum(shares), 1.0, rtol=1e-6)
  assert result["updates"] == 8 and -1 <= result["critic_vs_true_cosine"] <= 1 and result["sac"]["alpha"] > 0
