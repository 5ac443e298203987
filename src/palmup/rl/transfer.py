"""`palmup rl-transfer`: PPO on a pixel task with a pretrained, random or from-scratch encoder.

    palmup rl-transfer --config configs/rl_transfer_craftax.py --workdir runs/rl_craftax \
      --config.encoder.path=runs/pretrain/encoder --config.encoder.mode=pretrained

encoder.mode: pretrained (frozen palmup encoder from encoder.path), random (the same architecture
at a random init per seed, frozen), scratch (the same architecture at a random init, trained end
to end by PPO). Without encoder.path the architecture and input shape come from config.learner
and config.encoder.obs_size / channels. Seeds run in one program (vmapped); ALE runs all seeds'
emulators in one vector env.

Workdir: config.json; metrics.jsonl (one row per PPO update, step = env steps per seed: the
return over the last `eval.final_fraction` of the run so far per seed and mean, the losses);
rl_transfer.json (per-seed final return at the env-step budget, mean and std over seeds, the
mean return over all of training, the return curve, speed).
"""
from __future__ import annotations

import json
import math
import time

import jax
import numpy as np
from etils import epath

from palmup import config_checks
from palmup import learner as learner_lib, workdirs
from palmup.nn.encoders import ENCODERS, make_encoder
from palmup.rl import envs, ppo

MODES = ("pretrained", "random", "scratch")


def validate(config):
  """Checks every value the run uses; raises ConfigError naming the key, the value, what is valid."""
  config_checks.one_of(config, "task.name", envs.TASKS)
  if config.task.name == "minatar":
    config_checks.one_of(config, "task.game", envs.MINATAR_GAMES)
  if config.task.name == "atari":
    from ale_py import roms
    config_checks.require(roms.get_rom_path(config.task.game) is not None, "task.game", config.task.game,
               "an ALE ROM name in snake_case, e.g. 'breakout', 'pong', 'ms_pacman' (ale_py.roms.get_all_rom_ids())")
  config_checks.one_of(config, "encoder.mode", MODES)
  path = config.encoder.path
  if config.encoder.mode == "pretrained":
    config_checks.require(path is not None, "encoder.path", path, "an encoder directory (a pretrain workdir's encoder/) "
               "when encoder.mode='pretrained'")
  if path is not None:
    config_checks.require(encoder_dir(path) is not None, "encoder.path", path,
               "a directory with learner.json and params/ (palmup pretrain's workdir/encoder) or its workdir")
  else:
    config_checks.one_of(config, "learner.encoder.name", ENCODERS)
    config_checks.one_of(config, "encoder.channels", (1, 3))
    config_checks.positive(config, "encoder.obs_size")
  for key in ("num_seeds", "ppo.num_envs", "ppo.num_steps", "ppo.total_env_steps", "ppo.update_epochs",
              "ppo.num_minibatches", "ppo.lr", "ppo.max_grad_norm", "ppo.hidden", "ppo.clip_eps",
              "task.reset_pool", "task.frameskip"):
    config_checks.positive(config, key)
  for key in ("ppo.ent_coef", "ppo.vf_coef"):
    config_checks.positive(config, key, allow_zero=True)
  for key in ("ppo.gamma", "ppo.gae_lambda", "task.repeat_action_probability"):
    config_checks.in_range(config, key, 0, 1)
  config_checks.require(0 < config.eval.final_fraction <= 1, "eval.final_fraction", config.eval.final_fraction, "in (0, 1]")
  p = config.ppo
  rollout = p.num_envs * p.num_steps
  config_checks.require(p.total_env_steps >= rollout, "ppo.total_env_steps", p.total_env_steps,
             f">= ppo.num_envs * ppo.num_steps = {rollout} (one rollout per update)")
  config_checks.require(rollout % p.num_minibatches == 0, "ppo.num_minibatches", p.num_minibatches,
             f"a divisor of ppo.num_envs * ppo.num_steps = {rollout}")


def encoder_dir(path) -> epath.Path | None:
  """The encoder directory at path (or at path/encoder), None if there is none."""
  for p in (workdirs.path(path), workdirs.path(path) / "encoder"):
    if (p / "learner.json").exists() and (p / "params").exists():
      return p
  return None


def load_encoder(config):
  """-> (encoder module, obs_shape, pretrained encoder params or None). From encoder.path when set
  (its architecture and input shape), else config.learner.encoder at encoder.obs_size / channels."""
  ec = config.encoder
  if ec.path is None:
    return make_encoder(config.learner.encoder), (ec.obs_size, ec.obs_size, ec.channels), None
  learner, params, obs_shape = learner_lib.load_encoder(encoder_dir(ec.path))
  return make_encoder(learner.config.encoder), tuple(obs_shape), params["params"]["encoder"]


