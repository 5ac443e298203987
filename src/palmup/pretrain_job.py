"""Running a pretraining job on the host: `palmup pretrain`'s run loop around palmup.pretrain's
compiled chunk, with resume, stops on SIGTERM, metrics, pictures and the end-of-run probe.

    palmup pretrain --config configs/pretrain_fashion_mnist.py --workdir runs/pretrain

main(config, workdir) validates the config, builds the world, compiles init and chunk for the mesh
(pretrain.jit_pretrain), resumes from the workdir's last checkpoint when its config allows it
(check_resumable), then calls chunks until train.steps, writing metrics every chunk, pictures every
log.strip_every chunks and checkpoints every train.checkpoint_every; at the end it saves the encoder
and probes it on real data (palmup.evaluate). See palmup.pretrain for the workdir's files.
"""
from __future__ import annotations

import json
import math
import signal
import time

import jax
import numpy as np
from etils import epath

from palmup import checkpoints as ckpt_lib, sharding, viz, workdirs
from palmup.learner import save_encoder
from palmup.pretrain import build, jit_pretrain, make_world, validate


class _StopRequested:
  """Set by SIGTERM / SIGINT: the loop checkpoints after the current chunk and exits."""

  def __init__(self):
    self.signal = None

  def __call__(self, signum, frame):
    self.signal = signal.Signals(signum).name


def _check_finite(metrics, chunk_index, last_saved):
  bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
  if bad:
    raise FloatingPointError(
        f"non-finite {', '.join(bad)} in chunk {chunk_index}: stopping; the last good checkpoint "
        f"(chunk {last_saved}) is kept. Lower the learning rates or check the config.")


def _save_strips(path: epath.Path, strips, scale: int, writer, step: int):
  """PNGs (and TensorBoard images) of recent trajectories (rows: envs, columns: the last 16 steps)
  and of the last step's sampled pairs (rows: view a, view b)."""
  traj = np.asarray(strips["trajectory"])[-16:]  # [T, S, H, W, C]
  for name, image in (("trajectories", viz.grid(np.swapaxes(traj, 0, 1))),
                      ("pairs", viz.grid(np.asarray(strips["pairs"])))):
    viz.save_png(path.with_name(f"{path.stem}_{name}.png"), image, scale)
    writer.write_image(step, name, image)


# Keys a resumed run may change: how long it runs and what it logs, not what it computes.
_RESUMABLE_CHANGES = ("train.steps", "train.checkpoint_every", "train.keep_checkpoints", "train.restart", "log.",
                      "eval.", "stand_in")


def check_resumable(workdir: epath.Path, config):
  """Refuses to resume a workdir whose checkpoints were written under a different computation."""
  workdir = workdirs.path(workdir)
  old_path = workdir / "config.json"
  if not (workdir / "checkpoints").exists() or not old_path.exists():
    return
  flat = lambda d, prefix="": {k2: v2 for k, v in d.items() for k2, v2 in (
      flat(v, f"{prefix}{k}.").items() if isinstance(v, dict) else [(prefix + k, v)])}
  old, new = flat(json.loads(old_path.read_text())), flat(json.loads(config.to_json_best_effort()))
  may_change = lambda k: any(k == c or (c.endswith(".") and k.startswith(c)) for c in _RESUMABLE_CHANGES)
  changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and not may_change(k))
  if changed:
    raise ckpt_lib.CheckpointError(
        f"{workdir} holds checkpoints of a run with a different config ({', '.join(changed[:5])}"
        f"{' ...' if len(changed) > 5 else ''} changed); only {', '.join(_RESUMABLE_CHANGES)} may change "
        f"on resume; {ckpt_lib.RESTART_HINT}")


