"""T2: RL transfer. PPO on pixel tasks with the encoder frozen-pretrained, frozen-random or trained
from scratch, several seeds, final return at a fixed env-step budget (palmup.rl.transfer).

    python experiments/t2_rl_transfer.py --workdir runs/t2 --encoder runs/pretrain/encoder [--scale cpu]
        [--tasks craftax,atari_breakout] [--modes pretrained,random,scratch] [--seeds 3]

Tasks: craftax (Craftax-Classic-Pixels), atari_<rom> (ALE, e.g. atari_breakout, atari_pong),
minatar_<game> (gymnax MinAtar, e.g. minatar_breakout). Without --encoder the pretrained column
is skipped and random / scratch use configs' learner encoder. Each run is a `palmup rl-transfer`
workdir, workdir/<task>/<mode>/ (a run whose rl_transfer.json exists with the same config is
reused, so an interrupted table resumes); the table goes to workdir/results.md, the return curves
(mean over seeds, band +- 1 std) to workdir/returns.png, everything to workdir/t2.json.

Scales (--scale):
  tiny  seconds per run (tests): 2 seeds, 2 PPO updates of 4 envs x 16 steps, a tiny CNN at 16x16
        when no --encoder is given;
  cpu   the configs' CPU settings at 20k env steps per seed, 3 seeds: about 45 min on 2 CPU cores
        for craftax + atari_breakout with the three modes (estimated from measured speeds: per
        task about 1.5 min per frozen mode and 15-22 min for scratch, which backpropagates
        through the encoder in every PPO epoch, plus about 1 min of compilation per run);
  full  accelerator scale, the configs' documented budgets: Craftax 1e9 env steps with 1024 envs,
        Atari 10M env steps (40M frames) with 64 envs, MinAtar 1e7 with 128 envs; 5 seeds.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

import common
from palmup import configs, viz

MODES = ("pretrained", "random", "scratch")
TINY_ENCODER = {"learner.encoder.name": "conv", "learner.encoder.widths": (8, 16), "learner.encoder.features": 16,
                "encoder.obs_size": 16}
SCALES = {
    "tiny": {"num_seeds": 2, "ppo.num_envs": 4, "ppo.num_steps": 16, "ppo.total_env_steps": 128,
             "ppo.update_epochs": 1, "ppo.num_minibatches": 2, "ppo.hidden": 16, "task.reset_pool": 4,
             "eval.final_fraction": 0.5},
    "cpu": {"num_seeds": 3, "ppo.total_env_steps": 20_000},
    "full": {"num_seeds": 5},
}
FULL = {
    "craftax_classic_pixels": {"ppo.total_env_steps": 1_000_000_000, "ppo.num_envs": 1024, "ppo.hidden": 512,
                               "task.reset_pool": 1024},
    "atari": {"ppo.total_env_steps": 10_000_000, "ppo.num_envs": 64},
    "minatar": {"ppo.total_env_steps": 10_000_000, "ppo.num_envs": 128, "ppo.num_steps": 128},
}


def task_config(task: str, overrides: dict):
  """'craftax' | 'atari_<rom>' | 'minatar_<game>' -> that task's rl-transfer config with overrides."""
  if task == "craftax":
    return configs.load("rl_transfer_craftax", **overrides)
  kind, _, game = task.partition("_")
  if kind not in ("atari", "minatar") or not game:
    raise SystemExit(f"t2: unknown task {task!r}; valid: craftax, atari_<rom> (e.g. atari_breakout), "
                     f"minatar_<game> (e.g. minatar_breakout)")
  return configs.load("rl_transfer_atari" if kind == "atari" else "rl_transfer_craftax",
                      **{"task.name": kind, "task.game": game, **overrides})


def run_config(task: str, mode: str, scale: str, encoder: str | None, seeds: int | None):
  c = task_config(task, {**SCALES[scale], **(TINY_ENCODER if scale == "tiny" and encoder is None else {})})
  if scale == "full":
    c.update_from_flattened_dict(FULL[c.task.name])
  c.encoder.path, c.encoder.mode = encoder, mode
  if seeds:
    c.num_seeds = seeds
  return c


def run_or_reuse(config, workdir: Path) -> dict:
  """Runs palmup rl-transfer into workdir, unless it already holds a result of this config."""
  from palmup.rl import transfer
  done = workdir / "rl_transfer.json"
  if done.exists() and (workdir / "config.json").read_text() == config.to_json_best_effort(indent=2, sort_keys=True) + "\n":
    print(f"t2: reusing {done}")
    return json.loads(done.read_text())
  return transfer.run(config, workdir)


