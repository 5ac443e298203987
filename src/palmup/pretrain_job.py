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
import jax.numpy as jnp
import numpy as np
from etils import epath

from palmup import checkpoints as ckpt_lib, sharding, viz, workdirs
from palmup.env import EnvParams, params_from_config
from palmup.errors import UserError
from palmup.learner import save_encoder
from palmup.pretrain import build, jit_pretrain, make_pretrain, make_world, member_world, population_world, validate


class _StopRequested:
  """Set by SIGTERM / SIGINT: the loop checkpoints after the current chunk and exits."""

  def __init__(self):
    self.signal = None

  def __call__(self, signum, frame):
    self.signal = signal.Signals(signum).name


def _non_finite(metrics) -> list[str]:
  return sorted(k for k, v in metrics.items() if not math.isfinite(v))


def _check_finite(metrics, chunk_index, last_saved):
  bad = _non_finite(metrics)
  if bad:
    raise FloatingPointError(
        f"non-finite {', '.join(bad)} in chunk {chunk_index}: stopping; the last good checkpoint "
        f"(chunk {last_saved}) is kept. Lower the learning rates or check the config.")


def mark_diverged(workdir, chunk_index: int, last_saved: int, keys: list[str]):
  """workdir/diverged.json: the run diverged (non-finite `keys` in chunk `chunk_index`); its last good
  checkpoint is chunk `last_saved`. A sweep takes such a run as ended (palmup.sweep)."""
  (workdirs.path(workdir) / workdirs.DIVERGED).write_text(json.dumps(
      {"chunk": chunk_index, "last_good_checkpoint": last_saved, "non_finite": keys}, indent=2) + "\n")


class _MembersDiverged(Exception):
  """Members of a population diverged; the others were checkpointed at the chunk and go on."""

  def __init__(self, members: list[int]):
    super().__init__(members)
    self.members = members


def _save_strips(path: epath.Path, strips, scale: int, writer, step: int):
  """PNGs (and TensorBoard images) of recent trajectories (rows: envs, columns: the last 16 steps)
  and of the last step's sampled pairs (rows: view a, view b)."""
  traj = np.asarray(strips["trajectory"])[-16:]  # [T, S, H, W, C]
  for name, image in (("trajectories", viz.grid(np.swapaxes(traj, 0, 1))),
                      ("pairs", viz.grid(np.asarray(strips["pairs"])))):
    viz.save_png(path.with_name(f"{path.stem}_{name}.png"), image, scale)
    writer.write_image(step, name, image)


# Keys that change what a run logs or how it keeps checkpoints, not what it computes.
_BOOKKEEPING = ("train.checkpoint_every", "train.keep_checkpoints", "train.restart", "eval.", "stand_in")
# Keys a resumed run may change: the above, how long it runs and what it logs.
_RESUMABLE_CHANGES = ("train.steps", "log.") + _BOOKKEEPING
# Config blocks that only one explorer reads: a run of another explorer may resume with them changed.
_EXPLORER_BLOCKS = {"gradient.": "gradient", "planner.": "novelty"}


# Keys added to the pretrain config after runs were made without them, with the value that computes
# what those runs computed: a config.json without the key reads as having it at that value.
ADDED_KEYS = {"apt.scope": 0, "learner.negatives": 0}


def complete(saved: dict) -> dict:
  """A run's config.json content with ADDED_KEYS filled in where it predates them."""
  out = json.loads(json.dumps(saved))
  for key, value in ADDED_KEYS.items():
    *parents, leaf = key.split(".")
    node = out
    for p in parents:
      node = node.setdefault(p, {})
    node.setdefault(leaf, value)
  return out


def config_changes(workdir: epath.Path, config, may_change: tuple[str, ...] = _BOOKKEEPING) -> dict[str, tuple]:
  """{key: (value in workdir/config.json, value in config)} for every key that differs, except keys
  in may_change (a key, or a block ending in ".") and the blocks config's explorer never reads; {}
  when the workdir holds no config.json."""
  old_path = workdirs.path(workdir) / "config.json"
  if not old_path.exists():
    return {}
  old, new = _flatten(complete(json.loads(old_path.read_text()))), _flat(config)
  unread = tuple(block for block, explorer in _EXPLORER_BLOCKS.items() if config.explorer != explorer)
  free = lambda k: any(k == c or (c.endswith(".") and k.startswith(c)) for c in may_change + unread)
  return {k: (old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k) and not free(k)}


