"""`palmup sweep`: an ablation of a pretraining config, its members run with seeds, probed on real
data and tabulated with 95% intervals and paired, Holm-corrected p values against the base setting.

    palmup sweep --config configs/sweep.py --workdir runs/sweep \
        --config.base=configs/pretrain_fashion_mnist.py \
        --config.axes='env.ema=0.5,0.9,0.99;env.action_weight=0,1' --config.seeds=3

Members: the base config (`base` with `overrides`) and, with design "one_at_a_time", each axis value
that differs from the base's, one axis at a time; with design "grid", every combination of the axes'
values. Each member runs at seeds 0 .. seeds-1 as a normal `palmup pretrain` run in
DIR/<member>_seed<k>/ (without its end-of-run probe), so a killed sweep resumes where it stopped:
rerunning the command skips the runs that finished and resumes the one that did not. Every member's
config is built and validated (palmup.pretrain.validate) before any run starts, so a bad axis or
value stops the sweep with one line naming it. Seed 0 of every member runs first, then seed 1, ...

Members that differ from the base only in EnvParams fields (env.ema, env.action_weight, ...) and
seed run as populations: `population.size` runs at a time in one compiled program vmapped over them
(pretrain_job.train), each run keeping its own checkpoints, metrics and encoder;
`population.enabled="off"` runs them one by one.

target "slurm" writes DIR/sweep.sbatch, one SLURM array task per unfinished run (each `palmup
pretrain`, with the resources of `slurm`: time, CPUs, GPUs, partition, memory), and stops: submit
it, then rerun the sweep with target "local" to probe and tabulate the finished runs.

A rerun refuses a finished run whose config differs from the one the sweep now gives its member
(say `train.steps` changed): its results would be tabulated under the new command. The probes are
cached per run with the settings that made them, and redone when those change. A run that diverges
(non-finite metrics) is marked so in its workdir (diverged.json), leaves its population while the
other members go on, is not retried by a rerun, and is tabulated as diverged.

Then every run is probed on each of `datasets` (logistic probe and few-shot ridge at `shots`,
palmup.evaluate), the floors (raw pixels, and the base's architecture at probe.random_seeds random
inits) once per sweep, and the exploration metrics (`metrics`) are read from each run's
metrics.jsonl, averaged over the last `metrics_tail` of its chunks. DIR gets:
  results.json   every value per run and seed, the commits each run ran at, and the tables' numbers
  results.md     one table per axis (grid: one table): each probe and metric as mean +- the 95%
                 t-interval over seeds, the paired t-test's p against the base and that p
                 Holm-adjusted over the sweep's probe tests (or its metric tests); each member judged
                 against the base dataset by dataset (palmup.stats states the conventions)
  <axis>.png     each probe and metric against the axis's values, mean with its 95% interval
`palmup report --workdir DIR` renders the tables, plots and every run's curves.
"""
from __future__ import annotations

import ast
import dataclasses
import itertools
import json
import math
import re
import shlex
import sys
import time

import numpy as np
from etils import epath

from palmup import config_checks, configs, evaluate, learner as learner_lib, pretrain, stats, viz, workdirs
from palmup.data import datasets
from palmup.env import EnvParams
from palmup.errors import UserError

DESIGNS = ("one_at_a_time", "grid")
TARGETS = ("local", "slurm")
POPULATION = ("auto", "off")
BASE = "base"


@dataclasses.dataclass(frozen=True)
class Member:
  """One setting of the sweep: its name ("base" or "key=value[,key=value]") and its overrides of
  the base config."""
  name: str
  overrides: dict

  def run(self, seed: int) -> str:
    """The directory name of this member's run at `seed`."""
    return f"{self.name}_seed{seed}"


