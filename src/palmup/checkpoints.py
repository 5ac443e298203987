"""A run's checkpoints (orbax, workdir/checkpoints): resumed exactly, never silently lost.

`Checkpoints.restore(abstract_state)` looks at the checkpoints newest first and tells damage from
mismatch:
  damaged (files missing, partial or corrupt)    skipped with a warning for the previous one; once a
                                                 good one loads, the skipped ones are moved to
                                                 workdir/damaged_checkpoints/ (never deleted, and
                                                 never rotated away)
  readable but of another state (tree structure, CheckpointError: the run stops and names what
  shapes or dtypes; e.g. after a code change)    differs; nothing is moved or deleted
  checkpoints exist but none can be read         CheckpointError: the run stops; nothing is moved
A failed save (a full disk) is a UserError naming the last good checkpoint, which is kept.
`move_aside(workdir)` is what `--config.train.restart=True` does with a run that cannot be resumed.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import warnings

import jax
import numpy as np

from etils import epath

from palmup import sharding
from palmup import workdirs
from palmup.errors import UserError

RESTART_HINT = ("use a new --workdir, or add --config.train.restart=True to move this run aside "
                "(to previous_<time>/ in the workdir) and start anew")


class CheckpointError(UserError):
  """The workdir's checkpoints cannot be resumed (none readable, or not this run's state)."""


def _paths(tree) -> dict[str, object]:
  """{"a/b/0": leaf} for the array leaves of a state (dataclasses as their fields) or a metadata tree."""
  import flax.serialization
  flat, _ = jax.tree_util.tree_flatten_with_path(flax.serialization.to_state_dict(tree))
  key = lambda k: str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
  return {"/".join(key(k) for k in path): leaf for path, leaf in flat}


def differences(stored, abstract) -> list[str]:
  """What differs between a checkpoint's metadata tree and the run's abstract state: missing or
  extra arrays, shapes, dtypes; [] when the checkpoint fits."""
  have, want = _paths(stored), _paths(abstract)
  out = [f"{p}: in the checkpoint, not in this run" for p in sorted(have.keys() - want.keys())]
  out += [f"{p}: in this run, not in the checkpoint" for p in sorted(want.keys() - have.keys())]
  for p in sorted(have.keys() & want.keys()):
    a, b = have[p], want[p]
    if tuple(a.shape) != tuple(b.shape):
      out.append(f"{p}: shape {tuple(a.shape)} in the checkpoint, {tuple(b.shape)} in this run")
    elif np.dtype(a.dtype) != np.dtype(b.dtype):
      out.append(f"{p}: dtype {np.dtype(a.dtype)} in the checkpoint, {np.dtype(b.dtype)} in this run")
  return out


@contextlib.contextmanager
def _stderr_to(file):
  """Sends this process's stderr (file descriptor 2, so C++ and threads too) to file."""
  sys.stderr.flush()
  saved = os.dup(2)
  os.dup2(file.fileno(), 2)
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def _quietly(read, noise):
  """-> (read(), None) or (None, the exception), with stderr sent to `noise` meanwhile. A failed
  orbax read leaves callbacks that end late, each printing a traceback ("Event loop is closed");
  the caller's one warning replaces them, so after a failure this waits until nothing more is
  printed for 0.5 s (at most 10 s)."""
  with _stderr_to(noise):
    try:
      return read(), None
    except Exception as e:  # noqa: BLE001 (damaged files: orbax and tensorstore raise many types)
      size = -1
      for _ in range(20):
        time.sleep(0.5)
        size, before = os.fstat(noise.fileno()).st_size, size
        if size == before:
          break
      return None, e


class _DamagedReadNoise(logging.Filter):
  """Drops asyncio's "exception was never retrieved" records for reads of checkpoints already
  reported damaged: orbax leaves one such task per array of a failed read, and the garbage collector
  may log them at any time later (at exit too), after the run's one-line error."""

  def __init__(self):
    super().__init__()
    self.paths: set[str] = set()

  def filter(self, record: logging.LogRecord) -> bool:
    text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
    return "never retrieved" not in text or not any(p in text for p in self.paths)


_DAMAGED_READ_NOISE = _DamagedReadNoise()
logging.getLogger("asyncio").addFilter(_DAMAGED_READ_NOISE)


