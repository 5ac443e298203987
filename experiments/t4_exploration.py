"""T4, exploration: does APT visit more of the image manifold than uniform random actions, and is its actor healthy?

    python experiments/t4_exploration.py --workdir runs/t4 --scale cpu        # the sweep: settings x explorers x 3 seeds
    # T1's palm / random_actions runs (its --runs), one row per window of steps:
    python experiments/t4_exploration.py --workdir runs/t4_t1 --from-t1 runs/cpu --windows 300 1200 3000

Exploration is measured in the fixed feature space of the shipped judge (palmup.evaluators.exploration:
a classifier of real Fashion-MNIST), the same for every explorer and run, per chunk by the
pretraining loop: judge_entropy (kNN entropy of the envs' frames at a step, nats), judge_coverage
(per-class coverage of the real test images), direction_entropy (kNN entropy of z/|z|). The actor's
health: policy_std (across-env std of the actor's noiseless actions; a constant policy gives 0),
policy_cosine (pairwise cosine between envs' actions; 1 = every env pushed the same way),
policy_saturation (|a| > 0.99). latent_norm is a diagnostic only: the shipped generator normalises z.

Each number is the mean over the chunks after APT's seed phase (agent.seed_steps), then mean +- std
over seeds; "gap" is (APT - random) / sqrt((s_apt^2 + s_random^2) / 2) on judge_entropy, and p is
Welch's t-test on the per-seed means. The sweep (--scale cpu, 3 seeds, train.steps 125: 50 seed steps,
then 3 chunks of the actor) crosses the
env/learner settings of SETTINGS with the explorers of EXPLORERS (random actions do not depend on the
agent's settings: one random run per setting and seed serves every APT variant). Finished runs are
skipped on a rerun, and results.md is rewritten after every run, with missing cells marked.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

import common
from palmup import viz, workdirs
from palmup.stats import welch_p

# Setting name -> overrides shared by every explorer (the dynamics and the learner's pairs).
SETTINGS = {
    "default (ema 0.7, offset 4, w 0.5)": {},
    "pair_offset 1": {"learner.pair_offset": 1},
    "ema 0.9": {"env.ema": 0.9},
    "ema 0.95": {"env.ema": 0.95},
    "ema 0.9 VP": {"env.ema": 0.9, "env.variance_preserving": True},
    "action_weight 0.9": {"env.action_weight": 0.9},
}
# The gradient explorer as first measured (before its defaults were centred at lr 3e-4).
GRADIENT_FIRST = {"gradient.lr": 1e-4, "gradient.center_actions": False}
# Explorer name -> overrides. T1's runs are named palm_seed*/random_actions_seed*.
EXPLORERS = {
    "random_actions": {"explorer": "random"},
    # URLB's APT (DDPG) with the actor fixes (straight-through clamp, seed phase, unclipped acting noise)
    "palm": {"explorer": "apt", "agent.algo": "ddpg"},
    "palm_centered": {"explorer": "apt", "agent.algo": "ddpg", "apt.reference": "population",
                      "agent.standardize": True, "agent.center_actions": True},
    "palm_sac": {"explorer": "apt", "agent.algo": "sac"},  # SAC instead of DDPG, URLB's reward
    "palm_sac_centered": {"explorer": "apt", "agent.algo": "sac", "apt.reference": "population",
                          "agent.standardize": True, "agent.center_actions": True},
    "novelty": {"explorer": "novelty"},  # no learned policy: one step of lookahead (palmup.planner)
    # the n-step sum of the rewards of frames 1..n instead of URLB's reward of the sampled frame alone
    # (apt.nstep_reward's default since 08a5fa7; the rows above ran before it, with "sum")
    "palm_sac_sum": {"explorer": "apt", "agent.algo": "sac", "apt.nstep_reward": "sum"},
    # actor and critic see the env's Markov state (latent and class), alone or with the features
    "palm_sac_latent": {"explorer": "apt", "agent.algo": "sac", "agent.observe": "latent"},
    "palm_sac_both": {"explorer": "apt", "agent.algo": "sac", "agent.observe": "both"},
    # the actor trained by the reward's gradient through the world (palmup.gradient_explorer), seeing
    # the latent and class, its reward among the envs' reached frames: uncentred at lr 1e-4, then with
    # the learner's features as its input, then with APT's reference (the replayed batch); then its
    # defaults (centred, lr 3e-4) and centred at lr 1e-3
    "gradient": {"explorer": "gradient", **GRADIENT_FIRST},
    "gradient_features": {"explorer": "gradient", "gradient.observe": "features", **GRADIENT_FIRST},
    "gradient_batch": {"explorer": "gradient", "gradient.reference": "batch", **GRADIENT_FIRST},
    "gradient_centered": {"explorer": "gradient"},
    "gradient_centered_lr1e-3": {"explorer": "gradient", "gradient.lr": 1e-3},
}
# Explorers run only under some settings at --scale cpu (the CPU budget): the rest are marked "not run".
DEFAULT, WEIGHT = "default (ema 0.7, offset 4, w 0.5)", "action_weight 0.9"
SETTINGS_OF = {"palm": (DEFAULT,), "palm_sac": (DEFAULT, WEIGHT), "palm_sac_centered": (DEFAULT, WEIGHT),
               "novelty": (DEFAULT, WEIGHT), "palm_sac_sum": (DEFAULT,), "palm_sac_latent": (DEFAULT, WEIGHT),
               "palm_sac_both": (DEFAULT, WEIGHT), "gradient": (DEFAULT, WEIGHT), "gradient_features": (DEFAULT,),
               "gradient_batch": (DEFAULT,), "gradient_centered": (DEFAULT, WEIGHT), "gradient_centered_lr1e-3": (DEFAULT,)}
METRICS = ("judge_entropy", "judge_coverage", "direction_entropy", "policy_std", "policy_cosine",
           "policy_saturation", "dq_da_cosine", "action_std", "latent_norm", "chunk_seconds")
SCALE = {"tiny": (1, ["default (ema 0.7, offset 4, w 0.5)"], {}),  # seeds, settings, overrides
         "cpu": (3, list(SETTINGS), {"train.steps": 125}),
         "full": (3, list(SETTINGS), {})}


def after_seed_phase(run: Path, window: tuple[int, int] | None = None, metrics=METRICS) -> dict[str, float]:
  """{metric: mean over the chunks that start after the run's seed phase} of one run, for `metrics`;
  with a window (lo, hi), only over those chunks within steps (lo, hi] ({} if the run has none there)."""
  spec = json.loads((run / "config.json").read_text())
  seed_steps, chunk = spec["agent"]["seed_steps"], spec["train"]["chunk_steps"]
  rows = workdirs.read_metrics(run)
  after = [r for r in rows if r["step"] - chunk >= seed_steps]
  if window:
    rows = [r for r in after if r["step"] - chunk >= window[0] and r["step"] <= window[1]]
  else:
    rows = after or rows[-1:]
  return {m: float(np.mean([r[m] for r in rows])) for m in metrics if rows and m in rows[0]}


def summarise(runs: dict[tuple[str, str], list[Path]], windows: dict[str, tuple[int, int]] | None = None) -> dict:
  """{(setting, explorer): {metric: per-seed values}} of the finished runs (windows: setting -> the
  steps it averages)."""
  out = {}
  for (setting, explorer), dirs in runs.items():
    window = (windows or {}).get(setting)
    done = [after_seed_phase(d, window) for d in dirs if any(d.glob("encoder*/learner.json"))]  # encoder/ or kept ones
    done = [d for d in done if d]
    if done:
      out[(setting, explorer)] = {m: [d[m] for d in done] for m in done[0]}
  return out


def fmt(values, digits: int = 2) -> str:
  v = np.asarray(values, float)
  return f"{v.mean():.{digits}f} +- {v.std():.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def gap(a, b) -> tuple[str, str]:
  """(APT - random) in pooled stds and Welch's p, on per-seed values."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  if len(a) < 2 or len(b) < 2:
    return "-", "-"
  pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
  return f"{(a.mean() - b.mean()) / max(pooled, 1e-12):+.1f}", f"{welch_p(a, b):.3f}"


def table(data: dict, settings, explorers) -> str:
  header = ["setting", "explorer", "seeds"] + list(METRICS) + ["gap vs random (stds)", "Welch p"]
  rows = []
  for setting, explorer in itertools.product(settings, explorers):
    cell = data.get((setting, explorer))
    if cell is None:
      skipped = setting not in SETTINGS_OF.get(explorer, SETTINGS)
      rows.append([setting, explorer, "0"] + ["not run" if skipped else "missing"] * (len(METRICS) + 2))
      continue
    base = data.get((setting, "random_actions"), {}).get("judge_entropy")
    g, p = gap(cell["judge_entropy"], base) if base and explorer != "random_actions" else ("-", "-")
    rows.append([setting, explorer, str(len(cell["judge_entropy"]))]
                + [fmt(cell[m]) if m in cell else "-" for m in METRICS] + [g, p])
  return common.markdown_table(header, rows)


def curves(dirs: list[Path], metric: str) -> tuple[np.ndarray, np.ndarray] | None:
  rows = [workdirs.read_metrics(d) for d in dirs]
  rows = [r for r in rows if r and metric in r[0]]
  if not rows:
    return None
  length = min(len(r) for r in rows)
  return np.array([row["step"] for row in rows[0][:length]]), np.array([[row[metric] for row in r[:length]] for r in rows])


def plot(runs: dict, setting: str, explorers, path: Path):
  """Per-chunk curves of one setting: judge entropy, coverage, policy std and cosine."""
  plt = viz.pyplot()
  shown = ("judge_entropy", "judge_coverage", "policy_std", "policy_cosine")
  fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2))
  for ax, m in zip(axes, shown):
    for explorer in explorers:
      c = curves(runs.get((setting, explorer), []), m)
      if c is not None:
        ax.plot(c[0], c[1].mean(0), label=explorer)
        ax.fill_between(c[0], c[1].min(0), c[1].max(0), alpha=0.25)
    ax.set_title(m)
    ax.set_xlabel("step")
  axes[0].legend(fontsize=8)
  fig.suptitle(setting, fontsize=9)
  common.save_figure(fig, path)


