"""Encoders: shapes, and ResNet parameter counts equal to the standard architectures."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from palmup.nn.encoders import ConvEncoder, ProjectionHead, ResNet


def _count(module, shape):
  params = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros(shape))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


@pytest.mark.parametrize("depth,expected", [(18, 11_176_512), (50, 23_508_032)])
def test_resnet_parameter_counts_match_torchvision(depth, expected):
  """torchvision resnet18/50 without the fc layer (BatchNorm's scale/bias = GroupNorm's)."""
  assert _count(ResNet(depth, stem="imagenet"), (1, 64, 64, 3)) == expected


@pytest.mark.slow  # about 30 s; `make test-slow`
def test_resnet18_cifar_stem_forward():
  model = ResNet(18, stem="cifar", width=8)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 3))
  params = model.init(jax.random.PRNGKey(1), x)
  out = model.apply(params, x)
  assert out.shape == (2, 64) and bool(jnp.all(jnp.isfinite(out)))
  with pytest.raises(ValueError, match="depth=19"):
    ResNet(19).init(jax.random.PRNGKey(0), x)


def test_conv_encoder_and_head_shapes_and_gradients():
  enc, head = ConvEncoder(widths=(8, 16), features=32), ProjectionHead(hidden=16, out=8)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 32, 32, 1))
  pe = enc.init(jax.random.PRNGKey(1), x)
  h = enc.apply(pe, x)
  ph = head.init(jax.random.PRNGKey(2), h)
  assert h.shape == (4, 32) and head.apply(ph, h).shape == (4, 8)
  grads = jax.grad(lambda p: jnp.sum(head.apply(ph, enc.apply(p, x)) ** 2))(pe)
  assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))