def train(config):
  """Runs every seed. -> (agent, final params [S, ...], metrics {name: [S, U]}, timings {name: s})."""
  p, seeds = config.ppo, config.num_seeds
  keys = jax.random.split(jax.random.PRNGKey(config.seed), (2, seeds))  # [0]: PPO, [1]: encoder inits
  module, obs_shape, pretrained = load_encoder(config)
  task = envs.make_task(config.task, obs_shape, seeds * p.num_envs, config.seed)
  agent = ppo.Agent(module, obs_shape, task.num_actions, p.hidden, config.encoder.mode == "scratch")
  if config.encoder.mode == "pretrained":
    encoder_params, axis = pretrained, None
  else:
    encoder_params, axis = jax.jit(jax.vmap(agent.init_encoder))(keys[1]), 0
  start = time.perf_counter()
  if envs.is_host(config.task):
    try:
      params, metrics = ppo.train_host(p, task, agent, keys[0], encoder_params, axis)
    finally:
      task.close()
    return agent, params, metrics, {"seconds": time.perf_counter() - start}
  program = jax.jit(jax.vmap(ppo.make_train(p, task, agent), (0, axis)))
  compiled = program.lower(keys[0], encoder_params).compile()
  compiled_at = time.perf_counter()
  params, metrics = jax.block_until_ready(compiled(keys[0], encoder_params))
  return agent, params, jax.device_get(metrics), {"compile_seconds": compiled_at - start,
                                                  "seconds": time.perf_counter() - compiled_at}


def windowed_return(metrics, window: int) -> np.ndarray:
  """Mean return of the episodes that ended in the last `window` updates, per seed and update:
  [S, U] (nan until an episode has ended in the window)."""
  def trailing(x):  # sums over the last `window` updates
    total = np.cumsum(np.asarray(x, np.float64), axis=-1)
    out = total.copy()
    out[..., window:] -= total[..., :-window]
    return out
  sums, counts = trailing(metrics["episode_return_sum"]), trailing(metrics["episodes"])
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def summarise(config, metrics, timings, obs_shape) -> dict:
  """The rl_transfer.json record: per-seed returns, mean and std over seeds, the curve, speed."""
  p = config.ppo
  updates = ppo.num_updates(p)
  window = max(1, math.ceil(config.eval.final_fraction * updates))
  curve = windowed_return(metrics, window)
  with np.errstate(invalid="ignore", divide="ignore"):
    overall = np.sum(metrics["episode_return_sum"], -1) / np.sum(metrics["episodes"], -1)
  steps = updates * p.num_envs * p.num_steps

  def stats(x):  # None (JSON null) where no episode ended
    x = np.asarray(x, np.float64)
    std = np.std(x, ddof=1) if len(x) > 1 else 0.0
    return {"per_seed": [_number(v) for v in x], "mean": _number(np.mean(x)), "std": _number(std)}

  return {
      "task": config.task.name, "game": config.task.game if config.task.name != "craftax_classic_pixels" else None,
      "mode": config.encoder.mode, "encoder_path": config.encoder.path, "obs_shape": list(obs_shape),
      "num_seeds": config.num_seeds, "env_steps_per_seed": steps, "final_window_updates": window,
      "final_return": stats(curve[:, -1]), "mean_return_over_training": stats(overall),
      "episodes_per_seed": np.sum(metrics["episodes"], -1).astype(int).tolist(),
      "curve": {"env_steps": [(u + 1) * p.num_envs * p.num_steps for u in range(updates)],
                "return": [[_number(v) for v in row] for row in curve]},
      "env_steps_per_second": config.num_seeds * steps / timings["seconds"], **timings}


def _number(x) -> float | None:
  return None if np.isnan(x) else float(x)


def write_metrics(workdir: epath.Path, config, metrics, curve):
  """One metrics.jsonl row per update: return per seed and mean (windowed), losses (mean over seeds)."""
  writer = workdirs.MetricWriter(workdir, resume_step=0)  # written whole, so a rerun replaces the rows
  p = config.ppo
  losses = ("actor_loss", "value_loss", "entropy", "approx_kl")
  for u in range(curve.shape[1]):
    row = {k: np.mean(metrics[k][:, u]) for k in losses}
    row.update({f"return_seed{s}": curve[s, u] for s in range(curve.shape[0]) if np.isfinite(curve[s, u])})
    if np.isfinite(curve[:, u]).any():
      row["return_mean"] = np.nanmean(curve[:, u])
    row["episodes"] = np.sum(metrics["episodes"][:, u])
    writer.write((u + 1) * p.num_envs * p.num_steps, row, flush=False)  # metrics.jsonl written once, at close
  writer.close()


def run(config, workdir) -> dict:
  """Trains every seed, writes metrics.jsonl and rl_transfer.json into workdir; -> the record."""
  validate(config)
  workdir = workdirs.prepare(workdir, config)
  agent, _, metrics, timings = train(config)
  result = summarise(config, metrics, timings, agent.obs_shape)
  write_metrics(workdir, config, metrics, windowed_return(metrics, result["final_window_updates"]))
  (workdir / "rl_transfer.json").write_text(json.dumps(result, indent=2) + "\n")
  return result


def main(config, workdir):
  result = run(config, workdir)
  f = result["final_return"]
  final = "no episode ended in the final window" if f["mean"] is None else f"{f['mean']:.2f} +- {f['std']:.2f}"
  print(f"palmup rl-transfer: {result['task']} {result['mode']}: final return {final} over {result['num_seeds']} "
        f"seeds at {result['env_steps_per_seed']} env steps ({result['env_steps_per_second']:.0f} env steps/s)")
