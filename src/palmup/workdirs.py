"""What every command writes into its workdir: the resolved config, metrics, a progress bar.

    workdir/config.json      the config as run (after command-line overrides)
    workdir/metrics.jsonl    one JSON object per logged step: {"step": int, "time": float, ...}
    workdir/tensorboard/     the same scalars for TensorBoard

Every run path is an `etils.epath.Path` (`path`), the path type orbax itself uses, so a workdir may
be local or on cloud storage (gs://, s3://: install palmup's `cloud` extra). Files are written
whole, never appended to, since object stores cannot append.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any, Mapping

import numpy as np
from etils import epath

from palmup.errors import UserError


def path(p: str | epath.PathLike) -> epath.Path:
  """A run path as an epath.Path: a URI (gs://bucket/run) as it is, a local path absolute."""
  p = epath.Path(p)
  return p if is_uri(p) else p.expanduser().absolute()


def is_uri(p) -> bool:
  """Whether p names cloud storage (gs://, s3://, ...) rather than a local file."""
  return "://" in str(p)


def existing_dir(directory, what: str, hint: str) -> epath.Path:
  """directory as an existing run path, else a UserError naming it, what it should be and `hint`."""
  directory = path(directory)
  if not directory.exists():
    raise UserError(f"{what} {directory} does not exist; {hint}")
  if not directory.is_dir():
    raise UserError(f"{what} {directory} is a file, not a directory; {hint}")
  return directory


def read_json(file, what: str, hint: str, keys: tuple[str, ...] = ()) -> dict:
  """The JSON object in the run path `file` holding `keys`, else a UserError saying it is missing,
  unreadable or corrupt."""
  try:
    value = json.loads(path(file).read_text())
  except FileNotFoundError:
    raise UserError(f"{what} {file} is missing; {hint}") from None
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise UserError(f"{what} {file} is unreadable or corrupt ({type(e).__name__}: {e}); {hint}") from None
  missing = [k for k in keys if not isinstance(value, dict) or k not in value]
  if missing:
    raise UserError(f"{what} {file} is corrupt (no {', '.join(missing)}); {hint}")
  return value


def create(workdir: str | epath.PathLike) -> epath.Path:
  """The workdir as a run path, created if needed; a UserError if it is an existing file."""
  workdir = path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise UserError(f"--workdir {workdir} is an existing file; give a directory (new or a run's workdir)")
  workdir.mkdir(parents=True, exist_ok=True)
  return workdir


def write_config(workdir: epath.Path, config):
  """The resolved config to workdir/config.json."""
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def prepare(workdir: str | epath.PathLike, config) -> epath.Path:
  """Creates the workdir and writes the resolved config to config.json."""
  workdir = create(workdir)
  write_config(workdir, config)
  return workdir


class MetricWriter:
  """Writes scalar metrics to metrics.jsonl (rewritten whole at each write, through a temporary file
  replacing it, so a kill never leaves it half written) and TensorBoard event files.

  resume_step: the step the run's state was restored from (0 for a run from scratch). Rows logged
  after it by an earlier, interrupted process are dropped from metrics.jsonl and purged from
  TensorBoard (its purge_step), so both hold one row per step, matching the restored state.
  """

  def __init__(self, workdir: str | epath.PathLike, resume_step: int, tensorboard: bool = True):
    self.path = path(workdir) / "metrics.jsonl"
    self._text = "".join(json.dumps(r) + "\n" for r in read_metrics(workdir) if r["step"] <= resume_step)
    self._pending = False
    self._flush()
    self._tb = None
    if tensorboard:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(str(path(workdir) / "tensorboard"), purge_step=resume_step + 1)

  def write(self, step: int, metrics: Mapping[str, Any], flush: bool = True):
    """Adds a row; flush=False defers rewriting metrics.jsonl to the next flushed write or close()
    (for writing many rows at once)."""
    row = {"step": int(step), "time": time.time()}
    row.update({k: float(np.asarray(v)) for k, v in metrics.items()})
    self._text += json.dumps(row) + "\n"
    self._pending = not flush
    if flush:
      self._flush()
    if self._tb is not None:
      for k, v in row.items():
        if k not in ("step", "time"):
          self._tb.add_scalar(k, v, int(step))
      self._tb.flush()

  def _flush(self):
    tmp = self.path.with_name(self.path.name + ".tmp")
    tmp.write_text(self._text)
    tmp.replace(self.path)

  def write_image(self, step: int, tag: str, image: np.ndarray):
    """Adds a uint8 [H, W, 3] image to TensorBoard (pictures also go to PNG files by their caller)."""
    if self._tb is not None:
      self._tb.add_image(tag, np.asarray(image), int(step), dataformats="HWC")
      self._tb.flush()

  def close(self):
    if self._pending:
      self._flush()
    if self._tb is not None:
      self._tb.close()


def _parse(lines: list[str]) -> list[dict[str, float]]:
  rows = []
  for line in lines:
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:  # a line torn by a kill mid-write
      continue
  return rows


def read_metrics(workdir: str | epath.PathLike) -> list[dict[str, float]]:
  """All rows of workdir/metrics.jsonl (a line torn by a kill mid-write is skipped)."""
  file = path(workdir) / "metrics.jsonl"
  return _parse(file.read_text().splitlines()) if file.exists() else []


def progress(total: int, desc: str, initial: int = 0, unit: str = "step", disable: bool = False):
  """A tqdm progress bar (to stderr), shared by every long loop."""
  from tqdm.auto import tqdm
  return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, mininterval=2.0,
              disable=disable)