def resume_or_restart(workdir: epath.Path, config, abstract_state):
  """-> (checkpoints, state or None, chunks done). A run that cannot be resumed (changed config,
  incompatible or unreadable checkpoints) stops with a CheckpointError, or with train.restart is
  moved aside and starts anew; config.json is written only once the run is known to go on."""
  checkpoints = None
  try:
    check_resumable(workdir, config)
    checkpoints = ckpt_lib.Checkpoints(workdir, config.train.keep_checkpoints)
    state, done = checkpoints.restore(abstract_state)
  except ckpt_lib.CheckpointError as e:
    if checkpoints is not None:
      checkpoints.close()
    if not config.train.restart:
      raise
    if sharding.is_primary():
      aside = ckpt_lib.move_aside(workdir)
      print(f"palmup pretrain: train.restart=True and the run in {workdir} cannot be resumed "
            f"({str(e)[:160]}...); moved it to {aside}, starting anew")
    sharding.sync("palmup:moved_aside")
    checkpoints, state, done = ckpt_lib.Checkpoints(workdir, config.train.keep_checkpoints), None, 0
  sharding.sync("palmup:resumed")  # every process has read the old config.json
  if sharding.is_primary():
    workdirs.write_config(workdir, config)
  return checkpoints, state, done


def main(config, workdir):
  with sharding.together("loading the config, generator, judge and data"):  # no collective in here
    validate(config)
    workdir = workdirs.create(workdir)
    mesh = sharding.make_mesh()
    world = sharding.put_replicated(make_world(config), mesh)
    init, chunk, shardings = jit_pretrain(config, world, mesh)
  tc = config.train
  num_chunks = tc.steps // tc.chunk_steps
  abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                          jax.eval_shape(init, world, jax.random.PRNGKey(0)), shardings)
  checkpoints, state, done = resume_or_restart(workdir, config, abstract)
  if state is None:
    state = init(world, jax.random.PRNGKey(config.seed))
  stop = _StopRequested()
  previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
  writer = workdirs.MetricWriter(workdir, resume_step=done * tc.chunk_steps) if sharding.is_primary() else None
  frames_per_chunk = tc.chunk_steps * (config.num_envs if config.explorer != "static" else config.replay.batch_size)
  bar = workdirs.progress(num_chunks * frames_per_chunk, "pretrain", initial=done * frames_per_chunk, unit="frame",
                    disable=not sharding.is_primary())
  try:
    for index in range(done + 1, num_chunks + 1):
      start = time.perf_counter()
      state, metrics, strips = chunk(world, state)
      metrics = {k: float(v) for k, v in sharding.to_host(metrics).items()}
      seconds = time.perf_counter() - start
      _check_finite(metrics, index, done)
      metrics.update(frames_per_second=frames_per_chunk / seconds, chunk_seconds=seconds)
      if writer is not None:
        writer.write(index * tc.chunk_steps, metrics)
        if index % config.log.strip_every == 0 or index == num_chunks:
          _save_strips(workdir / "strips" / f"chunk_{index:05d}.png", sharding.to_host(strips), config.log.scale,
                       writer, index * tc.chunk_steps)
      bar.update(frames_per_chunk)
      bar.set_postfix(ntxent=f"{metrics['ntxent']:.3f}", fps=f"{metrics['frames_per_second']:.0f}")
      if index % tc.checkpoint_every == 0 or index == num_chunks:
        checkpoints.save(index, state)
        done = index
      if sharding.any_process(stop.signal is not None):  # every process stops after the same chunk
        if done != index:
          checkpoints.save(index, state)
          done = index
        print(f"palmup pretrain: {stop.signal or 'a stop on another process'} received; checkpointed chunk "
              f"{index} of {num_chunks}, rerun the same command to resume")
        return
  finally:
    bar.close()
    checkpoints.close()
    if writer is not None:
      writer.close()
    for s, handler in previous.items():
      signal.signal(s, handler)
  learner, _, _ = build(config, world)
  params = sharding.to_host(state.learner.params)  # replicated: every process holds them
  obs_shape = world.env.observation_shape
  save_encoder(workdir / "encoder", learner, params, obs_shape)  # every process: orbax syncs
  if config.eval.enabled:  # every process probes (no process waits for another), the first writes
    from palmup import evaluate
    result = evaluate.compare_with_random(config.eval, config.eval.dataset, learner, params, obs_shape)
    if sharding.is_primary():
      (workdir / "probe.json").write_text(json.dumps(result, indent=2) + "\n")
      print(evaluate.summary(result))
