"""2-D convolution with a choice of gradient rule: XLA's, per-tap or im2col matmuls.

XLA:CPU runs a convolution's gradients through slow generic kernels (the weight gradient at
about 4-20 GFLOP/s on a 2-core CPU, against about 180 for a large matmul). Two rewrites into
dots, which XLA turns into fast matmul kernels (`grad=`):

  "taps"    the weight gradient as a sum over the K*K kernel taps of window^T @ g (one matmul
            per tap); the input gradient stays XLA's. Best for the GAN's stride-1 layers.
  "im2col"  under differentiation, gather the input windows once into a patch matrix
            P[B*H'*W', K*K*Cin] (kept as the residual: K*K times the input's memory) and compute
            y = P @ W, dW = P^T @ g, dx = col2im(g @ W^T). Best for the learner's strided
            encoder (its step 1.7x faster than per-tap, 2.3x than XLA's on this CPU;
            benchmarks/learner_flops.py).
  "xla"     XLA's convolution and rules throughout: what accelerators want.
  "auto"    (configs) "im2col" on CPU, "xla" on any other backend (`rule_for`).

The forward value without differentiation is always XLA's convolution (e.g. decoding in the env).
Values match `lax.conv_general_dilated` to float32 rounding (tests/test_conv.py); the speed of
each rule per layer and per GAN step is measured by benchmarks/conv_grad.py.
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


def _windows(padded_shape, kernel, stride: int, out_hw):
  """(start, limit) of each of the kh*kw strided window slices of the padded input, tap (i, j)
  starting at row i, column j."""
  (b, _, _, c), (kh, kw), (ho, wo) = padded_shape, kernel, out_hw
  return [((0, i, j, 0), (b, i + stride * (ho - 1) + 1, j + stride * (wo - 1) + 1, c))
          for i in range(kh) for j in range(kw)]


def im2col(x, kernel: tuple[int, int], stride: int, pads):
  """Patches [B, H', W', kh*kw*Cin] of x[B, H, W, Cin], ordered (i, j, cin) like an HWIO kernel."""
  xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  out_hw = [(xp.shape[d] - kernel[d - 1]) // stride + 1 for d in (1, 2)]
  taps = [lax.slice(xp, start, limit, (1, stride, stride, 1))
          for start, limit in _windows(xp.shape, kernel, stride, out_hw)]
  return jnp.concatenate(taps, axis=-1)


def col2im(patches, x_shape, kernel: tuple[int, int], stride: int, pads):
  """The transpose of im2col: patches [B, H', W', kh*kw*Cin] summed back into [B, H, W, Cin]."""
  b, h, w, c = x_shape
  padded = (b, h + sum(pads[0]), w + sum(pads[1]), c)
  taps = patches.reshape(*patches.shape[:3], -1, c)
  total = jnp.zeros(padded, patches.dtype)
  for t, (start, limit) in enumerate(_windows(padded, kernel, stride, patches.shape[1:3])):
    spread = ((0, 0, 0), (start[1], padded[1] - limit[1], stride - 1), (start[2], padded[2] - limit[2], stride - 1),
              (0, 0, 0))
    total = total + lax.pad(taps[:, :, :, t], jnp.zeros((), patches.dtype), spread)
  return total[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_taps(x, w, stride, pads):
  return _xla_conv(x, w, stride, pads)


def _taps_fwd(x, w, stride, pads):
  return _xla_conv(x, w, stride, pads), (x, w)


def input_gradient(g, w, stride: int, pads, x_shape):
  """The gradient [B, H, W, Cin] of a convolution's input from its output's g [B, H', W', Cout].
  At stride 1, a forward convolution of g with the flipped kernel, its in and out channels swapped
  in memory (HWIO as a forward kernel is): XLA's own transpose rule gives a convolution whose kernel
  layout XLA:CPU runs through a slow generic loop inside a lax.scan (measured 3-5x the same
  convolution outside one), where this one keeps the fast path. Other strides: XLA's rule."""
  if stride != 1:
    _, x_vjp = jax.vjp(lambda x_: _xla_conv(x_, w, stride, pads), jnp.zeros(x_shape, g.dtype))
    return x_vjp(g)[0]
  (kh, kw) = w.shape[:2]
  flipped = jnp.swapaxes(jnp.flip(w, (0, 1)), 2, 3)
  return _xla_conv(g, flipped, 1, ((kh - 1 - pads[0][0], kh - 1 - pads[0][1]), (kw - 1 - pads[1][0], kw - 1 - pads[1][1])))


def _taps_bwd(stride, pads, residuals, g):
  x, w = residuals
  dx = input_gradient(g, w, stride, pads, x.shape)
  xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  g2 = g.reshape(-1, g.shape[-1])
  taps = [lax.slice(xp, start, limit, (1, stride, stride, 1)).reshape(-1, x.shape[3]).T @ g2
          for start, limit in _windows(xp.shape, w.shape[:2], stride, g.shape[1:3])]
  return dx, jnp.stack(taps).reshape(w.shape)


_conv_taps.defvjp(_taps_fwd, _taps_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_im2col(x, w, stride, pads):
  return _xla_conv(x, w, stride, pads)


def _im2col_fwd(x, w, stride, pads):
  patches = im2col(x, w.shape[:2], stride, pads)
  return patches @ w.reshape(-1, w.shape[-1]), (patches, x.shape, w)


def _im2col_bwd(stride, pads, residuals, g):
  patches, x_shape, w = residuals
  w2 = w.reshape(-1, w.shape[-1])
  dw = patches.reshape(-1, w2.shape[0]).T @ g.reshape(-1, w2.shape[1])
  dx = col2im(g @ w2.T, x_shape, w.shape[:2], stride, pads)
  return dx, dw.reshape(w.shape)


_conv_im2col.defvjp(_im2col_fwd, _im2col_bwd)


GRADS = {"xla": _xla_conv, "taps": _conv_taps, "im2col": _conv_im2col}
RULES = ("auto", *GRADS)  # what a config may name (learner.encoder.conv_grad)


def rule_for(rule: str, platform: str | None = None) -> str:
  """The gradient rule (a key of GRADS) that a config's `rule` means on `platform` (a JAX
  platform name, "cpu", "gpu", "tpu"; None: the default backend's): "auto" is "im2col" on CPU and
  "xla" elsewhere; any other rule is itself."""
  if rule not in RULES:
    raise ValueError(f"conv gradient rule must be one of {RULES}, got {rule!r}")
  if rule != "auto":
    return rule
  return "im2col" if (platform or jax.default_backend()) == "cpu" else "xla"


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, padding: str = "SAME", grad: str = "xla") -> jax.Array:
  """Convolution of x[B, H, W, Cin] with w[kh, kw, Cin, Cout] -> [B, H', W', Cout], differentiated
  by the rule `grad` (one of GRADS, see above).

  Padding 'SAME' pads k//2 before and (k-1)//2 after (so stride 2 halves even sizes).
  """
  if grad not in GRADS:
    raise ValueError(f"grad must be one of {sorted(GRADS)}, got {grad!r}")
  return GRADS[grad](x, w, stride, _padding(w.shape[:2], padding))
