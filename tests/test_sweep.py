"""`palmup sweep` and populations: members and their validation, a population of runs equal to the
same runs alone (resumed too), and a tiny sweep end to end (resume, tables, plots, report, SLURM)."""
import json
import subprocess
import sys
import types
from pathlib import Path

import jax
import numpy as np
import pytest

from palmup import configs, pretrain_job, report, sharding, stats, sweep, workdirs
from palmup.errors import UserError

HERE = Path(__file__).parent
TINY_PROBE = {"probe.train_examples": 300, "probe.random_seeds": 1, "probe.logistic.steps": 20,
              "probe.few_shot.shots": (1, 5), "probe.few_shot.seeds": 2, "shots": 5, "datasets": "digits"}


def sweep_config(**overrides):
  return configs.load("sweep", **{"base": "pretrain_tiny", "overrides": "", **TINY_PROBE, **overrides})


def test_members_one_at_a_time_and_grid():
  config = sweep_config(axes="env.ema=0.5,0.7,0.9;env.action_weight=0,0.5")
  names = [m.name for m in sweep.members(config)]
  assert names == ["base", "env.ema=0.5", "env.ema=0.9", "env.action_weight=0"]  # 0.7 and 0.5: the base's
  config = sweep_config(axes="env.ema=0.5,0.7;env.action_weight=0,0.5", design="grid")
  assert [m.overrides for m in sweep.members(config)][1:] == [
      {"env.ema": 0.5, "env.action_weight": 0}, {"env.ema": 0.5, "env.action_weight": 0.5},
      {"env.ema": 0.7, "env.action_weight": 0}]
  assert sorted([0.7, 0, 0.5, 0.99, 1], key=sweep.value_order) == [0, 0.5, 0.7, 0.99, 1]  # a plot's x order
  assert sorted(["b", True, 0.5, False], key=sweep.value_order) == [False, 0.5, True, "b"]
  assert [(m.name, s) for m, s in sweep.run_order(sweep_config(axes="env.ema=0.5", seeds=2))] == [
      ("base", 0), ("env.ema=0.5", 0), ("base", 1), ("env.ema=0.5", 1)]


@pytest.mark.parametrize("overrides,words", [
    ({"axes": "env.nothing=1"}, "env.nothing"),
    ({"axes": "env.ema=0.5", "base": "configs/nope.py"}, "config 'configs/nope.py' is not a file"),
    ({"axes": "env.ema=1.5"}, "member env.ema=1.5: config.env.ema=1.5 is invalid"),
    ({"axes": "env.ema"}, "config.axes: 'env.ema' is invalid"),
    ({"axes": "env.ema=0.5", "design": "random"}, "config.design='random' is invalid"),
    ({"axes": "env.ema=0.5", "shots": 10}, "config.shots=10 is invalid"),
    ({"axes": "env.ema=0.5", "datasets": "imagenet"}, "config.datasets='imagenet' is invalid"),
])
def test_a_bad_axis_or_value_stops_the_sweep_before_any_run_naming_it(overrides, words, tmp_path):
  with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
    sweep.main(sweep_config(**overrides), tmp_path)
  assert not any(p.name.endswith("_seed0") for p in tmp_path.iterdir())


def _final(run):
  from palmup.learner import load_encoder
  rows = workdirs.read_metrics(run)
  return load_encoder(run / "encoder")[1], rows


def population_then_alone(workdir):
  """Two runs that differ in env.ema and seed, as one population stopped after 3 steps and resumed
  to 6 (in workdir/pop0, pop1), and the second run alone for 6 steps (alone1): the member that is
  neither the first on the mesh nor the base's seed."""
  runs = [configs.load("pretrain_tiny", **{"env.ema": ema, "seed": seed}) for ema, seed in ((0.7, 0), (0.3, 5))]
  for steps in (3, 6):
    for config in runs:
      config.train.steps = steps
    pretrain_job.train([(c, workdir / f"pop{i}") for i, c in enumerate(runs)])
  pretrain_job.main(runs[1], workdir / "alone1")


