"""What every command writes into its workdir: the resolved config, metrics, a progress bar.

    workdir/config.json      the config as run (after command-line overrides)
    workdir/metrics.jsonl    one JSON object per logged step: {"step": int, "time": float, ...}
    workdir/tensorboard/     the same scalars for TensorBoard
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def prepare(workdir: str | Path, config) -> Path:
  """Creates the workdir and writes the resolved config to config.json."""
  workdir = Path(workdir).expanduser().absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
  return workdir


class MetricWriter:
  """Appends scalar metrics to metrics.jsonl and TensorBoard event files."""

  def __init__(self, workdir: str | Path, tensorboard: bool = True):
    self.path = Path(workdir) / "metrics.jsonl"
    self._tb = None
    if tensorboard:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

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


def read_metrics(workdir: str | Path) -> list[dict[str, float]]:
  """All rows of workdir/metrics.jsonl."""
  path = Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def progress(total: int, desc: str, initial: int = 0, unit: str = "step"):
  """A tqdm progress bar (to stderr), shared by every long loop."""
  from tqdm.auto import tqdm
  return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, mininterval=2.0)
