"""T1, vision transfer: does playing in the generator's latent space give features that transfer to
real images, and do exploration, temporal pairs and augmentation matter?

    python experiments/t1_vision_transfer.py --workdir runs/t1 --runs runs/cpu --scale cpu  # hours on 2 cores; resumable
    python experiments/t1_vision_transfer.py --workdir runs/t1 --runs runs/cpu --table-only  # probe and tabulate what ran
    ... --methods palm palm_aug --keep-from runs/t1/results.json  # pretrain these first; keep every cell already probed

Methods, all on the same fused loop and encoder (configs/pretrain_fashion_mnist.py):
  palm            APT explorer, temporal pairs (o_t, o_t+offset), no augmentation (the paper)
  random_actions  uniform random actions instead of APT, temporal pairs
  palm_aug, random_actions_aug
                  the same with SimCLR's augmentation of each frame of a pair (learner.augment=add)
  genrep_latent_s<sigma>
                  no exploration: GenRep's method, i.i.d. (z, y) and the latent neighbour
                  z + sigma * n of the same class, each view augmented (static_views=latent); sigma
                  swept over SIGMAS at seed 0, every seed at the best (BEST_BY)
  genrep_latent_noaug
                  the same pairs at the best sigma without augmentation
  genrep_single   i.i.d. generator samples, two augmentations of each (GenRep's "Tx only" setting)
  simclr_real     SimCLR augmentation pairs on the real Fashion-MNIST training images
  novelty_w0.9, random_actions_w0.9
                  the novelty planner (palmup.planner: it explores more than random actions in T4)
                  and random actions with env.action_weight 0.9, where the action decides a quarter
                  of the planner's novelty instead of 4-7% (T4's controllability), temporal pairs
  novelty         the planner at the default dynamics
  gradient        the gradient explorer (palmup.gradient_explorer: an actor trained by the particle
                  reward's gradient through the world; it explores more than random actions in T4)
  random_encoder  the same encoder at random initialisation (a floor)
  raw_pixels      no encoder: the images resized to the encoder's input, flattened (a floor; no
                  pretraining, and no seeds: its probes are deterministic, so it is probed once)
Each is probed on every built-in dataset (logistic probe top-1, and 10-shot ridge with its L2 chosen by
leave-one-out), mean +- the half-width of its 95% t-interval over seeds, and each reference method
(REFERENCES, and genrep_latent at the best sigma) against each method: the difference, the paired
t-test's p (seed k of every method starts from seed k; against raw pixels a one-sample test) and
that p Holm-adjusted over the comparison's probes on every dataset (palmup.stats). Scales: tiny (CI plumbing,
seconds), cpu (1,200 pretraining steps, 3 seeds: 4x the first CPU table's budget, with the CPU
scale's cheaper learner, common.CPU_PRETRAIN), full (accelerator: 1024 envs, ResNet-18, 20k steps,
3 seeds; documented, not run here). Each run keeps its encoder as <runs>/<method>_seed<seed>/
encoder_<steps>/ (common.encoder_at): kept encoders are reused on a rerun, so an interrupted table
resumes, and T5 given the same --runs shares them. Writes results.md after every run (partial cells
say how many seeds they hold; it also names every method that does not beat raw pixels),
results.json, t1_vision_transfer.png.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np

import common
from palmup import evaluate, stats, viz, workdirs

SIGMAS = (0.1, 0.2, 0.4)  # GenRep's sweep (ImageNet-100): 60.2 / 63.2 / 65.5 / 65.4 / 64.4% at 0.05 / 0.1 / 0.2 / 0.3 / 0.4
LATENT = lambda sigma, augment: {"explorer": "static", "static_views": "latent", "static_sigma": sigma,
                                 "learner.augment": augment}
METHODS = {
    "palm": {"explorer": "apt"},
    "random_actions": {"explorer": "random"},
    "palm_aug": {"explorer": "apt", "learner.augment": "add"},
    "random_actions_aug": {"explorer": "random", "learner.augment": "add"},
    **{f"genrep_latent_s{sigma}": LATENT(sigma, "add") for sigma in SIGMAS},
    "genrep_latent_noaug": None,  # LATENT(best sigma, "none"), once the sweep has chosen it
    "genrep_single": {"explorer": "static", "learner.augment": "only"},
    "simclr_real": {"explorer": "static", "learner.augment": "only", "static_source": "fashion_mnist"},
    "novelty_w0.9": {"explorer": "novelty", "env.action_weight": 0.9},
    "random_actions_w0.9": {"explorer": "random", "env.action_weight": 0.9},
    "novelty": {"explorer": "novelty"},
    "gradient": {"explorer": "gradient"},
}
SCALE = {  # seeds, pretraining steps, probe datasets
    "tiny": (1, 6, ("digits",)),
    "cpu": (3, 1200, ("fashion_mnist", "mnist5k", "digits")),
    "full": (3, common.FULL_PRETRAIN["train.steps"], ("fashion_mnist", "mnist5k", "digits")),
}
SHOTS = "10"
# The methods the tables test every other method against, with their titles.
REFERENCES = {"palm": "Palm", "palm_aug": "Palm with augmentation (`learner.augment=add`, the main job's learner; runs made before its agent trained on augmented views)",
              "random_actions": "Random actions (temporal pairs, no augmentation)",
              "gradient": "The gradient explorer (temporal pairs, no augmentation)"}


def best_sigma(results) -> float | None:
  """The sweep's sigma whose seed-0 run has the best probe mean (linear and few-shot, every dataset);
  None until every sigma's seed 0 is probed."""
  score = {}
  for sigma in SIGMAS:
    cells = [v[0] for by_kind in results[f"genrep_latent_s{sigma}"].values() for v in by_kind.values() if v]
    if not cells:
      return None
    score[sigma] = float(np.mean(cells))
  return max(score, key=score.get)