def check_resumable(workdir: epath.Path, config):
  """Refuses to resume a workdir whose checkpoints were written under a different computation."""
  workdir = workdirs.path(workdir)
  if not (workdir / "checkpoints").exists():
    return
  changed = list(config_changes(workdir, config, _RESUMABLE_CHANGES))
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
    workdirs.record_start(workdir, done * config.train.chunk_steps)
    if (workdir / workdirs.DIVERGED).exists():  # run again: it is not marked until it diverges again
      (workdir / workdirs.DIVERGED).unlink()
  return checkpoints, state, done


def main(config, workdir):
  """`palmup pretrain`: one run."""
  train([(config, workdir)])


def population_members(configs) -> list:
  """The members' EnvParams, after checking that the configs differ only in EnvParams fields
  (env.<field>) and seed, which is what lets runs share one program."""
  base = _flat(configs[0])
  fields = {f"env.{f}" for f in EnvParams.__dataclass_fields__}
  for config in configs[1:]:
    other = _flat(config)
    differ = sorted(k for k in base.keys() | other.keys() if base.get(k) != other.get(k) and k not in fields
                    and k != "seed")
    if differ:
      raise UserError(f"a population's runs may differ only in env.<EnvParams field> and seed; these differ: "
                      f"{', '.join(differ)}")
  return [params_from_config(c) for c in configs]


def _flatten(tree: dict, prefix: str = "") -> dict:
  """{"a.b": value} of a nested dict."""
  return {k2: v2 for k, v in tree.items() for k2, v2 in (
      _flatten(v, f"{prefix}{k}.").items() if isinstance(v, dict) else [(prefix + k, v)])}


def _flat(config) -> dict:
  """A config as {"a.b": value}, as its config.json holds it."""
  return _flatten(json.loads(config.to_json_best_effort()))


