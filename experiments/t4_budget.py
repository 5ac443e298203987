"""T4 budget: APT's exploration and its actor's health against the number of agent updates, beside
uniform random actions.

    python experiments/t4_budget.py --workdir runs/t4_budget --scale cpu     # hours on 2 cores; resumable

Each variant and seed is one run, long enough for the largest budget; the curve reads it in windows.
A budget B (agent updates) is the chunks whose agent-update count lies in (B / 2, B]: with
agent.updates_per_step = U updates a loop step, the loop steps (B / 2U, B / U]. Random actions' runs
are read at the same loop steps. Only chunks that start after the seed phase count (the agent updates from
the first step and acts from agent.seed_steps on), so at CPU scale the smallest budget is 250 (loop steps
11-15). Per window: judge entropy and coverage (the exploration, as in T4),
the actor's health (policy_std, policy_cosine), what the critic separates (q_spread_actions against
q_spread_states) and how much of its targets it explains (td_error against target_std); mean +- std
over seeds, the gap to random actions in pooled stds and Welch's p on judge entropy, Holm-adjusted
over each variant's budgets.

The world (CPU scale): T1's budget learner (common.CPU_PRETRAIN: 24 x 24 frames, conv widths halved,
unaugmented pairs), the main config's env, 64 envs, a batch of 256. The agent: the APT variant of
VARIANTS, U = 16 updates a step (URLB updates every 2 frames of one env: 32 a step of 64 envs), a
seed phase of 8 steps. Writes results.md,
results.json and t4_budget.png as runs finish; the runs' last checkpoints are what
experiments/t4_diagnosis.py reads.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import common
import t4_exploration
from palmup import stats, viz

# The variants, with their agent.updates_per_step (U) and the overrides of the main config.
VARIANTS = {
    "random_actions": {"explorer": "random"},
    # What T4's diagnosis points to: SAC seeing the latent and class, the reward among the envs of a
    # step (herding earns nothing), the n-step sum (the next frame's reward depends on the action), the
    # rewards standardised (their scale against SAC's temperature)
    "apt": {"explorer": "apt", "agent.algo": "sac", "agent.observe": "latent", "apt.reference": "population",
            "apt.nstep_reward": "sum", "agent.standardize_reward": True},
    "apt_default": {"explorer": "apt"},  # the main config's APT (SAC on the learner's features, URLB's reward)
    # URLB's APT as URLB runs it (the main config with its DDPG backbone: std 0.2 clipped at 0.3,
    # n-step 3, tau 0.01, lr 1e-4, the learner's features, the batch reference, the first frame's reward)
    "apt_ddpg_urlb": {"explorer": "apt", "agent.algo": "ddpg"},
}
METRICS = ("judge_entropy", "judge_coverage", "policy_std", "policy_cosine", "policy_entropy", "alpha",
           "q_spread_actions", "q_spread_states", "td_error", "target_std")
SCALE = {"tiny": dict(seeds=1, updates_per_step=2, budgets=(4, 8), chunk_steps=1, seed_steps=1,
                      config={"train.warmup_steps": 4}),
         "cpu": dict(seeds=3, updates_per_step=16, budgets=(250, 1_000, 5_000, 20_000), chunk_steps=5, seed_steps=8,
                     config=common.CPU_PRETRAIN),
         "full": dict(seeds=3, updates_per_step=16, budgets=(100, 1_000, 10_000, 100_000), chunk_steps=25, seed_steps=50,
                      config=common.FULL_PRETRAIN)}


def windows(budgets, updates_per_step: int) -> dict[str, tuple[int, int]]:
  """{budget label: (lo, hi] loop steps} of each budget's window."""
  return {str(b): (b // (2 * updates_per_step), max(b // updates_per_step, 1)) for b in budgets}


def summary(runs: dict[str, list[Path]], steps: dict[str, tuple[int, int]]) -> dict:
  """{(budget, variant): {metric: per-seed values}} of the runs that reached the window."""
  out = {}
  for budget, window in steps.items():
    for variant, dirs in runs.items():
      done = [t4_exploration.after_seed_phase(d, window, METRICS) for d in dirs if (d / "metrics.jsonl").exists()]
      done = [d for d in done if d]
      if done:
        out[(budget, variant)] = {m: [d[m] for d in done] for m in done[0]}
  return out


def table(data: dict, steps: dict, seeds: int) -> str:
  """A row per budget and variant; Welch's p on judge entropy against random actions, and that p
  Holm-adjusted over the variant's family: its tests at every budget (palmup.stats)."""
  header = ["agent updates", "loop steps", "variant", "seeds", *METRICS, "gap vs random (stds)", "Welch p", "Holm p"]
  tests = {}
  for budget in steps:
    base = data.get((budget, "random_actions"), {}).get("judge_entropy")
    for variant in VARIANTS:
      cell = data.get((budget, variant))
      if cell is not None and base and variant != "random_actions":
        tests[(budget, variant)] = (t4_exploration.gap(cell["judge_entropy"], base)[0],
                                    stats.welch_p(cell["judge_entropy"], base))
  holm = {}
  for variant in VARIANTS:
    keys = [k for k in tests if k[1] == variant]
    holm.update(zip(keys, stats.holm([tests[k][1] for k in keys])))
  rows = []
  for budget, (lo, hi) in steps.items():
    for variant in VARIANTS:
      cell = data.get((budget, variant))
      if cell is None:
        rows.append([budget, f"{lo}-{hi}", variant, "0"] + ["missing"] * (len(METRICS) + 3))
        continue
      g, p = tests.get((budget, variant), ("-", None))
      pvals = ["-", "-"] if p is None or not np.isfinite(p) else [f"{p:.3f}", f"{holm[(budget, variant)]:.3f}"]
      n = len(cell["judge_entropy"])
      rows.append([budget, f"{lo}-{hi}", variant, f"{n}" + ("" if n == seeds else f" of {seeds}")]
                  + [t4_exploration.fmt(cell[m], 3) if m in cell else "-" for m in METRICS] + [g, *pvals])
  return common.markdown_table(header, rows)


def plot(data: dict, steps: dict, path: Path):
  plt = viz.pyplot()
  shown = ("judge_entropy", "policy_std", "policy_cosine", "q_spread_actions")
  fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.2))
  budgets = [int(b) for b in steps]
  for ax, m in zip(axes, shown):
    for variant in VARIANTS:
      cells = [data.get((str(b), variant), {}).get(m) for b in budgets]
      xs = [b for b, c in zip(budgets, cells) if c]
      if xs:
        ys = [np.mean(c) for c in cells if c]
        err = [np.std(c) for c in cells if c]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=variant)
    ax.set_xscale("log")
    ax.set_xlabel("agent updates")
    ax.set_title(m)
  axes[0].legend(fontsize=8)
  common.save_figure(fig, path)


