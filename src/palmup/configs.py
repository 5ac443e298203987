"""Loading a config file (configs/*.py, big_vision style) with dotted-key overrides in code, as
`--config.a.b=value` does on the command line (experiment scripts and tests)."""
from __future__ import annotations

import runpy
from pathlib import Path

from palmup.errors import UserError

ROOT = Path(__file__).resolve().parents[2]  # the repository (configs/ lives here)


def parse_overrides(args: list[str]) -> dict:
  """{"a.b": value} of command-line overrides ["--config.a.b=value", ...]; values are Python
  literals where they parse as one (1, 0.5, True, (1, 2)), strings otherwise."""
  import ast
  out = {}
  for arg in args:
    if not arg.startswith("--config.") or "=" not in arg:
      raise UserError(f"override {arg!r} is invalid; valid: --config.key=value")
    key, text = arg[len("--config."):].split("=", 1)
    try:
      out[key] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      out[key] = text
  return out


def copy(config):
  """An unlocked deep copy of a ConfigDict."""
  import ml_collections
  return ml_collections.ConfigDict(config.to_dict())


def load(name_or_path: str, **overrides):
  """configs/<name>.py (or a path to a config file) -> its get_config() with overrides applied;
  an unknown key raises a UserError naming it."""
  path = Path(name_or_path)
  if path.suffix != ".py":
    path = ROOT / "configs" / f"{name_or_path}.py"
  if not path.is_file():
    raise UserError(f"config {name_or_path!r} is not a file; give a path such as configs/pretrain_fashion_mnist.py "
                    "or a name in configs/")
  config = runpy.run_path(str(path))["get_config"]()
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      if part not in node:
        raise UserError(f"unknown config key {key!r} in {path.name}")
      node = node[part]
    if leaf not in node:
      raise UserError(f"unknown config key {key!r} in {path.name}")
    node[leaf] = value
  return config
