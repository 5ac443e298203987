"""T5, budget curve: probe accuracy against pretraining steps, for Palm and SimCLR on the real images,
against the raw-pixel and random-encoder floors.

    python experiments/t5_budget_curve.py --workdir runs/t5 --runs runs/cpu --scale cpu  # hours on 2 cores; resumable

Each method and seed is one run (in --runs, default the workdir), extended budget by budget: the
run is pretrained to the first budget, its encoder kept as encoder_<steps>/, then resumed to the
next budget (common.encoder_at). T1 at the same scale pointed at the same --runs reuses the
1,200-step encoders instead of pretraining them again. Every kept encoder is probed on
Fashion-MNIST (logistic top-1 and 10-shot ridge). Writes results.md (table: mean +- std over seeds
per budget, with the floors; partial while runs go on), results.json and t5_budget_curve.png.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import common
from palmup import viz
from t1_vision_transfer import METHODS

CURVE_METHODS = ("palm", "simclr_real")
SCALE = {"tiny": (1, (3, 6)), "cpu": (3, (300, 1200, 3000)), "full": (3, (2000, 8000, 20000))}  # seeds, budgets
DATASET, SHOTS = "fashion_mnist", "10"


def floors_of(encoder: Path, dataset: str, cfg, shots: str) -> dict:
  """The raw-pixel and random-init (seed 1000, T1's seed-0 floor) floors at the encoder's input shape
  and architecture."""
  return {"raw_pixels": common.probed(encoder, dataset, cfg, shots, "pixels"),
          "random_encoder": common.probed(encoder, dataset, cfg, shots, 1000)}


def main():
  parser = common.parser(__doc__)
  parser.add_argument("--seeds", type=int, default=None, help="override the scale's number of seeds")
  parser.add_argument("--max-steps", type=int, default=None,
                      help="pretrain no run beyond this; larger budgets are tabulated from runs that reached them")
  args = parser.parse_args()
  started = common.start()
  args.workdir.mkdir(parents=True, exist_ok=True)
  runs = args.runs or args.workdir
  seeds, budgets = SCALE[args.scale]
  seeds = args.seeds or seeds
  cfg = common.probe_config(args.scale)
  shots = common.shots_of(cfg, SHOTS)
  dataset = "digits" if args.scale == "tiny" else DATASET
  results = {m: {b: {"linear": [], "few_shot": []} for b in budgets} for m in CURVE_METHODS}
  floors = None
  for seed in range(seeds):
    for method in CURVE_METHODS:
      for budget in budgets:
        run = runs / f"{method}_seed{seed}"
        if args.max_steps and budget > args.max_steps and not (run / f"encoder_{budget}").exists():
          continue
        encoder = common.encoder_at(run, args.scale, METHODS[method], seed, budget)
        found = common.probed(encoder, dataset, cfg, shots)
        for kind in ("linear", "few_shot"):
          results[method][budget][kind].append(found[kind])
        floors = floors or floors_of(encoder, dataset, cfg, shots)
        write(args, started, results, floors, seeds, budgets, dataset, shots)  # partial tables as runs finish


def write(args, started, results, floors, seeds, budgets, dataset, shots):
  """results.json, results.md (cells with fewer than `seeds` seeds say so) and the plot."""
  common.write_json(args.workdir / "results.json", {"dataset": dataset, "shots": shots, "seeds": seeds,
                                                     "results": results, "floors": floors})
  cell = lambda v: "missing" if not v else common.mean_std(v) + ("" if len(v) == seeds else f" ({len(v)}/{seeds} seeds)")
  header = ["method", "steps", "linear", f"{shots}-shot"]
  rows = [[m, str(b), cell(results[m][b]["linear"]), cell(results[m][b]["few_shot"])]
          for m in CURVE_METHODS for b in budgets]
  rows += [[k, "-", f"{100 * v['linear']:.1f}", f"{100 * v['few_shot']:.1f}"] for k, v in floors.items()]
  plot(results, floors, budgets, shots, args.workdir / "t5_budget_curve.png")
  common.write_results(args.workdir, f"T5: probe accuracy against pretraining budget ({args.scale} scale)", started,
                       f"Top-1 % on {dataset}'s test split, mean +- std over {seeds} seeds; floors: raw pixels and "
                       "the encoder at random init (seed 1000), one value each.\n\n"
                       + common.markdown_table(header, rows) + "\n![T5](t5_budget_curve.png)\n")


def plot(results, floors, budgets, shots, path: Path):
  plt = viz.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for ax, kind, title in zip(axes, ("linear", "few_shot"), ("logistic probe", f"{shots}-shot ridge")):
    for m in results:
      done = [b for b in budgets if results[m][b][kind]]  # a partial table plots what has run
      values = [100 * np.asarray(results[m][b][kind]) for b in done]
      ax.errorbar(done, [v.mean() for v in values], yerr=[v.std() for v in values], label=m, marker="o", capsize=3)
    for (name, v), style in zip(floors.items(), ("--", ":")):
      ax.axhline(100 * v[kind], color="grey", linestyle=style, label=name)
    ax.set_xscale("log")
    ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("pretraining steps")
    ax.set_ylabel("top-1 %")
    ax.set_title(title)
  axes[0].legend(fontsize=7)
  common.save_figure(fig, path)


if __name__ == "__main__":
  main()
