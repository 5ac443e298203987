"""Shared fixtures: tiny generators so every test runs the real code paths in seconds."""
import runpy
from pathlib import Path

import jax
import pytest

from palmup import generators


def tiny_generator(num_classes=3, latent_dim=8, resolution=8, channels=1):
  gen = generators.make("stylegan", latent_dim, dict(
      num_classes=num_classes, resolution=resolution, out_channels=channels,
      channels=(16,) * (resolution.bit_length() - 2), w_dim=16, mapping_layers=1))
  return gen, gen.init(jax.random.PRNGKey(0))


@pytest.fixture(scope="session")
def tiny_gen():
  return tiny_generator()


ROOT = Path(__file__).parents[1]


def load_config(name, **overrides):
  """configs/<name>.py's config with dotted-key overrides, as --config.a.b=v would give."""
  config = runpy.run_path(str(ROOT / "configs" / f"{name}.py"))["get_config"]()
  for key, value in overrides.items():
    *path, leaf = key.split(".")
    node = config
    for p in path:
      node = node[p]
    node[leaf] = value
  return config
