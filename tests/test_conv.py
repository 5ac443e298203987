"""The per-tap and im2col gradient rules give XLA's values and gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from palmup.nn.conv import conv2d


@pytest.mark.parametrize("grad", ["taps", "im2col"])
@pytest.mark.parametrize("shape,kernel,stride", [((2, 8, 8, 3), 3, 1), ((2, 9, 7, 4), 3, 2),
                                                  ((3, 8, 8, 2), 1, 1), ((2, 8, 8, 5), 4, 2)])
def test_matches_xla_values_and_gradients(shape, kernel, stride, grad):
  kx, kw, kg = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, shape)
  w = jax.random.normal(kw, (kernel, kernel, shape[-1], 6))
  fast = lambda x, w: conv2d(x, w, stride, grad=grad)
  ref = lambda x, w: conv2d(x, w, stride, grad="xla")
  y = ref(x, w)
  np.testing.assert_allclose(fast(x, w), y, rtol=1e-6)
  np.testing.assert_allclose(jax.vjp(fast, x, w)[0], y, rtol=1e-5, atol=1e-5)  # the forward under differentiation
  g = jax.random.normal(kg, y.shape)
  loss = lambda f: lambda x, w: jnp.sum(f(x, w) * g)
  (dx_f, dw_f), (dx_r, dw_r) = (jax.grad(loss(f), (0, 1))(x, w) for f in (fast, ref))
  np.testing.assert_allclose(dx_f, dx_r, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dw_f, dw_r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("grad", ["taps", "im2col"])
def test_second_order_gradient_matches_xla(grad):
  """R1 needs d/dw of ||dL/dx||^2: the custom rule must be differentiable."""
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 6, 3))
  w = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 3, 4))

  def r1(rule):
    inner = lambda w: jax.grad(lambda x: jnp.sum(jnp.tanh(conv2d(x, w, grad=rule))))(x)
    return jax.grad(lambda w: jnp.sum(inner(w) ** 2))(w)

  np.testing.assert_allclose(r1(grad), r1("xla"), rtol=1e-4, atol=1e-4)


def test_the_auto_rule_follows_the_backend_and_a_learner_compiles_for_its_platform():
  from ml_collections import ConfigDict
  from palmup.learner import Learner
  from palmup.nn.conv import rule_for
  assert [rule_for("auto", p) for p in ("cpu", "gpu", "tpu")] == ["im2col", "xla", "xla"]
  assert rule_for("taps", "tpu") == "taps" and rule_for("auto") == "im2col"  # this CPU is the default backend
  encoder = dict(name="conv", widths=(4,), features=4, conv_grad="auto", stem="cifar", width=4)
  config = ConfigDict(dict(encoder=encoder, head_hidden=4, head_out=4, dtype="float32"))
  assert Learner(config, 2, "tpu").model.encoder.conv_grad == "xla"
  assert Learner(config, 2).model.encoder.conv_grad == "im2col"
  with pytest.raises(ValueError, match="auto.*got 'fast'"):
    rule_for("fast", "cpu")


def test_bad_padding_and_rule_are_named():
  with pytest.raises(ValueError, match="'FULL'"):
    conv2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 1)), padding="FULL")
  with pytest.raises(ValueError, match="im2col.*got 'fast'"):
    conv2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 1)), grad="fast")