@pytest.mark.slow  # about 130 s; `make test-slow` (the default suite runs a population in test_stylegan2ada's sweep)
def test_a_resumed_population_on_a_mesh_equals_its_runs_alone(tmp_path):
  """population_then_alone on 4 devices: the population's mesh is 2 groups of 2 devices, a member
  per group with its envs split over the group's 2; the run alone splits its envs over all 4. The
  same encoder and metrics, to float tolerance (vmapping and the splits reorder float reductions),
  and the two members differ."""
  env = {**sharding.local_processes_env(1, 4)[0], "PYTHONPATH": str(HERE)}
  subprocess.run([sys.executable, "-c", f"import test_sweep; test_sweep.population_then_alone("
                  f"__import__('pathlib').Path({str(tmp_path)!r}))"], env=env, check=True, timeout=600, cwd=HERE.parent)
  (pop_params, pop_rows), (alone_params, alone_rows) = _final(tmp_path / "pop1"), _final(tmp_path / "alone1")
  for x, y in zip(jax.tree.leaves(pop_params), jax.tree.leaves(alone_params)):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
  assert [r["step"] for r in pop_rows] == [r["step"] for r in alone_rows] == [3, 6]
  for a, b in zip(pop_rows, alone_rows):
    for key in ("ntxent", "latent_norm", "knn_entropy", "critic_loss"):
      np.testing.assert_allclose(a[key], b[key], rtol=1e-3, atol=1e-5, err_msg=key)
  assert not np.allclose(_final(tmp_path / "pop0")[1][-1]["latent_norm"], _final(tmp_path / "pop1")[1][-1]["latent_norm"])


def test_a_population_refuses_runs_that_differ_in_more_than_env_params(tmp_path):
  runs = [configs.load("pretrain_tiny"), configs.load("pretrain_tiny", **{"learner.lr": 0.01})]
  with pytest.raises(UserError, match="learner.lr"):
    pretrain_job.train([(c, tmp_path / f"run{i}") for i, c in enumerate(runs)])


def test_a_tiny_sweep_runs_resumes_tabulates_plots_and_reports(tmp_path):
  config = sweep_config(axes="env.ema=0.5", seeds=2, **{"population.enabled": "auto", "population.size": 2})
  lines = []
  assert sweep.run_all(config, workdirs.create(tmp_path), log=lines.append)
  assert lines[0].startswith("palmup sweep: [2/4] base seed 0, env.ema=0.5 seed 0: pretraining as one population")
  sweep.main(config, tmp_path)  # every run finished: probes and tables only
  results = json.loads((tmp_path / "results.json").read_text())
  assert list(results["members"]) == ["base", "env.ema=0.5"]
  values = results["members"]["env.ema=0.5"]["values"]
  assert set(values) == {"digits linear", "digits 5-shot", "judge_entropy", "judge_coverage"}
  assert all(len(v) == 2 and all(np.isfinite(v)) for v in values.values())
  summary = results["members"]["env.ema=0.5"]["summary"]["digits linear"]
  assert summary["mean"] == pytest.approx(np.mean(values["digits linear"])) and 0 <= summary["p_vs_base"] <= 1
  text = (tmp_path / "results.md").read_text()
  assert "| env.ema=0.5 |" in text and "| raw pixels |" in text and (tmp_path / "env.ema.png").exists()
  assert "| env.ema | digits linear |" in text and "| floor | digits linear |" in text  # tables named for docs.py
  page = report.build_report(report.discover(tmp_path))
  assert "env.ema.png" in page and "env.ema=0.5_seed1" in page