def _literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_assignments(text: str, what: str, values_sep: str | None = None) -> dict:
  """'a.b=1;c=x' -> {"a.b": 1, "c": "x"} (values Python literals where they parse as one, strings
  otherwise); with values_sep (","), each value is a list split on it: 'a=1,2;b=3' -> {"a": [1, 2], "b": [3]}."""
  out = {}
  for item in filter(None, (part.strip() for part in text.split(";"))):
    key, equals, value = item.partition("=")
    if not equals or not key.strip() or not value.strip():
      example = "'env.ema=0.5,0.9;env.action_weight=0,1'" if values_sep else "'obs_size=24;learner.lr=0.001'"
      raise UserError(f"config.{what}: {item!r} is invalid; valid: {example}")
    parsed = [_literal(v.strip()) for v in value.split(values_sep)] if values_sep else _literal(value.strip())
    out[key.strip()] = parsed
  return out


def base_config(config):
  """The base pretrain config: config.base with config.overrides, its end-of-run probe off (the sweep probes)."""
  return member_config(config, Member(BASE, {}), seed=None)


def member_overrides(config, member: Member, seed: int | None) -> dict:
  """The overrides of the base config that make `member` at `seed` (None: the base's own seed)."""
  overrides = {**parse_assignments(config.overrides, "overrides"), **member.overrides, "eval.enabled": False}
  return overrides if seed is None else {**overrides, "seed": seed}


def member_config(config, member: Member, seed: int | None):
  """The pretrain config of `member` at `seed` (None: the base's own seed)."""
  try:
    return configs.load(config.base, **member_overrides(config, member, seed))
  except (TypeError, ValueError) as e:  # ml_collections refuses a value of the wrong type
    raise UserError(f"config.axes / config.overrides: {member.name}: {e}") from None


def members(config) -> list[Member]:
  """The base first, then the axes' settings (see the module docstring); a value equal to the
  base's is the base, not a member of its own."""
  axes = parse_assignments(config.axes, "axes", ",")
  base = base_config(config)
  base_value = {}
  for key in axes:
    try:
      base_value[key] = config_checks.get(base, key)
    except (KeyError, AttributeError):
      raise UserError(f"config.axes: {key} is not a key of {config.base}") from None
  out = [Member(BASE, {})]
  if config.design == "grid":
    for values in itertools.product(*axes.values()):
      changed = {k: v for k, v in zip(axes, values)}
      if any(v != base_value[k] for k, v in changed.items()):
        out.append(Member(",".join(f"{k}={v}" for k, v in changed.items()), changed))
  else:
    for key, values in axes.items():
      out += [Member(f"{key}={v}", {key: v}) for v in values if v != base_value[key]]
  return out