def job_overrides(method: str, sigma: float | None) -> dict | None:
  """The pretraining overrides of a method (None: not runnable yet, it needs the best sigma)."""
  if method == "genrep_latent_noaug":
    return None if sigma is None else LATENT(sigma, "none")
  return METHODS[method]


def run(runs: Path, scale: str, seeds: int | None = None, report=lambda results, shots, sigma: None,
        table_only: bool = False, methods=None, kept: dict | None = None) -> dict:
  """-> ({method: {dataset: {"linear": [per seed], "few_shot": [per seed]}}}, shots, best sigma);
  report(results, shots, sigma) after every run, for partial tables. Seed 0 of every method first
  (the sweep with it), then the other seeds, of the sweep's best sigma only. table_only: probe and
  tabulate the runs that finished, pretrain nothing; methods: pretrain only these (the others as
  table_only); kept: an earlier results.json's "results", whose cells of a (method, seed) are
  taken as they are, neither pretrained nor probed again (with the floors of its random_actions seed)."""
  n_seeds, steps, probe_sets = SCALE[scale]
  n_seeds = seeds or n_seeds
  cfg = common.probe_config(scale)
  shots = common.shots_of(cfg, SHOTS)
  results = {m: {d: {"linear": [], "few_shot": []} for d in probe_sets}
             for m in (*METHODS, "random_encoder", "raw_pixels")}

  def record(method, encoder, floor=None):
    for dataset in probe_sets:
      found = common.probed(encoder, dataset, cfg, shots, floor)
      for kind in ("linear", "few_shot"):
        results[method][dataset][kind].append(found[kind])

  def keep(method, seed) -> bool:
    """Copies (method, seed)'s cells from `kept`; False where it does not hold them all."""
    held = (kept or {}).get(method, {})
    if not all(len(held.get(d, {}).get(k, ())) > seed for d in probe_sets for k in ("linear", "few_shot")):
      return False
    for d in probe_sets:
      for k in ("linear", "few_shot"):
        results[method][d][k].append(held[d][k][seed])
    return True

  def wanted(seed, method, sigma):
    swept = method.startswith("genrep_latent_s")
    return seed == 0 or not swept or (sigma is not None and method == f"genrep_latent_s{sigma}")

  sigma = None
  for seed in range(n_seeds):
    for method in METHODS:
      sigma = best_sigma(results) if sigma is None else sigma
      overrides = job_overrides(method, sigma)
      encoder = Path(runs) / f"{method}_seed{seed}" / f"encoder_{steps}"
      if overrides is None or not wanted(seed, method, sigma):
        continue
      floors = method == "random_actions"  # the floors at the same architecture and input shape (pixels: once)
      if keep(method, seed):
        if floors:
          keep("random_encoder", seed)
          if seed == 0:
            keep("raw_pixels", 0)
        continue
      if (table_only or (methods is not None and method not in methods)) and not encoder.exists():
        continue
      record(method, common.encoder_at(encoder.parent, scale, overrides, seed, steps))
      if floors:
        record("random_encoder", encoder, 1000 + seed)
        if seed == 0:
          record("raw_pixels", encoder, "pixels")
      report(results, shots, sigma)
  report(results, shots, sigma)
  return results, shots, sigma