def test_slurm_target_writes_one_array_task_per_run_with_the_configs_resources(tmp_path):
  sweep.main(sweep_config(axes="env.ema=0.5,0.9", seeds=2, target="slurm", **{"slurm.partition": "gpu"}), tmp_path)
  text = (tmp_path / "sweep.sbatch").read_text()
  assert "#SBATCH --array=0-5" in text and text.count("palmup pretrain --config") == 6
  for line in ("--time=4:00:00", "--cpus-per-task=8", "--gpus-per-task=1", "--partition=gpu"):
    assert f"#SBATCH {line}\n" in text
  assert "--mem" not in text  # "": the cluster's default
  assert "--config.env.ema=0.9 --config.eval.enabled=False --config.seed=1" in text
  out = subprocess.run(["bash", "-n", str(tmp_path / "sweep.sbatch")], capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  with pytest.raises(UserError, match=r"config.slurm.time='4h' is invalid; valid: SLURM's"):
    sweep.validate(sweep_config(**{"slurm.time": "4h"}))


def fake_finished_runs(config, workdir):
  """Every run of the sweep as if finished under `config`: its config.json and an encoder spec."""
  for member, seed in sweep.run_order(config):
    run = workdir / member.run(seed)
    workdirs.prepare(run, sweep.member_config(config, member, seed))
    (run / "encoder").mkdir()
    (run / "encoder" / "learner.json").write_text("{}")


def test_slurm_target_with_every_run_finished_writes_no_empty_array(tmp_path, capsys):
  config = sweep_config(axes="env.ema=0.5", seeds=1, target="slurm")
  fake_finished_runs(config, tmp_path)
  sweep.main(config, tmp_path)
  assert not (tmp_path / "sweep.sbatch").exists()
  assert "every run has finished, nothing to submit" in capsys.readouterr().out


def test_a_rerun_under_another_member_config_names_the_stale_run(tmp_path):
  """Runs that finished at train.steps=6 are not taken as the results of a sweep at 600."""
  short = sweep_config(axes="env.ema=0.5", seeds=2, overrides="train.steps=6")
  fake_finished_runs(short, tmp_path)
  workdirs.write_config(tmp_path, short)
  sweep.check_not_stale(short, tmp_path)  # the same config: nothing stale
  sweep.check_not_stale(sweep_config(axes="env.ema=0.5", seeds=2, overrides="train.steps=6;train.checkpoint_every=9"),
                        tmp_path)  # bookkeeping only
  longer = sweep_config(axes="env.ema=0.5", seeds=2, overrides="train.steps=600")
  with pytest.raises(UserError, match=r"member base seed 0: its finished run .*base_seed0 ran with another config "
                                      r"\(train.steps: 6 -> 600\); move or delete .* to run it again"):
    sweep.main(longer, tmp_path)
  assert json.loads((tmp_path / "config.json").read_text())["overrides"] == "train.steps=6"  # not overwritten


def test_probe_caches_are_redone_when_what_makes_a_probe_changes(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(sweep.learner_lib, "load_encoder", lambda path: (types.SimpleNamespace(features=None), None, None))
  monkeypatch.setattr(sweep.evaluate, "evaluate_encoder", lambda *a, **k: calls.append(a[3]) or {
      "test_accuracy": 0.5, "few_shot": {"5": {"mean": 0.4}, "10": {"mean": 0.45}}})
  config = sweep_config()
  assert sweep.probe_run(config, tmp_path) == {"digits linear": 0.5, "digits 5-shot": 0.4}
  sweep.probe_run(config, tmp_path)
  assert calls == ["digits"]  # cached
  assert sweep.probe_run(sweep_config(shots=10, **{"probe.few_shot.shots": (5, 10)}), tmp_path) == {
      "digits linear": 0.5, "digits 10-shot": 0.45}
  sweep.probe_run(sweep_config(**{"probe.logistic.steps": 30}), tmp_path)
  assert calls == ["digits"] * 3



def test_each_member_is_judged_against_the_base_dataset_by_dataset():
  """Wins and losses at Holm-adjusted p < 0.05, a dataset lost when any probe on it is significantly
  below, the rest "not detected" with what could have been seen, and the defaults rule (2 wins, no
  loss) named. The raw p of "mixed"'s c linear is below 0.05 but its Holm p is not."""
  s = lambda mean, p, holm: {"mean": mean, "ci95": 0.01, "p_vs_base": p, "p_holm": holm, "detectable": 0.031}
  base = {q: s(0.8, None, None) for q in ("a linear", "a 10-shot", "b linear", "b 10-shot", "c linear", "judge_entropy")}
  members = {
      "better": {"a linear": s(0.9, 0.001, 0.01), "a 10-shot": s(0.7, 0.5, 1.0), "b linear": s(0.85, 0.004, 0.04),
                 "b 10-shot": s(0.8, 1.0, 1.0), "c linear": s(0.7, 0.2, 1.0), "judge_entropy": s(1.0, 0.001, 0.001)},
      "mixed": {"a linear": s(0.9, 0.001, 0.01), "a 10-shot": s(0.7, 0.001, 0.01), "b linear": s(0.9, 0.001, 0.01),
                "b 10-shot": s(0.9, 0.2, 1.0), "c linear": s(0.7, 0.01, 0.09), "judge_entropy": s(0.5, 0.001, 0.001)},
  }
  results = {"members": {"base": {"summary": base}, **{k: {"summary": v} for k, v in members.items()}},
             "families": {"probes": 10, "metrics": 2}}
  assert sweep.against_base(results) == {"better": {"wins": ["a", "b"], "losses": [], "not_detected": ["c"]},
                                         "mixed": {"wins": ["b"], "losses": ["a"], "not_detected": ["c"]}}
  text = sweep.verdicts(results)
  assert ("- better: above the base on a, b, below it on no dataset; not detected on c (detectable: 3.1 points) "
          "(the defaults rule: make it the default)") in text
  assert "- mixed: above the base on b, below it on a; not detected on c (detectable: 3.1 points)\n" in text
  assert "Holm-adjusted over the sweep's 10 probe tests" in text


def test_summaries_pair_seeds_and_correct_over_each_family():
  """summarize() works from the values alone: paired p against the base, Holm over the probe family
  and over the metric family separately, and the detectable difference at alpha / family size."""
  rng = np.random.default_rng(0)
  seeds = rng.normal(0, 0.05, 3)  # a seed effect every member shares
  base = {"d linear": list(0.8 + seeds), "d 5-shot": list(0.6 + seeds), "judge_entropy": list(90 + 10 * seeds)}
  shifted = {q: list(np.asarray(v) + [0.02, 0.03, 0.025]) for q, v in base.items()}
  results = {"members": {"base": {"values": base}, "m1": {"values": shifted}, "m2": {"values": dict(base)}}}
  results["members"]["m2"]["values"]["d linear"] = list(np.asarray(base["d linear"]) + [0.01, -0.02, 0.015])
  out = sweep.summarize(results)
  assert out["families"] == {"probes": 3, "metrics": 1}  # m2's unchanged d 5-shot has no spread: untestable
  m1 = out["members"]["m1"]["summary"]
  probes = [("m1", "d linear"), ("m1", "d 5-shot"), ("m2", "d linear")]
  raw = [stats.paired_p(out["members"][m]["values"][q], base[q]) for m, q in probes]
  assert m1["d linear"]["p_vs_base"] == pytest.approx(raw[0])
  assert [out["members"][m]["summary"][q]["p_holm"] for m, q in probes] == pytest.approx(list(stats.holm(raw)))
  assert m1["judge_entropy"]["p_holm"] == pytest.approx(m1["judge_entropy"]["p_vs_base"])  # a family of one
  assert m1["d linear"]["detectable"] == pytest.approx(
      stats.detectable_difference(shifted["d linear"], base["d linear"], "paired", alpha=0.05 / 3))
  assert m1["d linear"]["p_vs_base"] < 0.05 < stats.welch_p(shifted["d linear"], base["d linear"])
  assert out["members"]["base"]["summary"]["d linear"]["p_vs_base"] is None


def test_a_diverging_member_leaves_the_population_and_the_others_finish(tmp_path, monkeypatch):
  """Member 1's metrics turn non-finite in chunk 2: it is marked diverged with its last good
  checkpoint, and member 0 is checkpointed there and finishes alone, one metrics row per chunk."""
  runs = [configs.load("pretrain_tiny", **{"env.ema": ema, "seed": seed, "train.steps": 9})
          for ema, seed in ((0.7, 0), (0.3, 1))]
  to_host, chunks = sharding.to_host, []

  def nan_in_member_1_at_chunk_2(tree):
    out = to_host(tree)
    if isinstance(out, dict) and "ntxent" in out and np.ndim(out["ntxent"]) == 1:
      chunks.append(1)
      if len(chunks) == 2:
        out["ntxent"] = np.array([out["ntxent"][0], np.nan])
    return out
  monkeypatch.setattr(pretrain_job.sharding, "to_host", nan_in_member_1_at_chunk_2)
  pretrain_job.train([(c, tmp_path / f"run{i}") for i, c in enumerate(runs)])
  marked = json.loads((tmp_path / "run1" / "diverged.json").read_text())
  assert marked == {"chunk": 2, "last_good_checkpoint": 1, "non_finite": ["ntxent"]}
  assert sweep.diverged(tmp_path / "run1") and sweep.finished(tmp_path / "run1")
  assert not (tmp_path / "run1" / "encoder").exists()
  assert (tmp_path / "run0" / "encoder" / "learner.json").exists() and not sweep.diverged(tmp_path / "run0")
  assert [r["step"] for r in workdirs.read_metrics(tmp_path / "run0")] == [3, 6, 9]
  assert [r["step"] for r in workdirs.read_metrics(tmp_path / "run1")] == [3]


def test_a_sweep_tabulates_a_diverged_run_and_does_not_retry_it(tmp_path, monkeypatch):
  config = sweep_config(axes="env.ema=0.5", seeds=2)
  fake_finished_runs(config, tmp_path)
  (tmp_path / "env.ema=0.5_seed1" / "encoder" / "learner.json").unlink()
  pretrain_job.mark_diverged(tmp_path / "env.ema=0.5_seed1", 2, 1, ["ntxent"])
  monkeypatch.setattr(pretrain_job, "train", lambda runs: pytest.fail(f"retried {runs}"))
  lines = []
  assert sweep.run_all(config, tmp_path, log=lines.append)
  assert "palmup sweep: env.ema=0.5 seed 1 diverged" in " ".join(lines)
  monkeypatch.setattr(sweep, "probe_run", lambda c, run: {"digits linear": 0.8, "digits 5-shot": 0.6})
  monkeypatch.setattr(sweep, "probe_floors", lambda c, w: {})
  monkeypatch.setattr(sweep, "exploration_metrics", lambda run, names, tail: {n: 1.0 for n in names})
  results = sweep.summarize(sweep.collect(config, tmp_path))
  cell = results["members"]["env.ema=0.5"]["summary"]["digits linear"]
  assert cell["diverged"] == 1 and cell["mean"] == pytest.approx(0.8) and cell["p_vs_base"] is not None
  assert "80.0 [1 diverged]" in sweep._cell(cell, True)