def validate(config):
  """Every check before any run: the sweep's own keys, then each member's pretrain config."""
  config_checks.one_of(config, "design", DESIGNS)
  config_checks.one_of(config, "target", TARGETS)
  config_checks.one_of(config, "population.enabled", POPULATION)
  config_checks.positive(config, "seeds")
  config_checks.positive(config, "population.size")
  config_checks.in_range(config, "metrics_tail", 0.01, 1.0)
  config_checks.require(config.slurm.gpus >= 0, "slurm.gpus", config.slurm.gpus, ">= 0")
  config_checks.positive(config, "slurm.cpus")
  config_checks.require(bool(re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", config.slurm.time)), "slurm.time", config.slurm.time,
                        "SLURM's [days-]hours:minutes:seconds, e.g. '4:00:00' or '1-12:00:00'")
  config_checks.require(bool(config.axes.strip()), "axes", config.axes, "'key=v1,v2;key2=v3' (at least one axis)")
  names = [d for d in config.datasets.split(",") if d]
  config_checks.require(bool(names) and (config.data_dir is not None or set(names) <= set(datasets.BUILTIN)),
                        "datasets", config.datasets, f"comma-separated names of {sorted(datasets.BUILTIN)} "
                        "(others need data_dir)")
  config_checks.require(config.shots in config.probe.few_shot.shots, "shots", config.shots,
                        f"one of probe.few_shot.shots {tuple(config.probe.few_shot.shots)}")
  evaluate.validate_probe(config, "probe")
  for member in members(config):
    try:
      pretrain.validate(member_config(config, member, 0))
    except UserError as e:
      raise UserError(f"member {member.name}: {e}") from None


def diverged(run: epath.Path) -> bool:
  """Whether the run diverged (pretrain_job.mark_diverged): it ends there, and a rerun does not retry it."""
  return (run / workdirs.DIVERGED).exists()


def finished(run: epath.Path) -> bool:
  """Whether the run has ended: its encoder written, or diverged."""
  return (run / "encoder" / "learner.json").exists() or diverged(run)


def check_not_stale(config, workdir: epath.Path):
  """Refuses a sweep whose finished runs ran under another member config than this sweep gives them
  (their results would be tabulated under this command): names the first such run, what differs and
  what to do. Keys that change only bookkeeping (checkpoints, the end-of-run probe) may differ."""
  from palmup import pretrain_job
  for member, seed in run_order(config):
    run = workdir / member.run(seed)
    if not finished(run):
      continue
    changes = pretrain_job.config_changes(run, member_config(config, member, seed))
    if changes:
      shown = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in list(changes.items())[:4])
      more = f" and {len(changes) - 4} more" if len(changes) > 4 else ""
      raise UserError(f"member {member.name} seed {seed}: its finished run {run} ran with another config ({shown}{more}); "
                      f"move or delete {run} to run it again with this config, or rerun the sweep with the config it "
                      "ran with")


def run_order(config) -> list[tuple[Member, int]]:
  """Seed 0 of every member first, then seed 1, ...: a partial sweep covers every member."""
  return [(member, seed) for seed in range(config.seeds) for member in members(config)]


def pretrain_command(config, workdir: epath.Path, member: Member, seed: int) -> str:
  """The `palmup pretrain` command line of one run (for SLURM)."""
  args = [f"--config.{k}={v}" for k, v in member_overrides(config, member, seed).items()]
  return shlex.join(["palmup", "pretrain", "--config", str(config.base), "--workdir", str(workdir / member.run(seed)),
                     *args])


def write_sbatch(config, workdir: epath.Path) -> epath.Path | None:
  """DIR/sweep.sbatch: a SLURM array job, one task per run not yet finished, each task given the
  resources in config.slurm; None (and no file) when every run has finished."""
  todo = [(m, s) for m, s in run_order(config) if not finished(workdir / m.run(s))]
  path = workdir / "sweep.sbatch"
  if not todo:
    if path.exists():
      path.unlink()
    return None
  slurm = config.slurm
  resources = [f"--array=0-{len(todo) - 1}", f"--time={slurm.time}", f"--cpus-per-task={slurm.cpus}"]
  resources += [f"--gpus-per-task={slurm.gpus}"] if slurm.gpus else []
  resources += [f"--partition={slurm.partition}"] if slurm.partition else []
  resources += [f"--mem={slurm.mem}"] if slurm.mem else []
  commands = "\n".join(f"  {shlex.quote(pretrain_command(config, workdir, m, s))}" for m, s in todo)
  path.write_text("#!/bin/bash\n#SBATCH --job-name=palmup-sweep\n" + "".join(f"#SBATCH {r}\n" for r in resources)
                  + f"#SBATCH --output={workdir}/slurm-%A_%a.out\nset -euo pipefail\nCOMMANDS=(\n{commands}\n)\n"
                  'eval "${COMMANDS[$SLURM_ARRAY_TASK_ID]}"\n')
  return path


def population_usable(config) -> bool:
  """Whether the members may run as populations: population.enabled is "auto" and every axis is an
  EnvParams field (env.<field>), so members differ only in traced values and seed."""
  fields = {f"env.{f}" for f in EnvParams.__dataclass_fields__}
  return config.population.enabled == "auto" and set(parse_assignments(config.axes, "axes", ",")) <= fields


