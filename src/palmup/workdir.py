"""What every command writes into its workdir: the resolved config, metrics, a progress bar.

    workdir/config.json      the config as run (after command-line overrides)
    workdir/metrics.jsonl    one JSON object per logged step: {"step": int, "time": float, ...}
    workdir/tensorboard/     the same scalars for TensorBoard
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from palmup.errors import UserError


def create(workdir: str | Path) -> Path:
  """The workdir as an absolute path, created if needed; a UserError if it is an existing file."""
  workdir = Path(workdir).expanduser().absolute()
  if workdir.exists() and not workdir.is_dir():
    raise UserError(f"--workdir {workdir} is an existing file; give a directory (new or a run's workdir)")
  workdir.mkdir(parents=True, exist_ok=True)
  return workdir


def write_config(workdir: Path, config):
  """The resolved config to workdir/config.json."""
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def prepare(workdir: str | Path, config) -> Path:
  """Creates the workdir and writes the resolved config to config.json."""
  workdir = create(workdir)
  write_config(workdir, config)
  return workdir


class MetricWriter:
  """Appends scalar metrics to metrics.jsonl and TensorBoard event files.

  resume_step: the step the run's state was restored from (0 for a run from scratch). Rows logged
  after it by an earlier, interrupted process are dropped from metrics.jsonl and purged from
  TensorBoard (its purge_step), so both hold one row per step, matching the restored state.
  """

  def __init__(self, workdir: str | Path, resume_step: int, tensorboard: bool = True):
    self.path = Path(workdir) / "metrics.jsonl"
    _truncate(self.path, resume_step)
    self._tb = None
    if tensorboard:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"), purge_step=resume_step + 1)

  def write(self, step: int, metrics: Mapping[str, Any]):
    row = {"step": int(step), "time": time.time()}
    row.update({k: float(np.asarray(v)) for k, v in metrics.items()})
    with self.path.open("a") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      for k, v in row.items():
        if k not in ("step", "time"):
          self._tb.add_scalar(k, v, int(step))
      self._tb.flush()

  def write_image(self, step: int, tag: str, image: np.ndarray):
    """Adds a uint8 [H, W, 3] image to TensorBoard (pictures also go to PNG files by their caller)."""
    if self._tb is not None:
      self._tb.add_image(tag, np.asarray(image), int(step), dataformats="HWC")
      self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()


def _truncate(path: Path, last_step: int):
  """Keeps the rows of path with step <= last_step (and drops a line torn by a kill); atomic."""
  lines = path.read_text().splitlines() if path.exists() else []
  kept = [r for r in _parse(lines) if r["step"] <= last_step]
  if len(kept) < len(lines):
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    os.replace(tmp, path)


def _parse(lines: list[str]) -> list[dict[str, float]]:
  rows = []
  for line in lines:
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:  # a line torn by a kill mid-write
      continue
  return rows


def read_metrics(workdir: str | Path) -> list[dict[str, float]]:
  """All rows of workdir/metrics.jsonl."""
  path = Path(workdir) / "metrics.jsonl"
  return _parse(path.read_text().splitlines()) if path.exists() else []


def progress(total: int, desc: str, initial: int = 0, unit: str = "step", disable: bool = False):
  """A tqdm progress bar (to stderr), shared by every long loop."""
  from tqdm.auto import tqdm
  return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, mininterval=2.0,
              disable=disable)
