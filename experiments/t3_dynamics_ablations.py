"""T3, latent dynamics ablations: how the EMA, the action's share, the noise scale, the
variance-preserving EMA and holding vs resampling the class shape what the agent sees and what the
encoder learns.

    python experiments/t3_dynamics_ablations.py --workdir runs/t3 --scale cpu    # about 30 min, 2 CPU cores

Two parts, one parameter varied at a time around configs/pretrain_fashion_mnist.py's env:
  statistics  every setting at once: the env rollouts are vmapped over stacked EnvParams inside one
              jitted program (uniform random actions, num_envs envs, the first `steps` steps of an
              episode): kNN entropy of the latents after those steps (nats; a transient from the
              initial N(0, noise_scale^2 I) latent, not a stationary value), their mean norm, the mean absolute
              change of consecutive frames (fraction of 255), the fraction of consecutive frames of
              the same class.
  probe       for the PROBED subset: a Palm pretraining run per setting (APT, one seed), then the
              logistic probe and 10-shot ridge on real Fashion-MNIST.
Writes results.md, results.json and t3_dynamics_ablations.png.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

import common
from palmup import apt, configs, generators
from palmup.env import EnvParams, LatentEnv, params_from_config

SWEEP = {"ema": (0.0, 0.5, 0.7, 0.9, 0.95, 0.99), "action_weight": (0.0, 0.25, 0.5, 0.75, 1.0),
         "noise_scale": (0.5, 1.0, 2.0), "variance_preserving": (False, True),
         "resample_class_each_step": (False, True)}
PROBED = {"ema": (0.5, 0.9), "action_weight": (0.0, 1.0), "variance_preserving": (True,),
          "resample_class_each_step": (True,)}
SCALE = {  # stats envs, stats steps, probed settings, pretraining overrides, probe dataset
    "tiny": (4, 4, {}, {}, "digits"),
    "cpu": (64, 32, PROBED, {"train.steps": 200}, "fashion_mnist"),
    "full": (1024, 64, SWEEP, {}, "fashion_mnist"),
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
  num_envs, steps, probed, overrides, dataset = SCALE[scale]
  base_config = configs.load("pretrain_tiny" if scale == "tiny" else "pretrain_fashion_mnist")
  gen, gen_params = generators.load(base_config.generator)
  env = LatentEnv(gen, gen_params, obs_size=base_config.obs_size)
  points = settings(params_from_config(base_config))
  rows = [dict(field=f, value=v, **s) for (f, v, _), s in zip(points, all_statistics(env, points, num_envs, steps))]
  cfg = common.probe_config(scale)
  shots = "10" if 10 in cfg.few_shot.shots else str(max(cfg.few_shot.shots))
  for row in rows:
    if row["field"] == "default" or row["value"] in probed.get(row["field"], ()):
      name = "default" if row["field"] == "default" else f"{row['field']}={row['value']}"
      env_override = {} if row["field"] == "default" else {f"env.{row['field']}": row["value"]}
      run_dir = common.pretrain_run(workdir / name, scale, {**overrides, **env_override}, seed=0)
      result = common.probe(run_dir, dataset, cfg)
      row.update(probe_linear=result["test_accuracy"], probe_few_shot=result["few_shot"][shots]["mean"])
  base = {field: getattr(points[0][2], field) for field in SWEEP}
  common.write_json(workdir / "results.json", {"dataset": dataset, "shots": shots, "base": base, "rows": rows})
  return rows, base, dataset, shots


def table(rows, shots) -> str:
  fmt = lambda r, k, scale=1: f"{scale * r[k]:.1f}" if k in r else "-"
  return common.markdown_table(
      ["setting", "kNN entropy (nats)", "latent norm", "frame change (%)", "same class (%)", "probe linear (%)",
       f"probe {shots}-shot (%)"],
      [[r["field"] if r["field"] == "default" else f"{r['field']}={r['value']}", f"{r['knn_entropy']:.1f}",
        f"{r['latent_norm']:.2f}", fmt(r, "frame_change", 100), fmt(r, "same_class", 100),
        fmt(r, "probe_linear", 100), fmt(r, "probe_few_shot", 100)] for r in rows])


def plot(rows, base: dict, path: Path):
  plt = common.pyplot()
  fig, axes = plt.subplots(1, len(SWEEP), figsize=(3.6 * len(SWEEP), 3.2))
  accs = [100 * r["probe_linear"] for r in rows if "probe_linear" in r]
  probe_range = (min(accs) - 1, max(accs) + 1) if accs else None  # one scale for every panel
  for ax, field in zip(axes, SWEEP):
    pts = sorted([(float(r["value"]), r) for r in rows if r["field"] == field] + [(float(base[field]), rows[0])],
                 key=lambda t: t[0])
    xs = [x for x, _ in pts]
    ax.plot(xs, [r["knn_entropy"] for _, r in pts], "o-", color="tab:blue")
    ax.set_xlabel(field)
    ax.set_ylabel("kNN entropy (nats)", color="tab:blue")
    probed = [(x, r) for x, r in pts if "probe_linear" in r]
    if probed:
      twin = ax.twinx()
      twin.plot([x for x, _ in probed], [100 * r["probe_linear"] for _, r in probed], "s--", color="tab:red")
      twin.set_ylabel("probe top-1 %", color="tab:red")
      twin.set_ylim(*probe_range)
  common.save_figure(fig, path)


def main():
  args = common.parser(__doc__).parse_args()
  started = common.start()
  args.workdir.mkdir(parents=True, exist_ok=True)
  rows, base, dataset, shots = run(args.workdir, args.scale)
  plot(rows, base, args.workdir / "t3_dynamics_ablations.png")
  num_envs, steps = SCALE[args.scale][:2]
  common.write_results(
      args.workdir, f"T3: latent dynamics ablations ({args.scale} scale)", started,
      f"One parameter changed at a time from the default env of configs/pretrain_fashion_mnist.py. Statistics: "
      f"{num_envs} envs x {steps} steps of uniform random actions, all settings in one vmapped program. Probe: "
      f"one APT pretraining run per probed setting (one seed), scored on {dataset}; '-' = not probed.\n\n"
      + table(rows, shots) + "\n![T3](t3_dynamics_ablations.png)\n")


if __name__ == "__main__":
  main()