def run_all(config, workdir: epath.Path, log=print) -> bool:
  """Runs (or resumes, or skips) every member's runs on this machine, one after another, or
  population.size at a time as one population (population_usable); -> False when a run stopped
  early (SIGTERM: rerun to resume)."""
  from palmup import pretrain_job
  order = run_order(config)
  size = config.population.size if population_usable(config) else 1
  done = 0
  for start in range(0, len(order), size):
    group = order[start:start + size]
    todo = [(m, s) for m, s in group if not finished(workdir / m.run(s))]
    names = ", ".join(f"{m.name} seed {s}" for m, s in group)
    position = f"[{done + len(group)}/{len(order)}]"
    began = time.perf_counter()
    if not todo:
      log(f"palmup sweep: {position} {names}: finished before")
    else:
      log(f"palmup sweep: {position} {names}: pretraining" + (" as one population" if len(todo) > 1 else ""))
      try:
        pretrain_job.train([(member_config(config, m, s), workdir / m.run(s)) for m, s in todo])
      except FloatingPointError as e:  # the run (or every member) diverged: marked, the sweep goes on
        log(f"palmup sweep: {position} {names}: diverged ({str(e)[:120]}); tabulated as diverged")
    for m, s in group:
      if diverged(workdir / m.run(s)):
        log(f"palmup sweep: {m.name} seed {s} diverged (see {workdir / m.run(s) / workdirs.DIVERGED})")
    if not all(finished(workdir / m.run(s)) for m, s in group):
      return False
    if todo:
      log(f"palmup sweep: {position} done in {time.perf_counter() - began:.0f} s")
    done += len(group)
  return True


def exploration_metrics(run: epath.Path, names: list[str], tail: float) -> dict[str, float]:
  """Each metric's mean over the last `tail` of the run's chunks that logged it (nan if none did)."""
  rows = workdirs.read_metrics(run)
  out = {}
  for name in names:
    values = [r[name] for r in rows if isinstance(r.get(name), (int, float))]
    keep = values[-max(1, math.ceil(tail * len(values))):] if values else []
    out[name] = float(np.mean(keep)) if keep else math.nan
  return out


def _probe_settings(config) -> dict:
  """Everything that changes a run's probe values: the datasets, the shots reported, the probe config
  and where the data is read from."""
  return {"datasets": config.datasets, "shots": config.shots, "probe": config.probe.to_dict(),
          "data_dir": config.data_dir}


def _cached(cache: epath.Path, settings: dict, compute):
  """compute()'s result, cached in `cache` with the settings it was computed under: recomputed when
  they differ from `settings`."""
  settings = json.loads(json.dumps(settings, default=str))
  held = json.loads(cache.read_text()) if cache.exists() else {}
  if held.get("settings") != settings:
    held = {"settings": settings, "values": compute()}
    cache.write_text(json.dumps(held, indent=2) + "\n")
  return held["values"]


def probe_run(config, run: epath.Path) -> dict[str, float]:
  """{"<dataset> linear", "<dataset> <shots>-shot"} top-1 of the run's encoder; cached in the run
  (sweep_probes.json) with the settings it was probed under, so a rerun probes again only when they
  changed."""
  def compute():
    learner, params, obs_shape = learner_lib.load_encoder(run / "encoder")
    out = {}
    for dataset in filter(None, config.datasets.split(",")):
      r = evaluate.evaluate_encoder(learner.features, params, obs_shape, dataset, config.probe, config.data_dir)
      out.update(_scores(r, dataset, config.shots))
    return out
  return _cached(run / "sweep_probes.json", _probe_settings(config), compute)


def probe_names(config) -> list[str]:
  """The probe quantities of every run, in the order probe_run gives them."""
  return [q for d in filter(None, config.datasets.split(",")) for q in (f"{d} linear", f"{d} {config.shots}-shot")]


def _scores(result: dict, dataset: str, shots: int) -> dict[str, float]:
  return {f"{dataset} linear": result["test_accuracy"], f"{dataset} {shots}-shot": result["few_shot"][str(shots)]["mean"]}