def table(results, shots, seeds: int) -> str:
  """Mean +- std per method and probe; a cell short of `seeds` seeds says how many it holds."""
  datasets = list(next(iter(results.values())))
  header = ["method"] + [f"{d} {kind}" for d in datasets for kind in ("linear", f"{shots}-shot")]
  want = lambda m: 1 if m == "raw_pixels" else seeds
  cell = lambda m, v: "missing" if not v else common.mean_ci95(v) + ("" if len(v) == want(m) else f" ({len(v)}/{seeds} seeds)")
  rows = [[m] + [cell(m, results[m][d][k]) for d in datasets for k in ("linear", "few_shot")] for m in results]
  return common.markdown_table(header, rows)


def tests_against(results, shots, ref: str = "palm") -> str:
  """`ref` minus each method per dataset and probe (points), the two-sided p of the paired t-test over
  the seeds both hold (seed k of every method starts from the same seed; against raw pixels' single
  deterministic value a one-sample test), that p Holm-adjusted over the comparison's family (its
  probes on every dataset), and the smallest difference (points) the test detects with 80% power at
  the observed spread, at 0.05 / the family's size (palmup.stats)."""
  datasets = list(results[ref])
  header = [f"{ref} vs"] + [f"{d} {kind}" for d in datasets for kind in ("linear", f"{shots}-shot")]
  rows = []
  for m in results:
    if m == ref:
      continue
    diffs, ps, pairs = [], [], []
    for d in datasets:
      for k in ("linear", "few_shot"):
        a, b = results[ref][d][k], results[m][d][k]
        n = min(len(a), len(b))
        kind = "one_sample" if m == "raw_pixels" and len(b) == 1 else "paired"
        pairs.append((a if kind == "one_sample" else a[:n], b if kind == "one_sample" else b[:n], kind))
        p = stats.one_sample_p(a, b[0]) if kind == "one_sample" else stats.paired_p(a[:n], b[:n]) if n else float("nan")
        diffs.append(100 * (np.mean(a) - np.mean(b)) if a and b else float("nan"))
        ps.append(p)
    holm, family = stats.holm(ps), int(np.isfinite(ps).sum())
    detectable = [100 * stats.detectable_difference(*pair, alpha=stats.ALPHA / max(family, 1)) for pair in pairs]
    rows.append([m] + ["-" if not np.isfinite(p) else f"{dv:+.1f} (p {p:.3f}, Holm {h:.3f}, detectable {dd:.1f})"
                       for dv, p, h, dd in zip(diffs, ps, holm, detectable)])
  return common.markdown_table(header, rows)


def pixel_verdicts(results, shots) -> str:
  """A sentence per method and dataset whose mean does not beat raw pixels (evaluate.pixel_verdict),
  of the (method, dataset) cells probed beside the pixels'."""
  mean = lambda m, d: {"logistic": float(np.mean(results[m][d]["linear"])),
                       f"{shots}-shot": float(np.mean(results[m][d]["few_shot"]))}
  probed = [(m, d) for m in results if m != "raw_pixels" for d in results[m]
            if results[m][d]["linear"] and results["raw_pixels"][d]["linear"]]
  if not probed:
    return "Raw pixels are not probed beside any method yet: no comparison with them."
  lines = [evaluate.pixel_verdict(f"{m} on {d}", mean(m, d), mean("raw_pixels", d)) for m, d in probed]
  return "\n\n".join(line for line in lines if line) or "Every method probed beats raw pixels on every probe and dataset."


def plot(results, shots, path: Path):
  plt = viz.pyplot()
  datasets, methods = list(next(iter(results.values()))), list(results)
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
  width = 0.8 / len(methods)
  for ax, kind, title in zip(axes, ("linear", "few_shot"), ("linear probe", f"{shots}-shot ridge")):
    for i, m in enumerate(methods):
      values = [100 * np.asarray(results[m][d][kind] or [np.nan]) for d in datasets]  # nan: not run yet
      ax.bar(np.arange(len(datasets)) + i * width, [v.mean() for v in values], width,
             yerr=[np.nan_to_num(stats.mean_ci95(v)[1]) for v in values], label=m, capsize=2)  # 95% t-interval
    ax.set_xticks(np.arange(len(datasets)) + width * (len(methods) - 1) / 2, datasets)
    ax.set_ylabel("top-1 %")
    ax.set_title(title)
    lo = min(100 * np.min(results[m][d][kind]) for m in methods for d in datasets if results[m][d][kind])
    ax.set_ylim(max(0, lo - 10), 100)
  axes[0].legend(fontsize=7, loc="lower left")
  common.save_figure(fig, path)


