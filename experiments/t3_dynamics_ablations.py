"""T3, latent dynamics ablations: how the EMA, the action's share, the noise scale, the
variance-preserving EMA and holding vs resampling the class shape what the agent sees and what the
encoder learns.

    python experiments/t3_dynamics_ablations.py --workdir runs/t3 --scale cpu    # hours on 2 CPU cores; resumable

Two parts, one parameter varied at a time around configs/pretrain_fashion_mnist.py's env:
  statistics  every setting of SWEEP at once: the env rollouts are vmapped over stacked EnvParams
              inside one jitted program (uniform random actions, num_envs envs, the first `steps`
              steps of an episode): kNN entropy of the latents after those steps (nats; a transient
              from the initial N(0, noise_scale^2 I) latent, not a stationary value), their mean norm,
              the mean absolute change of consecutive frames (fraction of 255), the fraction of
              consecutive frames of the same class.
  sweep       `palmup sweep` (palmup.sweep) over AXES at the main job's defaults (augmented learner,
              APT with SAC) and T1's CPU budget (configs/sweep.py: 24 x 24, the conv widths halved,
              1,200 steps), 3 seeds, one run at a time: the logistic and 10-shot probes on
              fashion_mnist, mnist5k and digits with the pixel and random-encoder floors, judge
              entropy and coverage; a table per axis with 95% intervals and paired p against the
              main job's setting, Holm-adjusted over the sweep's probe tests, each setting judged
              against it dataset by dataset (the defaults rule: above on two datasets and below on
              none, at Holm p < 0.05), and a plot per axis, in <workdir>/sweep/.
Writes results.md (both parts), results.json (the statistics; the sweep's are in sweep/results.json)
and t3_dynamics_ablations.png. --table-only tabulates both results.json files again and runs nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp

import common
from palmup import apt, configs, generators, sweep, viz
from palmup.env import EnvParams, LatentEnv, params_from_config

SWEEP = {"ema": (0.0, 0.5, 0.7, 0.9, 0.95, 0.99), "action_weight": (0.0, 0.25, 0.5, 0.75, 1.0),
         "noise_scale": (0.5, 1.0, 2.0), "variance_preserving": (False, True),
         "resample_class_each_step": (False, True)}
AXES = ("env.ema=0,0.5,0.7,0.9,0.99;env.action_weight=0,0.5,1;env.variance_preserving=True;"
        "env.resample_class_each_step=True")
SCALE = {  # statistics envs and steps; the sweep's overrides of configs/sweep.py
    "tiny": (4, 4, {"base": "pretrain_tiny", "overrides": "", "axes": "env.ema=0.5", "seeds": 2,
                    "datasets": "digits", "shots": 5, **{f"probe.{k}": v for k, v in common.TINY_PROBE.items()}}),
    "cpu": (64, 32, {"axes": AXES}),
    "full": (1024, 64, {"axes": AXES, "overrides": "", "population.size": 16}),
}


def settings(base: EnvParams) -> list[tuple[str, object, EnvParams]]:
  """(field, value, params) for the base and each one-at-a-time change; the base appears once."""
  out = [("default", None, base)]
  for field, values in SWEEP.items():
    out += [(field, v, base.replace(**{field: v})) for v in values if v != getattr(base, field)]
  return out


def dynamics_statistics(env: LatentEnv, params: EnvParams, key, num_envs: int, steps: int, k: int = 3) -> dict:
  """One setting's statistics (vmap it over stacked params) under uniform random actions."""
  obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(key, num_envs), params)
  vstep = jax.vmap(env.step, (0, 0, 0, None))

  def step(carry, k_step):
    obs, state = carry
    k_act, k_env = jax.random.split(k_step)
    action = jax.random.uniform(k_act, (num_envs, env.latent_dim), minval=-1.0, maxval=1.0)
    new_obs, new_state, _, _, truncated, _ = vstep(jax.random.split(k_env, num_envs), state, action, params)
    within = ~truncated
    change = jnp.abs(new_obs.astype(jnp.float32) - obs.astype(jnp.float32)).mean(axis=(1, 2, 3)) / 255.0
    same = new_state.label == state.label
    return (new_obs, new_state), (jnp.sum(change * within) / jnp.maximum(within.sum(), 1),
                                  jnp.sum(same * within) / jnp.maximum(within.sum(), 1))

  (_, state), (change, same) = jax.lax.scan(step, (obs, state), jax.random.split(key, steps))
  return {"knn_entropy": apt.knn_entropy(state.z, k), "latent_norm": jnp.linalg.norm(state.z, axis=-1).mean(),
          "frame_change": change.mean(), "same_class": same.mean()}


