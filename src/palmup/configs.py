"""Loading a config file (configs/*.py, big_vision style) with dotted-key overrides in code, as
`--config.a.b=value` does on the command line (experiment scripts and tests)."""
from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository (configs/ lives here)


def load(name_or_path: str, **overrides):
  """configs/<name>.py (or a path to a config file) -> its get_config() with overrides applied;
  an unknown key raises KeyError naming it."""
  path = Path(name_or_path)
  if path.suffix != ".py":
    path = ROOT / "configs" / f"{name_or_path}.py"
  config = runpy.run_path(str(path))["get_config"]()
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    if leaf not in node:
      raise KeyError(f"unknown config key {key!r} in {path.name}")
    node[leaf] = value
  return config
