"""T4, exploration: does APT cover the latent space better than random actions over training?

    python experiments/t4_exploration.py --workdir runs/t4 --from-t1 runs/t1    # reuse T1's runs: seconds
    python experiments/t4_exploration.py --workdir runs/t4 --scale cpu          # runs its own: about 30 min

Per logged chunk, the pretraining loop measures on the envs' current latents: the kNN (k = 3)
Kozachenko-Leonenko entropy estimate (nats), the mean latent norm, and the fraction of classes
present among the envs; APT runs also log their intrinsic reward. This script plots them against
training step, APT vs uniform random actions, mean and spread over seeds, and tabulates their
means over the last quarter of training. Note: the class is drawn at each episode's reset, not by
the agent, so class coverage measures the env, not the explorer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import common
from palmup import workdir as wd

EXPLORERS = {"palm": {"explorer": "apt"}, "random_actions": {"explorer": "random"}}  # T1's run names
METRICS = ("knn_entropy", "latent_norm", "class_coverage", "intrinsic_reward")
SCALE = {"tiny": (1, {}), "cpu": (2, {"train.steps": 300}), "full": (3, {})}  # seeds, overrides


def curves(runs: dict[str, list[Path]]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
  """{explorer: {metric: (steps [T], values [seeds, T])}} from each run's metrics.jsonl."""
  out = {}
  for name, dirs in runs.items():
    rows = [wd.read_metrics(d) for d in dirs]
    length = min(len(r) for r in rows)
    steps = np.array([row["step"] for row in rows[0][:length]])
    out[name] = {m: (steps, np.array([[row[m] for row in r[:length]] for r in rows]))
                 for m in METRICS if m in rows[0][0]}
  return out


def table(data) -> str:
  header = ["explorer"] + [f"{m} (last quarter)" for m in METRICS]
  rows = []
  for name, metrics in data.items():
    cells = []
    for m in METRICS:
      if m not in metrics:
        cells.append("-")
        continue
      values = metrics[m][1]
      tail = values[:, -max(1, values.shape[1] // 4):].mean(1)  # per seed
      cells.append(f"{tail.mean():.3f} +- {tail.std():.3f}")
    rows.append([name] + cells)
  return common.markdown_table(header, rows)


def plot(data, path: Path):
  plt = common.pyplot()
  fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.2))
  for ax, m in zip(axes, METRICS):
    for name, metrics in data.items():
      if m in metrics:
        steps, values = metrics[m]
        ax.plot(steps, values.mean(0), label=name)
        ax.fill_between(steps, values.min(0), values.max(0), alpha=0.25)
    ax.set_title(m)
    ax.set_xlabel("step")
  axes[0].legend(fontsize=8)
  common.save_figure(fig, path)


def main():
  parser = common.parser(__doc__)
  parser.add_argument("--from-t1", type=Path, default=None, help="a T1 workdir whose palm/random_actions runs to read")
  args = parser.parse_args()
  started = common.start()
  args.workdir.mkdir(parents=True, exist_ok=True)
  if args.from_t1:
    runs = {name: sorted(args.from_t1.glob(f"{name}_seed*")) for name in EXPLORERS}
    missing = [name for name, dirs in runs.items() if not dirs]
    if missing:
      raise SystemExit(f"{args.from_t1} holds no {', '.join(missing)} runs (expected {missing[0]}_seed0/ ...)")
  else:
    seeds, overrides = SCALE[args.scale]
    runs = {name: [common.pretrain_run(args.workdir / f"{name}_seed{s}", args.scale, {**overrides, **o}, s)
                   for s in range(seeds)] for name, o in EXPLORERS.items()}
  data = curves(runs)
  plot(data, args.workdir / "t4_exploration.png")
  source = f"the runs of {args.from_t1}" if args.from_t1 else f"{args.scale}-scale runs"
  common.write_results(args.workdir, "T4: exploration, APT vs random actions", started,
                       f"From {source} ({', '.join(f'{k}: {len(v)} seeds' for k, v in runs.items())}). Means over "
                       f"the last quarter of training, +- std over seeds.\n\n" + table(data)
                       + "\n![T4](t4_exploration.png)\n")


if __name__ == "__main__":
  main()