def main():
  parser = common.parser(__doc__)
  parser.add_argument("--from-t1", type=Path, default=None, help="a T1 workdir whose palm/random_actions runs to read")
  parser.add_argument("--windows", type=int, nargs="+", default=None,
                      help="with --from-t1: step boundaries, e.g. 300 1200 3000: one row per window of steps")
  parser.add_argument("--shard", type=lambda v: tuple(map(int, v.split("/"))), default=(0, 1),
                      help="i/n: run every n-th job from the i-th (n processes share one --workdir)")
  parser.add_argument("--table-only", action="store_true", help="tabulate the finished runs, run nothing")
  parser.add_argument("--explorers", nargs="+", choices=list(EXPLORERS), default=None,
                      help="run and tabulate only these explorers")
  parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=None,
                      help="run and tabulate only these settings")
  args = parser.parse_args()
  if args.windows and not args.from_t1:
    parser.error(f"--windows {' '.join(map(str, args.windows))} needs --from-t1 (the sweep's runs are 125 steps)")
  started = common.start()
  args.workdir.mkdir(parents=True, exist_ok=True)
  windows = None
  if args.from_t1:
    bounds = [0, *(args.windows or [])]
    windows = {f"T1, steps {lo}-{hi}": (lo, hi) for lo, hi in zip(bounds, bounds[1:])} or None
    settings, explorers = list(windows or ["T1"]), ["random_actions", "palm"]
    found = {name: sorted(args.from_t1.glob(f"{name}_seed*")) for name in explorers}
    runs = {(s, name): dirs for s in settings for name, dirs in found.items()}
    missing = [name for name, dirs in found.items() if not dirs]
    if missing:
      raise SystemExit(f"{args.from_t1} holds no {', '.join(missing)} runs (expected {missing[0]}_seed0/ ...)")
    jobs = []
  else:
    seeds, settings, overrides = SCALE[args.scale]
    settings = [s for s in settings if s in (args.settings or settings)]
    explorers = args.explorers or list(EXPLORERS)
    slug = lambda s: "".join(ch if ch.isalnum() or ch == "." else "_" for ch in s.split(" (")[0])
    runs = {(s, e): [args.workdir / f"{slug(s)}__{e}_seed{i}" for i in range(seeds)]
            for s, e in itertools.product(settings, explorers)}
    jobs = [(s, e, i) for s in settings for i in range(seeds) for e in explorers  # settings in order of priority
            if s in SETTINGS_OF.get(e, SETTINGS) or args.scale == "full"]
    jobs = [] if args.table_only else jobs[args.shard[0]::args.shard[1]]
  source = f"the runs of {args.from_t1}" if args.from_t1 else f"{args.scale}-scale runs"

  def write():
    data = summarise(runs, windows)
    plotted = settings[:1] if windows else settings  # windows of the same runs share one plot
    for i, setting in enumerate(plotted):
      plot(runs, setting, explorers, args.workdir / f"t4_{i}.png")
    figures = "\n".join(f"![{s}](t4_{i}.png)" for i, s in enumerate(plotted))
    common.write_results(args.workdir, "T4: exploration in the judge's feature space, APT vs random actions", started,
                         f"From {source}. Means over the chunks after APT's seed phase, +- std over seeds; gap and "
                         f"Welch p on judge_entropy.\n\n" + table(data, settings, explorers) + "\n" + figures + "\n",
                         runs=[r for dirs in runs.values() for r in dirs])

  for setting, explorer, seed in jobs:
    overrides = {**SCALE[args.scale][2], **SETTINGS[setting], **EXPLORERS[explorer]}
    common.pretrain_run(runs[(setting, explorer)][seed], args.scale, overrides, seed)
    write()
  write()


if __name__ == "__main__":
  main()