def probe_floors(config, workdir: epath.Path) -> dict[str, dict[str, list[float]]]:
  """{"raw pixels": {probe: [value]}, "random encoder": {probe: [per init]}} at the base's encoder
  and input shape (its first seed that did not diverge); cached in DIR/floors.json with the probe settings and that
  encoder's architecture."""
  kept = [workdir / Member(BASE, {}).run(k) for k in range(config.seeds) if not diverged(workdir / Member(BASE, {}).run(k))]
  if not kept:
    raise UserError(f"every seed of the base diverged in {workdir}: no encoder to measure the floors at")
  encoder = kept[0] / "encoder"

  def compute():
    learner, _, obs_shape = learner_lib.load_encoder(encoder)
    pixels, random = {}, {}
    for dataset in filter(None, config.datasets.split(",")):
      splits = evaluate.load_splits(dataset, config.data_dir)
      for k, v in _scores(evaluate.evaluate_pixels(obs_shape, dataset, config.probe, config.data_dir, splits),
                          dataset, config.shots).items():
        pixels[k] = [v]
      for seed in range(config.probe.random_seeds):
        params = evaluate.random_params(learner, obs_shape, 1000 + seed)
        r = evaluate.evaluate_encoder(learner.features, params, obs_shape, dataset, config.probe, config.data_dir,
                                      splits)
        for k, v in _scores(r, dataset, config.shots).items():
          random.setdefault(k, []).append(v)
    return {"raw pixels": pixels, "random encoder": random}
  architecture = json.loads((encoder / "learner.json").read_text())
  return _cached(workdir / "floors.json", {**_probe_settings(config), "encoder": architecture}, compute)


def collect(config, workdir: epath.Path) -> dict:
  """results.json's values: every run's probes and metrics per member and seed, the floors, and the
  commits each run ran at (summarize() adds the statistics)."""
  metric_names = [m for m in config.metrics.split(",") if m]
  per_member, run_commits = {}, {}
  for member in members(config):
    values, gone = {}, []
    for seed in range(config.seeds):
      run = workdir / member.run(seed)
      if diverged(run):  # no encoder: every quantity nan, and the seed counted as diverged
        gone.append(seed)
        found = {q: math.nan for q in (*probe_names(config), *metric_names)}
      else:
        found = {**probe_run(config, run), **exploration_metrics(run, metric_names, config.metrics_tail)}
      for k, v in found.items():
        values.setdefault(k, []).append(v)
      run_commits[member.run(seed)] = workdirs.run_commits(run)
    per_member[member.name] = {"overrides": member.overrides, "values": values, "diverged": gone}
  base_run_config = base_config(config)
  return {"base": str(config.base), "overrides": config.overrides, "axes": config.axes, "design": config.design,
          "seeds": config.seeds, "members": per_member, "floors": probe_floors(config, workdir),
          "quantities": list(per_member[BASE]["values"]), "run_commits": run_commits,
          "metrics_tail": config.metrics_tail,
          "base_values": {k: config_checks.get(base_run_config, k)
                          for k in parse_assignments(config.axes, "axes", ",")}}


def is_probe(quantity: str) -> bool:
  """Whether a results quantity is a probe ("<dataset> linear", "<dataset> <k>-shot"), not a metric."""
  return quantity.endswith(" linear") or quantity.endswith("-shot")


FAMILIES = {"probes": is_probe, "metrics": lambda q: not is_probe(q)}


