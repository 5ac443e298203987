"""What the table scripts share: running pretrain variants, probing encoders, aggregating seeds,
writing results.md (with the command, commit and wall time) and plots."""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from palmup import configs, evaluate, learner as learner_lib, pretrain_job, stats, viz, workdirs

SCALES = ("tiny", "cpu", "full")
# The probe sizes of --scale tiny (pretraining uses configs/pretrain_tiny.py): seconds, for CI.
TINY_PROBE = {"train_examples": 300, "random_seeds": 1, "logistic.steps": 20, "logistic.l2_grid": (1e-3,),
              "ridge.l2_grid": (10.0,), "few_shot.shots": (1, 5), "few_shot.seeds": 2}
# The CPU scale's learner for the budget tables (T1, T5: runs made through encoder_at): the conv
# widths halved (16-128) and 24 x 24 observations, 3.0x cheaper per loop step than
# configs/pretrain_fashion_mnist.py's own (benchmarks/learner_budget.py; the learner already runs
# near the CPU's matmul rate, so only fewer FLOPs help), so 1,200-3,000-step tables with 3 seeds fit
# 2 cores. T4 (pretrain_run) keeps the main config with PAPER_LEARNER's unaugmented pairs; T3 runs
# palmup sweep on the main config as it is (augmented pairs).
CPU_PRETRAIN = {"learner.encoder.widths": (16, 32, 64, 128), "obs_size": 24}
# Every experiment's pretraining uses the paper's unaugmented pairs unless its method says otherwise
# (T1's *_aug and static methods): the tables were measured so, before the main config augmented.
PAPER_LEARNER = {"learner.augment": "none"}
# The accelerator scale (documented, not run here): the same CNN pipeline, bigger everything.
FULL_PRETRAIN = {"num_envs": 1024, "replay.batch_size": 1024, "replay.capacity": 1024, "train.steps": 20000,
                 "train.chunk_steps": 100, "learner.encoder.name": "resnet18", "agent.hidden": 1024}


def pretrain_run(workdir: Path, scale: str, overrides: dict, seed: int) -> Path:
  """Runs (or resumes, or skips when finished) `palmup pretrain` of the scale's config with
  overrides, without the end-of-run probe; -> workdir holding encoder/ and metrics.jsonl."""
  workdir = Path(workdir)
  if not (workdir / "encoder" / "learner.json").exists():
    base, scaled = {"tiny": ("pretrain_tiny", {}), "cpu": ("pretrain_fashion_mnist", {}),
                    "full": ("pretrain_fashion_mnist", FULL_PRETRAIN)}[scale]
    config = configs.load(base, seed=seed, **{"eval.enabled": False, **PAPER_LEARNER, **scaled, **overrides})
    pretrain_job.main(config, workdir)
  return workdir


def encoder_at(run: Path, scale: str, overrides: dict, seed: int, steps: int) -> Path:
  """The run's encoder after `steps` pretraining steps, kept as run/encoder_<steps>/: pretrains, or
  resumes the run from its last checkpoint to `steps` (train.steps may change on resume, and the
  learning rates are constant, so a run resumed to N steps is the run of N steps). Experiments
  pointed at the same --runs share these (T5's budgets include T1's)."""
  run = Path(run)
  kept = run / f"encoder_{steps}"
  if not kept.exists():
    done = max((r["step"] for r in workdirs.read_metrics(run)), default=0)
    if done > steps:
      raise SystemExit(f"{run} ran {done} steps without keeping encoder_{steps}/; give another --runs")
    budget = CPU_PRETRAIN if scale == "cpu" else {}
    pretrain_run(run, scale, {**budget, **overrides, "train.steps": steps}, seed)
    if not (run / "encoder").exists():  # pretraining stopped early (SIGTERM): it saved a checkpoint
      raise SystemExit(f"{run} stopped before {steps} steps; rerun the same command to resume it")
    shutil.move(str(run / "encoder"), str(kept))
  return kept


def probe_config(scale: str):
  cfg = evaluate.probe_config()
  for key, value in (TINY_PROBE if scale == "tiny" else {}).items():
    *parents, leaf = key.split(".")
    (cfg[parents[0]] if parents else cfg)[leaf] = value
  return cfg


def probe(run: Path, dataset: str, cfg, random_seed: int | None = None, encoder: str = "encoder") -> dict:
  """evaluate_encoder on `dataset` of the run's encoder (run/<encoder>), or of its architecture at
  random init."""
  learner, params, obs_shape = learner_lib.load_encoder(Path(run) / encoder)
  if random_seed is not None:
    params = evaluate.random_params(learner, obs_shape, random_seed)
  return evaluate.evaluate_encoder(learner.features, params, obs_shape, dataset, cfg)


