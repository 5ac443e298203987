"""Shared fixtures: tiny generators so every test runs the real code paths in seconds."""
import os
import tempfile

# The suite compiles many small programs once each. XLA:CPU's backend optimisation is half of a
# tiny loop's compile time (the chunk and init of pretrain_tiny: 42 s at the default level, 21 s at
# 0, on this 2-core machine) and buys nothing at test sizes. Set before JAX starts a backend; the
# processes tests start inherit it; an XLA_FLAGS that sets the level wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

import jax  # noqa: E402  (after XLA_FLAGS)
import pytest

from palmup import configs, generators


def pytest_configure(config):
  """A persistent XLA compilation cache, new for each session and shared with the processes tests
  start: the same tiny programs, rebuilt by every run a test starts, compile once."""
  cache = tempfile.mkdtemp(prefix="palmup_xla_cache_")
  os.environ.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


# The modules whose tests run longest (multi-process runs, sweeps, faults): collected first, so that
# `pytest -n 2` does not end on one worker running them while the other idles.
LONGEST_FIRST = ("test_sweep.py", "test_faults.py", "test_stylegan2ada.py", "test_multiprocess.py")


def pytest_collection_modifyitems(items):
  rank = lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST else len(LONGEST_FIRST)
  items.sort(key=rank)  # stable: the order within a module is kept


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