def main():
  parser = common.parser(__doc__)
  parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
  parser.add_argument("--table-only", action="store_true", help="tabulate the runs, run nothing")
  parser.add_argument("--seeds", type=int, nargs="+", default=None,
                      help="run these seeds (default: 0 .. the scale's seeds - 1)")
  args = parser.parse_args()
  started = common.start()
  args.workdir.mkdir(parents=True, exist_ok=True)
  s = SCALE[args.scale]
  if any(not 0 <= seed < s["seeds"] for seed in args.seeds or ()):
    parser.error(f"--seeds {args.seeds} is invalid; valid: seeds in [0, {s['seeds'] - 1}] at scale {args.scale}")
  u = s["updates_per_step"]
  steps = windows(s["budgets"], u)
  total = max(hi for _, hi in steps.values())
  total = -(-total // s["chunk_steps"]) * s["chunk_steps"]  # whole chunks
  runs_dir = args.runs or args.workdir
  runs = {v: [runs_dir / f"{v}_seed{i}" for i in range(s["seeds"])] for v in VARIANTS}

  def write():
    data = summary(runs, steps)
    plot(data, steps, args.workdir / "t4_budget.png")
    common.write_json(args.workdir / "results.json",
                      {f"{b} | {v}": cell for (b, v), cell in data.items()})
    common.write_results(
        args.workdir, f"T4 budget: exploration and actor health against agent updates ({args.scale} scale)", started,
        f"{total} loop steps of {u} agent updates each (random actions: the same steps), chunks of "
        f"{s['chunk_steps']} steps, agent.seed_steps {s['seed_steps']}; a budget B reads the chunks of loop steps "
        f"(B / {2 * u}, B / {u}]. Mean +- std over seeds; gap and Welch p on judge_entropy.\n\n"
        + table(data, steps, s["seeds"]) + "\n![T4 budget](t4_budget.png)\n",
        runs=[r for dirs in runs.values() for r in dirs])

  seeds = args.seeds if args.seeds is not None else range(s["seeds"])
  for seed in [] if args.table_only else seeds:
    for variant in args.variants:
      overrides = {**s["config"], **VARIANTS[variant], "train.steps": total, "train.chunk_steps": s["chunk_steps"],
                   "agent.seed_steps": s["seed_steps"], "agent.updates_per_step": u}
      common.pretrain_run(runs[variant][seed], args.scale, overrides, seed)
      write()
  write()


if __name__ == "__main__":
  main()
