"""The generator interface: shapes, ranges, determinism, save/load, the shipped generator."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from palmup import generators
from palmup.errors import UserError
from palmup.generators.stylegan import ProjectionDiscriminator


def test_interface_shapes_and_range(tiny_gen):
  gen, params = tiny_gen
  z = jax.random.normal(jax.random.PRNGKey(0), (5, gen.latent_dim))
  y = jnp.array([0, 1, 2, 0, 1])
  out = gen.apply(params, z, y)
  assert out.shape == (5,) + gen.image_shape == (5, 8, 8, 1)
  assert float(jnp.abs(out).max()) <= 1.0
  np.testing.assert_array_equal(out, gen.apply(params, z, y))  # deterministic: no noise inputs
  assert not np.allclose(out[0], gen.apply(params, z[:1], jnp.array([2]))[0])  # class matters


def test_save_load_roundtrip(tiny_gen, tmp_path):
  gen, params = tiny_gen
  generators.save(tmp_path / "g", gen, params)
  gen2, params2 = generators.load(str(tmp_path / "g"))
  assert gen2 == gen
  z = jnp.ones((2, gen.latent_dim))
  np.testing.assert_array_equal(gen2.apply(params2, z, jnp.array([0, 1])), gen.apply(params, z, jnp.array([0, 1])))


def test_bad_paths_and_kinds_are_named(tmp_path):
  with pytest.raises(UserError, match="builtin:fashion_mnist_32"):
    generators.load("builtin:nope")
  with pytest.raises(UserError, match="generator.json"):
    generators.load(str(tmp_path))
  with pytest.raises(ValueError, match="'gan9'.*'stylegan'"):
    generators.make("gan9", 4, {})
  with pytest.raises(ValueError, match="resolution=12"):
    generators.make("stylegan", 4, dict(num_classes=2, resolution=12, channels=(8, 8)))


def test_projection_discriminator_depends_on_class():
  disc = ProjectionDiscriminator(3, channels=(8, 8))
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 1))
  p = disc.init(jax.random.PRNGKey(1), x, jnp.zeros(4, jnp.int32))
  a, b = disc.apply(p, x, jnp.zeros(4, jnp.int32)), disc.apply(p, x, jnp.full(4, 2))
  assert a.shape == (4,) and not np.allclose(a, b)


def test_shipped_fashion_mnist_generator():
  gen, params = generators.load("builtin:fashion_mnist_32")
  assert gen.image_shape == (32, 32, 1) and gen.num_classes == 10 and len(gen.class_names) == 10
  out = jax.jit(gen.apply)(params, jax.random.normal(jax.random.PRNGKey(0), (10, gen.latent_dim)), jnp.arange(10))
  assert out.shape == (10, 32, 32, 1)
  assert float(out.std()) > 0.2  # a trained generator, not a constant image