def all_statistics(env, points, num_envs, steps, seed=0) -> list[dict]:
  stacked = jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v, jnp.float32 if isinstance(v, float) else None)
                                               for v in x]), *[p for _, _, p in points])
  fn = jax.jit(jax.vmap(lambda p: dynamics_statistics(env, p, jax.random.PRNGKey(seed), num_envs, steps)))
  stats = jax.device_get(fn(stacked))
  return [{k: float(v[i]) for k, v in stats.items()} for i in range(len(points))]


def run(workdir: Path, scale: str) -> list[dict]:
  """The statistics of every setting (one vmapped program); -> rows, base values."""
  num_envs, steps, _ = SCALE[scale]
  base_config = configs.load("pretrain_tiny" if scale == "tiny" else "pretrain_fashion_mnist")
  gen, gen_params = generators.load(base_config.generator)
  env = LatentEnv(gen, gen_params, obs_size=base_config.obs_size)
  points = settings(params_from_config(base_config))
  rows = [dict(field=f, value=v, **s) for (f, v, _), s in zip(points, all_statistics(env, points, num_envs, steps))]
  base = {field: getattr(points[0][2], field) for field in SWEEP}
  common.write_json(workdir / "results.json", {"base": base, "rows": rows})
  return rows, base


def sweep_config(scale: str):
  """configs/sweep.py with T3's axes and the scale's sizes."""
  return configs.load("sweep", **SCALE[scale][2])


def table(rows) -> str:
  return common.markdown_table(
      ["setting", "kNN entropy (nats)", "latent norm", "frame change (%)", "same class (%)"],
      [[r["field"] if r["field"] == "default" else f"{r['field']}={r['value']}", f"{r['knn_entropy']:.1f}",
        f"{r['latent_norm']:.2f}", f"{100 * r['frame_change']:.1f}", f"{100 * r['same_class']:.1f}"] for r in rows])


def plot(rows, base: dict, path: Path):
  plt = viz.pyplot()
  fig, axes = plt.subplots(1, len(SWEEP), figsize=(3.6 * len(SWEEP), 3.2))
  for ax, field in zip(axes, SWEEP):
    pts = sorted([(float(r["value"]), r) for r in rows if r["field"] == field] + [(float(base[field]), rows[0])],
                 key=lambda t: t[0])
    ax.plot([x for x, _ in pts], [100 * r["frame_change"] for _, r in pts], "o-")
    ax.set_xlabel(field)
    ax.set_ylabel("frame change per step (%)")
  common.save_figure(fig, path)


def main():
  parser = common.parser(__doc__)
  parser.add_argument("--table-only", action="store_true",
                      help="tabulate the workdir's results.json and sweep/results.json again (e.g. the committed "
                           "ones, with the current statistics); run nothing")
  args = parser.parse_args()
  started = common.start()
  args.workdir.mkdir(parents=True, exist_ok=True)
  if args.table_only:
    held = json.loads((args.workdir / "results.json").read_text())
    rows, base = held["rows"], held["base"]
    sweep.tabulate(args.workdir / "sweep")
  else:
    rows, base = run(args.workdir, args.scale)
    sweep.main(sweep_config(args.scale), args.workdir / "sweep")
  plot(rows, base, args.workdir / "t3_dynamics_ablations.png")
  num_envs, steps, _ = SCALE[args.scale]
  swept = (args.workdir / "sweep" / "results.md")
  body = swept.read_text().split("\n", 2)[2].replace("](", "](sweep/") if swept.exists() else "Not finished.\n"
  common.write_results(
      args.workdir, f"T3: latent dynamics ablations ({args.scale} scale)", started,
      f"One parameter changed at a time from the default env of configs/pretrain_fashion_mnist.py.\n\n"
      f"Statistics: {num_envs} envs x {steps} steps of uniform random actions, all settings in one vmapped "
      f"program.\n\n" + table(rows) + "\n![T3](t3_dynamics_ablations.png)\n\n## The sweep\n\n" + body)


if __name__ == "__main__":
  main()