def train(runs):
  """Runs [(config, workdir), ...] to their configs' train.steps: one run as `palmup pretrain` does,
  or several as one population (pretrain.jit_pretrain's members), each run keeping its own
  checkpoints, metrics, pictures and encoder in its workdir (the configs may differ only in
  EnvParams fields and seed). Resumes from the runs' last checkpoints, which must be of one chunk."""
  configs = [c for c, _ in runs]
  config, members = configs[0], (len(runs) if len(runs) > 1 else None)
  with sharding.together("loading the config, generator, judge and data"):  # no collective in here
    for c in configs:
      validate(c)
    env_params = population_members(configs) if members else None
    dirs = [workdirs.create(w) for _, w in runs]
    mesh = sharding.make_mesh(members=members)
    world = make_world(config)
    if members:
      world = population_world(world, env_params)
    world = sharding.put_replicated(world, mesh)
    init, chunk, shardings = jit_pretrain(config, world, mesh, members)
  tc = config.train
  num_chunks = tc.steps // tc.chunk_steps
  one_world = world if members is None else member_world(world, 0)
  one_state = jax.eval_shape(make_pretrain(config, mesh)[0], one_world, jax.random.PRNGKey(0))
  abstract = lambda i: jax.tree.map(  # run i's state as its checkpoint is restored: onto its own devices
      lambda x, sh: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh), one_state,
      shardings if members is None else sharding.member_shardings(shardings, i, members))
  resumed = [resume_or_restart(d, c, abstract(i)) for i, (c, d) in enumerate(zip(configs, dirs))]
  checkpoints, states, dones = zip(*resumed)
  if len(set(dones)) > 1:
    raise UserError(f"the population's runs were checkpointed at different chunks ({', '.join(map(str, dones))}); "
                    "run them apart (palmup pretrain each) or move their workdirs aside")
  done = dones[0]
  if states[0] is None:
    keys = [jax.random.PRNGKey(c.seed) for c in configs]
    state = init(world, keys[0] if members is None else jnp.stack(keys))
  else:
    state = states[0] if members is None else sharding.stack_members(list(states), shardings)
  member = (lambda tree, i: tree) if members is None else (lambda tree, i: jax.tree.map(lambda x: x[i], tree))
  stop = _StopRequested()
  previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
  primary = sharding.is_primary()
  writers = [workdirs.MetricWriter(d, resume_step=done * tc.chunk_steps) if primary else None for d in dirs]
  frames_per_chunk = tc.chunk_steps * (config.num_envs if config.explorer != "static" else config.replay.batch_size)
  total = frames_per_chunk * len(runs)
  bar = workdirs.progress(num_chunks * total, "pretrain", initial=done * total, unit="frame", disable=not primary)

  def save(index):
    for i, store in enumerate(checkpoints):
      store.save(index, member(state, i))

  try:
    for index in range(done + 1, num_chunks + 1):
      start = time.perf_counter()
      state, metrics, strips = chunk(world, state)
      metrics, strips = sharding.to_host(metrics), sharding.to_host(strips)
      seconds = time.perf_counter() - start
      rows = [{k: float(v) for k, v in member(metrics, i).items()} for i in range(len(runs))]
      diverged = {i: keys for i, keys in enumerate(map(_non_finite, rows)) if keys}
      if primary:
        for i, keys in diverged.items():
          mark_diverged(dirs[i], index, done, keys)
      if diverged and len(diverged) == len(runs):  # one run, or every member: stop
        _check_finite(rows[min(diverged)], index, done)
      for i, (writer, d) in enumerate(zip(writers, dirs)):
        if i in diverged:
          continue
        row = rows[i]
        row.update(frames_per_second=total / seconds, chunk_seconds=seconds)
        if writer is not None:
          writer.write(index * tc.chunk_steps, row)
          if index % config.log.strip_every == 0 or index == num_chunks:
            _save_strips(d / "strips" / f"chunk_{index:05d}.png", member(strips, i), config.log.scale, writer,
                         index * tc.chunk_steps)
      if diverged:  # the others are checkpointed here and go on without them (below)
        for i, store in enumerate(checkpoints):
          if i not in diverged:
            store.save(index, member(state, i))
        raise _MembersDiverged(sorted(diverged))
      bar.update(total)
      bar.set_postfix(ntxent=f"{row['ntxent']:.3f}", fps=f"{row['frames_per_second']:.0f}")
      if index % tc.checkpoint_every == 0 or index == num_chunks:
        save(index)
        done = index
      if sharding.any_process(stop.signal is not None):  # every process stops after the same chunk
        if done != index:
          save(index)
          done = index
        print(f"palmup pretrain: {stop.signal or 'a stop on another process'} received; checkpointed chunk "
              f"{index} of {num_chunks}, rerun the same command to resume")
        return
  except _MembersDiverged as e:
    gone = e.members
  else:
    gone = []
  finally:
    bar.close()
    for store in checkpoints:
      store.close()
    for writer in writers:
      if writer is not None:
        writer.close()
    for s, handler in previous.items():
      signal.signal(s, handler)
  if gone:
    if primary:
      for i in gone:
        print(f"palmup pretrain: the run in {dirs[i]} diverged (non-finite metrics); it is marked "
              f"({dirs[i] / workdirs.DIVERGED}) and leaves the population, the others go on")
    return train([r for i, r in enumerate(runs) if i not in gone])
  learner, _, _ = build(config, one_world)
  obs_shape = world.env.observation_shape
  for i, (c, d) in enumerate(zip(configs, dirs)):
    params = sharding.to_host(member(state.learner.params, i))  # replicated: every process holds them
    save_encoder(d / "encoder", learner, params, obs_shape)  # every process: orbax syncs
    if c.eval.enabled:  # every process probes (no process waits for another), the first writes
      from palmup import evaluate
      result = evaluate.compare_with_random(c.eval, c.eval.dataset, learner, params, obs_shape)
      if primary:
        (d / "probe.json").write_text(json.dumps(result, indent=2) + "\n")
        print(evaluate.summary(result))
