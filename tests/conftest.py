"""Shared fixtures: tiny generators so every test runs the real code paths in seconds."""
import jax
import pytest

from palmup import configs, generators


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