def main():
  parser = common.parser(__doc__)
  parser.add_argument("--seeds", type=int, default=None, help="override the scale's number of seeds")
  parser.add_argument("--table-only", action="store_true", help="probe and tabulate the finished runs, pretrain nothing")
  parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=None,
                      help="pretrain only these methods (the others: their finished runs and --keep-from cells)")
  parser.add_argument("--keep-from", type=Path, default=None,
                      help="an earlier results.json of the same scale and code (its own workdir's: a resumed table probes only new runs): "
                           "the cells it holds are taken as they are")
  args = parser.parse_args()
  started = common.start()
  args.workdir.mkdir(parents=True, exist_ok=True)
  seeds = args.seeds or SCALE[args.scale][0]
  runs = args.runs or args.workdir

  kept_json = json.loads(args.keep_from.read_text()) if args.keep_from else {}

  def run_commits() -> dict:
    """{run: its commits} of the runs behind the table's cells: the kept file's record (or "not
    recorded"), then every run of --runs."""
    out = {f"{m}_seed{k}": ["not recorded"] for m, by_d in kept_json.get("results", {}).items()
           if m not in ("random_encoder", "raw_pixels") for k in range(max(map(len, by_d[next(iter(by_d))].values()), default=0))}
    out.update(kept_json.get("run_commits", {}))
    out.update({f"{m}_seed{k}": workdirs.run_commits(Path(runs) / f"{m}_seed{k}") for m in METHODS for k in range(seeds)
                if (Path(runs) / f"{m}_seed{k}").exists()})
    return out

  def write(results, shots, sigma):
    commits = run_commits()
    common.write_json(args.workdir / "results.json", {"command": f"python {shlex.join(sys.argv)}", "commit": started[1],
                                                       "run_commits": commits, "shots": shots, "seeds": seeds,
                                                       "best_sigma": sigma, "results": results})
    if args.methods and not args.keep_from:  # a table of these methods (and what else has runs), with the floors
      held = lambda m: any(v for by_k in results[m].values() for v in by_k.values())
      results = {m: v for m, v in results.items()
                 if m in args.methods or m in ("random_encoder", "raw_pixels") or held(m)}
    plot(results, shots, args.workdir / "t1_vision_transfer.png")
    latent = f"genrep_latent_s{sigma}"
    against_latent = ("" if sigma is None else f"\n{latent} (the sweep's best sigma) minus each method:\n\n"
                      + tests_against(results, shots, latent))
    missing = sum(not v for by_d in results.values() for by_k in by_d.values() for v in by_k.values())
    resume = (f"\n{missing} cells are missing (or short of seeds, as marked); this resumes them: "
              f"`python experiments/t1_vision_transfer.py --workdir {args.workdir} --runs {runs} --scale {args.scale}"
              f"{f' --seeds {args.seeds}' if args.seeds else ''}{f' --keep-from {args.keep_from}' if args.keep_from else ''}`\n"
              if missing else "")
    common.write_results(args.workdir, f"T1: vision transfer ({args.scale} scale)", started,
                         f"Top-1 % on each dataset's test split, mean +- the half-width of the 95% t-interval over seeds: a "
                         f"logistic probe on frozen features, "
                         f"and a ridge probe on {shots} labelled images per class (its L2 chosen by leave-one-out on them). "
                         f"GenRep's latent-view sweep: sigma in {SIGMAS}, best {sigma}. The runs ran at: "
                         f"{workdirs.commits_summary(commits)}."
                         + (f" The cells that {args.keep_from} holds are taken from it as they are (its own header and "
                            "history say how they were made); this command probed the rest." if args.keep_from else "")
                         + "\n\n" + table(results, shots, seeds)
                         + resume + "".join(f"\n{title} minus each method (points), the two-sided p of the paired t-test "
                                            "over seeds (against raw pixels, one value: a one-sample test), that p "
                                            "Holm-adjusted over the comparison's family (the probes of its row), and the "
                                            "smallest difference the test detects with 80% power (at 0.05 / the family's "
                                            "size):\n\n"
                                            + tests_against(results, shots, ref) for ref, title in REFERENCES.items()
                                            if ref in results)
                         + against_latent + "\n" + pixel_verdicts(results, shots) + "\n\n![T1](t1_vision_transfer.png)\n")

  kept = kept_json.get("results")
  run(runs, args.scale, args.seeds, report=write, table_only=args.table_only, methods=args.methods, kept=kept)


if __name__ == "__main__":
  main()