def summarize(results: dict, alpha: float = stats.ALPHA) -> dict:
  """Adds to each member, per quantity, its "summary" (palmup.stats' conventions): the mean, "ci95"
  (the 95% t half-width), "p_vs_base" (the paired t-test against the base: seed k of a member and of
  the base share their seed), "p_holm" (Holm-adjusted over its family: every probe test of the sweep,
  or every metric test) and "detectable" (the smallest difference that test detects with 80% power at
  the observed spread, at alpha / the family's size), "diverged" (how many of its seeds diverged: their
  values are nan, and the tests pair the other seeds); and "families": {family: its number of tests}.
  Works from the values alone, so a committed results.json can be tabulated again."""
  members, base = results["members"], results["members"][BASE]["values"]
  tests = [(name, q) for name in members if name != BASE for q in members[name]["values"] if q in base]
  pairs = {}
  for t in tests:  # seed by seed, without the seeds where either run diverged (nan)
    a, b = members[t[0]]["values"][t[1]], base[t[1]]
    kept = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    pairs[t] = ([x for x, _ in kept], [y for _, y in kept])
  raw = {t: stats.paired_p(*pairs[t]) for t in tests}
  adjusted, detectable, results["families"] = {}, {}, {}
  for family, member_of in FAMILIES.items():
    ids = [t for t in tests if member_of(t[1])]
    size = sum(math.isfinite(raw[t]) for t in ids)
    results["families"][family] = size
    adjusted.update(zip(ids, stats.holm([raw[t] for t in ids])))
    detectable.update({t: stats.detectable_difference(*pairs[t], "paired", alpha=alpha / max(size, 1)) for t in ids})
  for name, entry in members.items():
    entry["summary"] = {}
    for q, v in entry["values"].items():
      mean, ci = stats.mean_ci95([x for x in v if math.isfinite(x)])
      entry["summary"][q] = {"mean": mean, "ci95": ci, "p_vs_base": raw.get((name, q)),
                             "p_holm": adjusted.get((name, q)), "detectable": detectable.get((name, q)),
                             "diverged": len(entry.get("diverged", []))}
  return results


def _cell(summary: dict, percent: bool) -> str:
  scale, fmt = (100, ".1f") if percent else (1, ".3g")
  mean, ci, p, holm = summary["mean"] * scale, summary["ci95"] * scale, summary["p_vs_base"], summary.get("p_holm")
  gone = f" [{summary['diverged']} diverged]" if summary.get("diverged") else ""
  if not math.isfinite(mean):
    return "diverged" if gone else "-"
  text = (f"{mean:{fmt}} +- {ci:{fmt}}" if math.isfinite(ci) else f"{mean:{fmt}}") + gone
  if p is None or not math.isfinite(p):
    return text
  return text + f" (p {p:.3f}, Holm {holm:.3f})"


def tables(results: dict) -> str:
  """results.md's body: per axis (one_at_a_time; the table's first header cell is the axis) or for the
  grid (first header cell "member"), a row per member; then the floors (first header cell "floor")."""
  quantities = results["quantities"]
  header = lambda first: f"| {first} | " + " | ".join(quantities) + " |\n|" + "---|" * (len(quantities) + 1) + "\n"
  row = lambda name: (f"| {name} | " + " | ".join(_cell(results["members"][name]["summary"][q], is_probe(q))
                                                  for q in quantities) + " |\n")
  floor_rows = "".join(f"| {floor} | " + " | ".join(
      _cell({"mean": float(np.mean(v[q])), "ci95": stats.mean_ci95(v[q])[1], "p_vs_base": None}, True)
      if q in v else "-" for q in quantities) + " |\n" for floor, v in results["floors"].items())
  groups = axis_groups(results)
  out = ""
  for axis, names in groups.items():
    out += (f"\n{'All members' if axis is None else f'Axis `{axis}`'}:\n\n" + header(axis or "member")
            + "".join(map(row, names)))
  probes = [q for q in quantities if is_probe(q)]
  detectable = lambda name: (f"| {name} | " + " | ".join(
      _points(results["members"][name]["summary"][q].get("detectable")) for q in probes) + " |\n")
  out += (f"\nThe smallest difference each probe's paired test detects with 80% power at the observed spread, "
          f"at {stats.ALPHA} / {results.get('families', {}).get('probes', 0)} (points):\n\n"
          f"| detectable | " + " | ".join(probes) + " |\n|" + "---|" * (len(probes) + 1) + "\n"
          + "".join(detectable(n) for n in results["members"] if n != BASE))
  return (out + "\nFloors (once per sweep, at the base's encoder and input):\n\n" + header("floor") + floor_rows
          + verdicts(results))


