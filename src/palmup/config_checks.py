"""Config validation: every command checks its config before any work and names what is wrong."""
from __future__ import annotations

from typing import Any, Iterable

from palmup.errors import UserError


class ConfigError(UserError, ValueError):
  """A config value is invalid; the message names the key, the value and what is valid."""


def require(ok: bool, key: str, value: Any, valid: str):
  if not ok:
    raise ConfigError(f"config.{key}={value!r} is invalid; valid: {valid}")


def one_of(config, key: str, choices: Iterable[Any]):
  choices = list(choices)
  value = get(config, key)
  require(value in choices, key, value, "one of " + ", ".join(map(repr, choices)))


def positive(config, key: str, allow_zero: bool = False):
  value = get(config, key)
  require(value >= 0 if allow_zero else value > 0, key, value, ">= 0" if allow_zero else "> 0")


def in_range(config, key: str, lo: float, hi: float):
  value = get(config, key)
  require(lo <= value <= hi, key, value, f"in [{lo}, {hi}]")


def get(config, key: str):
  for part in key.split("."):
    config = config[part]
  return config