def probe_pixels(run: Path, dataset: str, cfg, encoder: str = "encoder") -> dict:
  """evaluate_pixels on `dataset` at the input shape of the run's encoder (read from its learner.json;
  no encoder is loaded or trained)."""
  spec = json.loads((Path(run) / encoder / "learner.json").read_text())
  return evaluate.evaluate_pixels(tuple(spec["obs_shape"]), dataset, cfg)


def probed(encoder: Path, dataset: str, cfg, shots: str, floor: str | int | None = None) -> dict:
  """{"linear": logistic top-1, "few_shot": `shots`-shot ridge} on dataset of a kept encoder
  (encoder_at), or of a floor at its input shape and architecture (floor="pixels", or an int: the
  random-init seed); cached in <encoder>/probe_<dataset>[_<floor>].json, so neither a rerun nor
  another table probes it again."""
  tag = "" if floor is None else "_pixels" if floor == "pixels" else f"_random{floor}"
  cache = Path(encoder) / f"probe_{dataset}{tag}.json"
  if not cache.exists():
    run, name = Path(encoder).parent, Path(encoder).name
    r = (probe_pixels(run, dataset, cfg, encoder=name) if floor == "pixels"
         else probe(run, dataset, cfg, floor, encoder=name))
    write_json(cache, {"linear": r["test_accuracy"], "few_shot": r["few_shot"][shots]["mean"], "shots": shots})
  return json.loads(cache.read_text())


def shots_of(cfg, preferred: str) -> str:
  """The few-shot key a table reports: `preferred` if the probe config runs it, else its largest."""
  return preferred if preferred in map(str, cfg.few_shot.shots) else str(max(cfg.few_shot.shots))


def mean_ci95(values) -> str:
  """'81.2 +- 0.9' of fractions, in percent: the mean and the half-width of its 95% t-interval over
  seeds (palmup.stats.mean_ci95; '+- n/a' for one seed)."""
  mean, half = stats.mean_ci95(100 * np.asarray(values, float))
  return f"{mean:.1f} +- {half:.1f}" if len(values) > 1 else f"{mean:.1f} +- n/a"


def mean_std(values) -> str:
  """'81.2 +- 0.4' of fractions, in percent (the std over seeds; '+- n/a' for one seed)."""
  v = 100 * np.asarray(values, float)
  return f"{v.mean():.1f} +- {v.std():.1f}" if len(v) > 1 else f"{v.mean():.1f} +- n/a"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows]) + "\n"


def start() -> tuple[float, str]:
  """(time, commit) when a table script starts: what provenance() reports."""
  return time.time(), workdirs.commit()


def provenance(started: tuple[float, str]) -> str:
  """The exact command, the commit the run started from and its wall time, for results.md."""
  t0, at = started
  return (f"Command: `python {shlex.join(sys.argv)}`  \nCommit: {at}  \nWall time: {(time.time() - t0) / 60:.1f} min "
          f"on {platform.machine()} ({_cores()} cores)\n")


def _cores() -> int:
  import os
  return len(os.sched_getaffinity(0))


def write_json(path: Path, obj):
  Path(path).write_text(json.dumps(obj, indent=2) + "\n")


def parser(doc: str) -> argparse.ArgumentParser:
  """The table scripts' shared flags: --workdir, --scale and --runs."""
  p = argparse.ArgumentParser(description=doc.split("\n")[0])
  p.add_argument("--workdir", type=Path, required=True)
  p.add_argument("--scale", choices=SCALES, default="cpu")
  p.add_argument("--runs", type=Path, default=None,
                 help="where the pretraining runs live (default: the workdir); tables given the same --runs share runs")
  return p


def save_figure(fig, path: Path):
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  viz.pyplot().close(fig)


def write_results(workdir: Path, title: str, started: tuple[float, str], body: str, runs=()):
  """workdir/results.md: the title, provenance (command, commit, wall time, and the commits the
  `runs` that exist ran at), then body; printed too."""
  ran = [Path(r) for r in runs if Path(r).exists()]
  commits = (f"\nThe runs ran at: {workdirs.commits_summary({r.name: workdirs.run_commits(r) for r in ran})}.\n"
             if ran else "")
  text = f"# {title}\n\n{provenance(started)}{commits}\n{body}"
  (Path(workdir) / "results.md").write_text(text)
  print(text)