def _points(fraction) -> str:
  return "-" if fraction is None or not math.isfinite(fraction) else f"{100 * fraction:.1f}"


def against_base(results: dict, alpha: float = stats.ALPHA) -> dict[str, dict[str, list[str]]]:
  """{member: {"wins": datasets, "losses": datasets, "not_detected": datasets}} against the base at
  Holm-adjusted p < alpha over the sweep's probe tests: a dataset is a loss when any of its probes is
  significantly below the base's, a win when none is and at least one is significantly above, and
  otherwise not detected. The defaults rule: a member with 2 or more wins and no loss should become
  the default."""
  out = {}
  for name, entry in results["members"].items():
    if name == BASE:
      continue
    signs = {}
    for q, summary in entry["summary"].items():
      if not is_probe(q):
        continue
      signs.setdefault(q.rpartition(" ")[0], set())
      if summary["p_holm"] is not None and summary["p_holm"] < alpha:
        signs[q.rpartition(" ")[0]].add(summary["mean"] > results["members"][BASE]["summary"][q]["mean"])
    out[name] = {"wins": [d for d, s in signs.items() if s == {True}],
                 "losses": [d for d, s in signs.items() if False in s],
                 "not_detected": [d for d, s in signs.items() if not s]}
  return out


def _detectable_range(entry: dict, datasets: list[str]) -> str:
  """The smallest detectable differences of a member's probes on these datasets, in points."""
  found = [100 * s["detectable"] for q, s in entry["summary"].items()
           if is_probe(q) and q.rpartition(" ")[0] in datasets and s.get("detectable") is not None
           and math.isfinite(s["detectable"])]
  if not found:
    return "not testable"
  return f"{min(found):.1f}" + (f" to {max(found):.1f}" if max(found) - min(found) >= 0.05 else "") + " points"


def verdicts(results: dict) -> str:
  """results.md's lines on each member against the base, and the defaults rule's outcome."""
  lines = []
  for name, found in against_base(results).items():
    rule = " (the defaults rule: make it the default)" if len(found["wins"]) >= 2 and not found["losses"] else ""
    unseen = (f"; not detected on {', '.join(found['not_detected'])} (detectable: "
              f"{_detectable_range(results['members'][name], found['not_detected'])})" if found["not_detected"] else "")
    lines.append(f"- {name}: above the base on {', '.join(found['wins']) or 'no dataset'}, below it on "
                 f"{', '.join(found['losses']) or 'no dataset'}{unseen}{rule}")
  families = results.get("families", {})
  return (f"\nAgainst the base, dataset by dataset: a probe differs when its paired t-test's p, Holm-adjusted over "
          f"the sweep's {families.get('probes', 0)} probe tests, is below {stats.ALPHA} (below on any probe counts as "
          f"below); where none differs the effect is not detected, and \"detectable\" is the smallest difference "
          f"the test finds with 80% power at the observed spread (at {stats.ALPHA} / "
          f"{families.get('probes', 0)}). Metrics are their own family of {families.get('metrics', 0)} tests.\n\n"
          + "\n".join(lines) + "\n") if lines else ""


def axis_groups(results: dict) -> dict:
  """{axis: [base, members varying it]} (one_at_a_time), or {None: every member} (grid)."""
  names = list(results["members"])
  if results["design"] == "grid":
    return {None: names}
  axes = parse_assignments(results["axes"], "axes", ",")
  return {axis: [BASE] + [n for n in names if list(results["members"][n]["overrides"]) == [axis]] for axis in axes}


