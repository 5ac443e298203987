"""`palmup <command> --config configs/<file>.py --workdir DIR [--config.key=value ...]`.

Configs are ml_collections ConfigDicts (big_vision style); overrides are type-checked and an
unknown key is rejected before any work starts. Every command first joins a multi-process run when
the environment describes one (palmup.sharding.initialize_distributed), then validates its config,
writes it to DIR/config.json and runs. Errors a user can cause (palmup.errors.UserError, a config
that does not load, a full disk or a forbidden path) print one line, `palmup <command>: ...`, and
exit 1; programming errors keep their traceback. `palmup report --workdir DIR` needs no config
(it reads runs and writes DIR/report.html only).
"""
from __future__ import annotations

import importlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from palmup import sharding
from palmup.errors import UserError, environment_message

# command -> "module:function"; each function takes (config, workdir).
COMMANDS = {
    "train-generator": "palmup.train_generator:main",
    "import-generator": "palmup.generators:import_main",
    "eval-generator": "palmup.evaluators.generator_quality:main",
    "render": "palmup.render:main",
    "pretrain": "palmup.pretrain_job:main",
    "evaluate": "palmup.evaluate:main",
    "report": "palmup.report:main",
    "rl-transfer": "palmup.rl.transfer:main",
    "launch": "palmup.launch:main",
    "preflight": "palmup.preflight:main",
    "sweep": "palmup.sweep:main",
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
  config = _load_config(argv[1])
  if config is None and argv[1] not in CONFIG_OPTIONAL:
    raise app.UsageError(f"--config is required for {argv[1]}\n{usage()}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  module, fn = COMMANDS[argv[1]].split(":")
  try:
    sharding.initialize_distributed()  # before anything touches a JAX backend
    getattr(importlib.import_module(module), fn)(config, _WORKDIR.value)
  except UserError as e:
    sys.exit(f"palmup {argv[1]}: {' '.join(str(e).split())}")  # one line, whatever the message quotes
  except OSError as e:  # a full disk, a read-only or forbidden path; other OSErrors keep their traceback
    if (message := environment_message(e)) is None:
      raise
    sys.exit(f"palmup {argv[1]}: {message}")


def _load_config(command: str):
  """The --config file's ConfigDict (None without --config); a file that is missing or fails to
  load (its own syntax or code) stops with one line."""
  try:
    config = _CONFIG.value
    if config is not None:
      config.keys()  # a file that failed to load is a stand-in that raises its error here
    return config
  except Exception as e:  # noqa: BLE001 (whatever the config file's code raises)
    sys.exit(_unloadable(command, str(e).strip().splitlines()[-1].split("failure to load: ")[-1].strip()))


def _unloadable(command: str, reason: str) -> str:
  return (f"palmup {command}: --config {_config_path(sys.argv)} cannot be loaded ({reason}); give a config "
          "file such as configs/pretrain_fashion_mnist.py")


def _config_path(argv) -> str | None:
  path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if path is None and "--config" in argv[:-1]:
    path = argv[argv.index("--config") + 1]
  return path


def _unknown_override(argv) -> str | None:
  """Names the first --config.a.b=... override whose path is not in the config file."""
  import runpy
  path = _config_path(argv)
  if path is None:
    return None
  node = runpy.run_path(path)["get_config"]()
  for arg in argv:
    if arg.startswith("--config."):
      key = arg[len("--config."):].split("=", 1)[0]
      node_at, key_path = node, []
      for part in key.split("."):
        if not hasattr(node_at, "keys") or part not in node_at:
          valid = ", ".join(sorted(node_at.keys())) if hasattr(node_at, "keys") else "(none: a leaf)"
          where = "config." + ".".join(key_path) if key_path else "config"
          return f"unknown config key config.{key}; valid keys under {where}: {valid}"
        node_at, key_path = node_at[part], key_path + [part]
  return None


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    sys.exit(f"palmup: {_unknown_override(argv) or e}")
  except flags.Error as e:  # a bad flag or value, or --config.key=value without --config
    sys.exit(f"palmup: {e}\n{usage()}")
  except Exception as e:  # noqa: BLE001 (the config file's own code failed: a syntax error, a bad import)
    sys.exit(_unloadable(argv[1] if len(argv) > 1 else "", f"{type(e).__name__}: {e}"))


def run():
  """Console-script entry point."""
  if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "help"):
    print(usage())
    sys.exit(0 if len(sys.argv) >= 2 else 2)
  app.run(_main, flags_parser=_parse_flags)