DIVERGED = "diverged.json"  # in a run's workdir once it diverged (pretrain_job.mark_diverged)


def commit_info() -> dict:
  """{"commit": short hash, "dirty": whether tracked files differ from it} of the palmup checkout this
  runs from; from PALMUP_COMMIT ("<hash>" or "<hash>+dirty") when set, as `palmup launch` sets it on
  workers that run an archive of the checkout; {"commit": "unknown", "dirty": None} outside a git
  checkout."""
  shipped = os.environ.get("PALMUP_COMMIT")
  if shipped:
    commit, _, mark = shipped.partition("+")
    return {"commit": commit, "dirty": mark == "dirty"}
  try:
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, cwd=str(epath.Path(__file__).parent),
                                    check=True).stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
  except (OSError, subprocess.CalledProcessError):
    return {"commit": "unknown", "dirty": None}


def commit() -> str:
  """commit_info() as results files write it: the hash, marked when tracked files differ from it."""
  info = commit_info()
  return info["commit"] + (" (with uncommitted changes)" if info["dirty"] else "")


def record_start(workdir: str | epath.PathLike, from_step: int):
  """Appends to workdir/provenance.jsonl what this process runs: its commit, whether the tree was
  dirty, the step it starts (or resumes) from and the time. One line per start, so a run resumed at
  another commit says so."""
  file = path(workdir) / "provenance.jsonl"
  row = {**commit_info(), "from_step": int(from_step), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
  file.write_text((file.read_text() if file.exists() else "") + json.dumps(row) + "\n")


def run_commits(workdir: str | epath.PathLike) -> list[str]:
  """The commits a run ran at, in order (from its provenance.jsonl; a dirty tree marked "+dirty"), or
  ["not recorded"] for a run that predates the record."""
  file = path(workdir) / "provenance.jsonl"
  rows = _parse(file.read_text().splitlines()) if file.exists() else []
  names = [r["commit"] + ("+dirty" if r.get("dirty") else "") for r in rows]
  return list(dict.fromkeys(names)) or ["not recorded"]


def commits_summary(run_commits: dict[str, list[str]]) -> str:
  """"a1b2c3d (12 runs), not recorded (3 runs)" of {run: run_commits(run)}: the commits the runs ran
  at, with how many ran at each (a run resumed at another commit: "a then b")."""
  counts = {}
  for commits in run_commits.values():
    key = " then ".join(commits)
    counts[key] = counts.get(key, 0) + 1
  return ", ".join(f"{k} ({n} run{'s' * (n != 1)})" for k, n in counts.items()) or "no run"
