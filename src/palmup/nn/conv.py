"""2-D convolution whose weight gradient is computed as per-tap matmuls.

XLA:CPU lowers a convolution's weight gradient to a slow generic kernel (about 4 GFLOP/s on
a 2-core CPU, 6-7x below the forward pass). For a KxK kernel the weight gradient is a sum of
K*K independent matmuls between shifted input windows and the output gradient,

    dW[i, j] = sum_{b, h, w} x_pad[b, s*h + i, s*w + j, :]^T g[b, h, w, :],

which XLA turns into fast dot kernels. The input gradient is left to XLA. Values match
`lax.conv_general_dilated` to float32 rounding (tested in tests/test_conv.py); the speed-up is
measured by benchmarks/conv_grad.py. `fast_weight_grad=False` falls back to XLA throughout,
which is what accelerators want.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")


def _padding(kernel: tuple[int, int], padding: str) -> tuple[tuple[int, int], tuple[int, int]]:
  """Explicit (lo, hi) padding; 'SAME' is only symmetric-exact for odd kernels at stride 1."""
  if padding == "VALID":
    return ((0, 0), (0, 0))
  if padding == "SAME":
    return tuple((k // 2, (k - 1) // 2) for k in kernel)  # type: ignore[return-value]
  raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")


def _xla_conv(x, w, stride: int, pads):
  return lax.conv_general_dilated(x, w, (stride, stride), pads, dimension_numbers=_DIMS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_tapgrad(x, w, stride, pads):
  return _xla_conv(x, w, stride, pads)


def _fwd(x, w, stride, pads):
  return _xla_conv(x, w, stride, pads), (x, w)


def _bwd(stride, pads, residuals, g):
  x, w = residuals
  _, x_vjp = jax.vjp(lambda x_: _xla_conv(x_, w, stride, pads), x)
  (dx,) = x_vjp(g)
  kh, kw = w.shape[:2]
  _, ho, wo, _ = g.shape
  x_pad = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  g2 = g.reshape(-1, g.shape[-1])
  taps = []
  for i in range(kh):
    for j in range(kw):
      window = lax.slice(
          x_pad,
          (0, i, j, 0),
          (x.shape[0], i + stride * (ho - 1) + 1, j + stride * (wo - 1) + 1, x.shape[3]),
          (1, stride, stride, 1),
      )
      taps.append(window.reshape(-1, x.shape[3]).T @ g2)
  dw = jnp.stack(taps).reshape(w.shape)
  return dx, dw


_conv_tapgrad.defvjp(_fwd, _bwd)


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, padding: str = "SAME",
           fast_weight_grad: bool = True) -> jax.Array:
  """Convolution of x[B, H, W, Cin] with w[kh, kw, Cin, Cout] -> [B, H', W', Cout].

  Padding 'SAME' pads k//2 before and (k-1)//2 after (so stride 2 halves even sizes).
  """
  pads = _padding(w.shape[:2], padding)
  if fast_weight_grad:
    return _conv_tapgrad(x, w, stride, pads)
  return _xla_conv(x, w, stride, pads)