def value_order(value):
  """A sort key for an axis's values: numbers (ints, floats and bools alike) by value, then others by text."""
  return (0, float(value), "") if isinstance(value, (int, float)) else (1, 0.0, str(value))


def plot(results: dict, workdir: epath.Path):
  """<axis>.png per axis: each quantity against the axis's values, mean with its 95% interval."""
  if results["design"] == "grid":
    return
  plt = viz.pyplot()
  base_config_values = results["base_values"]
  for axis, names in axis_groups(results).items():
    points = sorted(((results["members"][n]["overrides"].get(axis, base_config_values[axis]), n) for n in names),
                    key=lambda t: value_order(t[0]))
    quantities = results["quantities"]
    fig, axes = plt.subplots(1, len(quantities), figsize=(3.2 * len(quantities), 3), squeeze=False)
    for ax, q in zip(axes[0], quantities):
      xs = np.arange(len(points))
      summaries = [results["members"][n]["summary"][q] for _, n in points]
      ax.errorbar(xs, [s["mean"] for s in summaries], yerr=[0 if not math.isfinite(s["ci95"]) else s["ci95"]
                                                              for s in summaries], fmt="o-", capsize=3)
      for (floor, values), style in zip(results["floors"].items(), ("--", ":")):
        if q in values:
          ax.axhline(float(np.mean(values[q])), color="gray", linestyle=style, label=floor)
      if any(q in values for values in results["floors"].values()):
        ax.legend(fontsize=6)
      ax.set_xticks(xs, [f"{v}{' (base)' if n == BASE else ''}" for v, n in points], rotation=30, fontsize=7)
      ax.set_title(q, fontsize=8)
    fig.suptitle(f"{axis}: mean and 95% interval over {results['seeds']} seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(str(workdir / f"{axis}.png"), dpi=100)
    plt.close(fig)


def main(config, workdir):
  validate(config)
  workdir = workdirs.create(workdir)
  check_not_stale(config, workdir)
  workdirs.write_config(workdir, config)
  if config.target == "slurm":
    path = write_sbatch(config, workdir)
    print(f"palmup sweep: wrote {path}; submit it (sbatch {path}), then rerun this command with "
          "--config.target=local to probe and tabulate" if path else
          "palmup sweep: every run has finished, nothing to submit; rerun with --config.target=local to probe "
          "and tabulate")
    return
  if not run_all(config, workdir):
    print("palmup sweep: a run stopped before its end (SIGTERM); rerun the same command to resume")
    return
  results = collect(config, workdir)
  print(tabulate(workdir, results))


def tabulate(workdir, results: dict | None = None) -> str:
  """Summarizes `results` (default: workdir's results.json, e.g. a committed one, tabulated again with
  the current statistics) and writes results.json, the plots and results.md; -> results.md's text."""
  workdir = epath.Path(workdir)
  results = summarize(results or json.loads((workdir / "results.json").read_text()))
  tail = f"the last {results['metrics_tail']:.0%}" if "metrics_tail" in results else "the last part (not recorded)"
  (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
  plot(results, workdir)
  text = (f"# Sweep of {results['base']}\n\nCommand: `{shlex.join(sys.argv)}` at commit {workdirs.commit()}; "
          f"the runs ran at {workdirs.commits_summary(results['run_commits']) if 'run_commits' in results else 'commits not recorded'}. Axes `{results['axes']}` "
          f"({results['design']}), overrides `{results['overrides'] or '-'}`, {results['seeds']} seeds; probes: "
          f"logistic and few-shot top-1 % on the test splits; metrics averaged over {tail} of each run's chunks. "
          f"Mean +- the half-width of the 95% t-interval over seeds; p: the paired t-test against the base (the "
          f"same seeds), and Holm: that p adjusted over the sweep's family of tests (palmup.stats).\n" + tables(results))
  text += "".join(f"\n![{axis}]({axis}.png)\n" for axis in axis_groups(results) if axis is not None)
  (workdir / "results.md").write_text(text)
  return text