def fmt(stats: dict) -> str:
  """'mean ± std', or 'no episode ended' when a seed saw no episode end in the final window."""
  return "no episode ended" if stats["mean"] is None else f"{stats['mean']:.2f} ± {stats['std']:.2f}"


def write_table(path: Path, results: dict, scale: str, encoder: str | None, provenance: str):
  """results: {task: {mode: rl_transfer record}} -> results.md."""
  any_run = next(iter(next(iter(results.values())).values()))
  lines = [f"# T2: RL transfer ({scale} scale)", "", provenance,
           f"Final return at the env-step budget (mean return of the episodes that ended in the last "
           f"{any_run['final_window_updates']} PPO updates), mean ± sample std over seeds. Encoder: "
           f"{encoder or 'none given (no pretrained column)'}; input {tuple(any_run['obs_shape'])}. "
           "pretrained and random are frozen (PPO trains the heads only), scratch trains the same "
           "architecture end to end.", "",
           "| task | env steps per seed | seeds | " + " | ".join(MODES) + " |",
           "|---|---|---|" + "---|" * len(MODES)]
  for task, runs in results.items():
    r = next(iter(runs.values()))
    cells = [fmt(runs[m]["final_return"]) if m in runs else "not run" for m in MODES]
    lines.append(f"| {task} | {r['env_steps_per_seed']:,} | {r['num_seeds']} | " + " | ".join(cells) + " |")
  lines += ["", "Per seed (final return) and speed (env steps/s, all seeds together; compile excluded for "
            "JAX tasks):", "", "| task | mode | final return per seed | mean return over training | env steps/s |",
            "|---|---|---|---|---|"]
  for task, runs in results.items():
    for mode, r in runs.items():
      per_seed = ", ".join("-" if v is None else f"{v:.2f}" for v in r["final_return"]["per_seed"])
      lines.append(f"| {task} | {mode} | {per_seed} | {fmt(r['mean_return_over_training'])} | "
                   f"{r['env_steps_per_second']:.0f} |")
  path.write_text("\n".join(lines) + "\n")


def plot_curves(path: Path, results: dict):
  """Return curves per task (one panel each): mean over seeds per mode, band +- 1 std."""
  plt = viz.pyplot()
  fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), squeeze=False)
  for ax, (task, runs) in zip(axes[0], results.items()):
    for mode, r in runs.items():
      x = np.asarray(r["curve"]["env_steps"])
      y = np.asarray(r["curve"]["return"], float)  # None (no episode ended yet) -> nan
      with warnings.catch_warnings():  # all-nan columns: no episode had ended yet
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(y, 0), np.nanstd(y, 0)
      ax.plot(x, mean, label=mode)
      ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set(title=task, xlabel="env steps per seed", ylabel="episode return")
    ax.legend()
  common.save_figure(fig, path)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--encoder", default=None, help="a palmup pretrain workdir's encoder/ (or the workdir)")
  parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
  parser.add_argument("--tasks", default="craftax,atari_breakout")
  parser.add_argument("--modes", default=",".join(MODES), help="a subset of " + ",".join(MODES))
  parser.add_argument("--seeds", type=int, default=None, help="overrides the scale's number of seeds")
  args = parser.parse_args(argv)
  started = common.start()
  workdir = Path(args.workdir).expanduser().absolute()
  modes = [m for m in args.modes.split(",") if args.encoder or m != "pretrained"]
  results = {}
  for task in args.tasks.split(","):
    for mode in modes:
      config = run_config(task, mode, args.scale, args.encoder, args.seeds)
      print(f"t2: {task} {mode} ({config.num_seeds} seeds x {config.ppo.total_env_steps:,} env steps)", flush=True)
      record = run_or_reuse(config, workdir / task / mode)
      results.setdefault(task, {})[mode] = record
      print(f"t2: {task} {mode}: final return {fmt(record['final_return'])}", flush=True)
  write_table(workdir / "results.md", results, args.scale, args.encoder, common.provenance(started))
  plot_curves(workdir / "returns.png", results)
  (workdir / "t2.json").write_text(json.dumps(results, indent=2) + "\n")
  print((workdir / "results.md").read_text())


if __name__ == "__main__":
  main(sys.argv[1:])