class Checkpoints:
  """workdir/checkpoints, keeping the newest `keep`; saves every `interval`-th step it is given."""

  def __init__(self, workdir: epath.PathLike, keep: int, interval: int = 1):
    import orbax.checkpoint as ocp
    self.workdir = workdirs.path(workdir)
    self.directory = self.workdir / "checkpoints"
    self.manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=interval, create=True),
        item_handlers=ocp.StandardCheckpointHandler())  # so item_metadata can read a fresh process's steps
    self.last_good = None

  def restore(self, abstract):
    """-> (state, step) of the newest usable checkpoint, or (None, 0) for a workdir without any."""
    import orbax.checkpoint as ocp
    steps = sorted(self.manager.all_steps(), reverse=True)
    damaged = []
    for step in steps:
      with tempfile.TemporaryFile() as noise:
        stored, error = _quietly(lambda: self.manager.item_metadata(step).tree, noise)
        if error is not None:
          damaged.append(self._damaged(step, error))
          continue
        diff = differences(stored, abstract)
        if diff:
          raise CheckpointError(
              f"checkpoint {step} in {self.directory} does not fit this run's state ({len(diff)} differences, "
              f"e.g. {'; '.join(diff[:3])}): it was written by other code or another config; nothing was "
              f"changed; {RESTART_HINT}")
        state, error = _quietly(lambda: self.manager.restore(step, args=ocp.args.StandardRestore(abstract)), noise)
        if error is not None:
          damaged.append(self._damaged(step, error))
          continue
        noise.seek(0)
        sys.stderr.write(noise.read().decode(errors="replace"))  # a good restore hides nothing
        self._move_damaged_aside(damaged)
        self.last_good = step
        return state, step
    if steps:
      raise CheckpointError(
          f"none of the checkpoints {', '.join(map(str, sorted(steps)))} in {self.directory} can be read "
          f"(damaged or partial files; see the warnings above); nothing was deleted; {RESTART_HINT}")
    return None, 0

  def _damaged(self, step: int, e: Exception) -> int:
    warnings.warn(f"checkpoint {step} in {self.directory} is unreadable and is skipped: "
                  f"{type(e).__name__}: {str(e)[:200]}", stacklevel=3)
    _DAMAGED_READ_NOISE.paths.add(f"{self.directory / str(step)}/")
    return step

  def _move_damaged_aside(self, steps: list[int]):
    """Moves damaged checkpoints newer than the resumed one out of rotation's reach (and of the
    steps this run will save again)."""
    if not steps:
      return
    if sharding.is_primary():
      aside = self.workdir / "damaged_checkpoints"
      aside.mkdir(exist_ok=True)
      for step in steps:
        target = aside / f"{step}_{time.strftime('%Y%m%d-%H%M%S')}"
        (self.directory / str(step)).rename(target)
        warnings.warn(f"damaged checkpoint {step} moved to {target}", stacklevel=3)
    sharding.sync("palmup:damaged_moved")
    self.manager.reload()

  def save(self, step: int, state):
    """Saves and waits; a failed write (e.g. a full disk) -> UserError, the last good checkpoint kept."""
    import orbax.checkpoint as ocp
    try:
      if self.manager.save(step, args=ocp.args.StandardSave(state)):
        self.manager.wait_until_finished()
        self.last_good = step
    except OSError as e:
      raise UserError(
          f"could not write checkpoint {step} to {self.directory} ({e.strerror or e}); the last good "
          f"checkpoint ({self.last_good or 'none'}) is kept: free disk space, then rerun the same "
          f"command to resume from it") from e

  def close(self):
    self.manager.close()


def write_params(path: epath.PathLike, params):
  """Writes a parameter pytree (an artefact's params/: generator, encoder, judge) with orbax; every
  process of a multi-process run must call it (orbax synchronises them)."""
  import orbax.checkpoint as ocp
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(workdirs.path(path), jax.device_get(params), force=True)


def read_params(path: epath.PathLike, target, what: str, hint: str):
  """The parameter pytree at path shaped as target; missing, damaged or mismatched arrays -> a
  UserError naming `what` and `hint` (what to do). Each process reads its own copy, with no barrier
  (orbax's default waits for every process), so a read that fails on one host cannot strand the
  others (see sharding.together)."""
  import orbax.checkpoint as ocp
  me = jax.process_index()
  alone = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
  with ocp.StandardCheckpointer(multiprocessing_options=alone) as ckpt:
    try:
      return ckpt.restore(workdirs.path(path), target)
    except Exception as e:  # noqa: BLE001 (missing, damaged or mismatched arrays: orbax raises many types)
      raise UserError(f"the {what}'s parameters in {path} cannot be read ({type(e).__name__}: {str(e)[:160]}); "
                      f"{hint}") from e


def move_aside(workdir: epath.PathLike) -> epath.Path | None:
  """Moves everything a run wrote in workdir (except earlier previous_*/ folders) into
  workdir/previous_<time>/; -> that folder, or None when there was nothing to move."""
  workdir = workdirs.path(workdir)
  entries = [p for p in workdir.iterdir() if not p.name.startswith("previous_")] if workdir.is_dir() else []
  if not entries:
    return None
  target = workdir / f"previous_{time.strftime('%Y%m%d-%H%M%S')}"
  target.mkdir()
  for p in entries:
    p.rename(target / p.name)
  return target
