"""Shared fixtures: tiny generators so every test runs the real code paths in seconds."""
import os
import tempfile

import jax
import pytest

from palmup import configs, generators


def pytest_configure(config):
  """A persistent XLA compilation cache, new for each session and shared with the processes tests
  start: the same tiny programs, rebuilt by every run a test starts, compile once."""
  cache = tempfile.mkdtemp(prefix="palmup_xla_cache_")
  os.environ.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def tiny_generator(num_classes=3, latent_dim=8, resolution=8, channels=1):
  gen = generators.make("stylegan", latent_dim, dict(
      num_classes=num_classes, resolution=resolution, out_channels=channels,
      channels=(16,) * (resolution.bit_length() - 2), w_dim=16, mapping_layers=1))
  return gen, gen.init(jax.random.PRNGKey(0))


@pytest.fixture(scope="session")
def tiny_gen():
  return tiny_generator()


def load_config(name, **overrides):
  """configs/<name>.py's config with dotted-key overrides, as --config.a.b=v would give."""
  return configs.load(name, **overrides)
