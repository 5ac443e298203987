"""`palmup <command> --config configs/<file>.py --workdir DIR [--config.key=value ...]`.

Configs are ml_collections ConfigDicts (big_vision style); overrides are type-checked and an
unknown key is rejected before any work starts. Each command validates its config, writes it to
DIR/config.json, then runs. `palmup report --workdir DIR` needs no config (it reads runs and
writes DIR/report.html only).
"""
from __future__ import annotations

import importlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from palmup.config_checks import ConfigError

# command -> "module:function"; each function takes (config, workdir).
COMMANDS = {
    "train-generator": "palmup.generators.train:main",
    "import-generator": "palmup.generators.eye_dcgan:import_main",
    "eval-generator": "palmup.evaluators.generator_quality:main",
    "render": "palmup.render:main",
    "pretrain": "palmup.pretrain:main",
    "evaluate": "palmup.evaluate:main",
    "report": "palmup.report:main",
    "rl-transfer": "palmup.rl.transfer:main",
}

# Commands whose --config is optional (their function then gets config None).
CONFIG_OPTIONAL = {"report"}

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for everything the run writes.")


def usage() -> str:
  return ("usage: palmup <command> --config configs/<file>.py --workdir DIR [--config.key=value ...]\n"
          "       palmup report --workdir DIR [--config configs/report.py --config.runs=DIR2,DIR3]\n"
          f"commands: {', '.join(COMMANDS)}")


def _main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    got = " ".join(argv[1:]) or "nothing"
    raise app.UsageError(f"expected one command, got {got!r}\n{usage()}")
  if _WORKDIR.value is None:
    raise app.UsageError(f"--workdir is required\n{usage()}")
  if _CONFIG.value is None and argv[1] not in CONFIG_OPTIONAL:
    raise app.UsageError(f"--config is required for {argv[1]}\n{usage()}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  module, fn = COMMANDS[argv[1]].split(":")
  try:
    getattr(importlib.import_module(module), fn)(_CONFIG.value, _WORKDIR.value)
  except ConfigError as e:
    sys.exit(f"palmup {argv[1]}: {e}")


def _unknown_override(argv) -> str | None:
  """Names the first --config.a.b=... override whose path is not in the config file."""
  import runpy
  path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if path is None and "--config" in argv:
    path = argv[argv.index("--config") + 1]
  if path is None:
    return None
  node = runpy.run_path(path)["get_config"]()
  for arg in argv:
    if arg.startswith("--config."):
      key = arg[len("--config."):].split("=", 1)[0]
      node_at, seen = node, []
      for part in key.split("."):
        if not hasattr(node_at, "keys") or part not in node_at:
          valid = ", ".join(sorted(node_at.keys())) if hasattr(node_at, "keys") else "(none: a leaf)"
          where = "config." + ".".join(seen) if seen else "config"
          return f"unknown config key config.{key}; valid keys under {where}: {valid}"
        node_at, seen = node_at[part], seen + [part]
  return None


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    sys.exit(f"palmup: {_unknown_override(argv) or e}")
  except flags.Error as e:  # a bad flag or value, or --config.key=value without --config
    sys.exit(f"palmup: {e}\n{usage()}")


def run():
  """Console-script entry point."""
  if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "help"):
    print(usage())
    sys.exit(0 if len(sys.argv) >= 2 else 2)
  app.run(_main, flags_parser=_parse_flags)
