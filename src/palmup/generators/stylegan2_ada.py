"""NVIDIA's StyleGAN2-ADA generator (NVlabs/stylegan2-ada-pytorch), ported to Flax for inference.

`gen.apply(params, z, y)` equals NVIDIA's
`G_ema(z, one_hot(y), truncation_psi, truncation_cutoff, noise_mode=noise_mode, force_fp32=True)`
moved from NCHW to NHWC: float32 [B, R, R, C], unclamped (roughly [-1, 1]; the env's uint8
conversion clips). The truncation and noise settings are fields of the module, fixed at import.

Forward pass, term by term:
- mapping (`map_w`, the W space): x = [n(z) ; n(embed(one_hot(y)))] with n(v) = v / sqrt(mean(v^2) + 1e-8) (a part is
  absent when z_dim or c_dim is 0), then `mapping_layers` fully connected layers with learning-rate
  multiplier `mapping_lr` (weight * lr / sqrt(fan_in), bias * lr) and lrelu(0.2) * sqrt(2); the
  embedding is linear with lr 1. w is repeated to num_ws rows and pulled towards w_avg:
  w_avg + psi (w - w_avg) for the first `truncation_cutoff` rows (all when None).
- synthesis: blocks at 4, 8, .., R. Block 4 starts from a learned constant; every later block runs
  conv0 (3x3, up 2) and conv1 (3x3). Each conv is modulated by styles s = affine(w) (bias init 1)
  and demodulated: y = conv(x * s, W) * rsqrt(sum_{i,k} (W s_i)^2 + 1e-8), the non-fused form, one
  dense convolution with the shared weight over the whole batch. Up 2 is a stride-2 transposed
  convolution, then the 4x4 resample filter (outer([1,3,3,1]) / 64) with gain 4. Then the noise
  (noise_const * noise_strength for 'const', nothing for 'none'), bias, lrelu * sqrt(2) * g and a
  clamp at conv_clamp * g (g = 1, or sqrt(1/2) for conv1 of a 'resnet' block).
- ToRGB: a 1x1 modulated conv without demodulation (styles * 1/sqrt(Cin)), bias, clamp at
  conv_clamp (no gain). 'skip': img = upsample(img) + torgb(x) in every block, the upsampling
  being the resample filter with gain 4 on the zero-stuffed image; 'orig' and 'resnet': ToRGB of
  the last block only; 'resnet' adds a 1x1 up-2 skip conv (no bias) scaled by sqrt(1/2).
- w rows: block b's convs take consecutive rows, and its ToRGB the next row, which is the next
  block's conv0 row (num_ws = number of convs + 1).

`dtype="bfloat16"` runs the synthesis convolutions in bfloat16 (float32 accumulation; styles,
demodulation, noise, bias and the image sum in float32), for accelerators; the error against
float32 is measured in benchmarks/stylegan2ada_forward.py. `fused_modconv=True` computes the same
maths with per-sample kernels (a grouped convolution, NVIDIA's fused path), for benchmarking only.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ARCHITECTURES = ("skip", "orig", "resnet")
NOISE_MODES = ("const", "none")
DTYPES = ("float32", "bfloat16")
SQRT2 = math.sqrt(2.0)


def normalize_2nd_moment(x, eps: float = 1e-8):
  """x[B, D] / sqrt(mean over D of x^2 + eps)."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def default_filter() -> np.ndarray:
  """The [1, 3, 3, 1] resample filter as NVIDIA stores it: outer product, normalised to sum 1."""
  f = np.asarray([1.0, 3.0, 3.0, 1.0], np.float32)
  f = np.outer(f, f)
  return f / f.sum()


def bias_act(x, bias, lrelu: bool, gain: float, clamp: float | None):
  """NVIDIA's bias_act: x + bias (on the last axis), lrelu(0.2) if `lrelu`, times gain, clamp."""
  x = x + bias
  if lrelu:
    x = jnp.where(x >= 0, x, 0.2 * x)
  if gain != 1:
    x = x * gain
  if clamp is not None:
    x = jnp.clip(x, -clamp, clamp)
  return x


def upfirdn(x, f, up: int, pad: tuple[int, int], gain: float):
  """NVIDIA's upfirdn2d (down 1) on NHWC x: zero-stuff by `up`, pad (before, after) on H and W,
  convolve each channel with the 2-D filter f[fh, fw] times gain. [B, H, W, C] -> [B, H', W', C]."""
  c = x.shape[-1]
  kernel = jnp.asarray(f[::-1, ::-1] * gain, x.dtype)[:, :, None, None] * jnp.ones((1, 1, 1, c), x.dtype)
  # lhs_dilation leaves no zero after the last sample, zero-stuffing does: one more pad after.
  padding = ((pad[0], pad[1] + up - 1),) * 2
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, lhs_dilation=(up, up),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c,
                                      precision=jax.lax.Precision.HIGHEST)


def _precision(dtype):
  """float32 convolutions at HIGHEST precision on every backend (DEFAULT would be bfloat16 passes on
  TPU and TF32 on GPU, far from NVIDIA's float32 outputs); bfloat16 ones as they are."""
  return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else None


def conv(x, w, up: int = 1, f=None, dtype=jnp.float32):
  """NVIDIA's conv2d_resample(x, w, f, up, padding=k // 2) with weight w[k, k, Cin, Cout] (HWIO,
  correlation as torch's conv2d): 'same' conv for up 1; for up 2, a stride-2 transposed conv
  (a dilated conv with the flipped kernel), then upfirdn with f and gain 4. Float32 output."""
  k = w.shape[0]
  x, w = x.astype(dtype), w.astype(dtype)
  dn = ("NHWC", "HWIO", "NHWC")
  if up == 1:
    return jax.lax.conv_general_dilated(x, w, (1, 1), ((k // 2, k // 2),) * 2, dimension_numbers=dn,
                                        precision=_precision(dtype), preferred_element_type=jnp.float32)
  x = jax.lax.conv_general_dilated(x, w[::-1, ::-1], (1, 1), ((k - 1, k - 1),) * 2, lhs_dilation=(up, up),
                                   dimension_numbers=dn, precision=_precision(dtype),
                                   preferred_element_type=jnp.float32)
  fw, p = f.shape[0], k // 2
  pad = (p + (fw + up - 1) // 2 - (k - 1), p + (fw - up) // 2 - (k - up))
  return upfirdn(x, f, 1, pad, gain=up * up)


def modulated_conv(x, weight, styles, demodulate: bool, up: int = 1, f=None, dtype=jnp.float32,
                   fused: bool = False):
  """StyleGAN2's modulated convolution. x[B, H, W, Cin], weight[k, k, Cin, Cout] (raw),
  styles[B, Cin] -> float32 [B, H * up, W * up, Cout]. Non-fused: the input is scaled by the styles,
  convolved with the shared weight, and the output scaled by the demodulation coefficients."""
  dcoefs = None
  if demodulate:
    energy = jnp.matmul(jnp.square(styles), jnp.sum(jnp.square(weight), axis=(0, 1)),
                        precision=jax.lax.Precision.HIGHEST)  # float32 on every backend
    dcoefs = jax.lax.rsqrt(energy + 1e-8)  # [B, Cout]
  if fused:
    kernels = weight[None] * styles[:, None, None, :, None]
    if demodulate:
      kernels = kernels * dcoefs[:, None, None, None, :]
    return jax.vmap(lambda xi, ki: conv(xi[None], ki, up, f, dtype)[0])(x, kernels)
  y = conv(x * styles[:, None, None, :], weight, up, f, dtype)
  return y if dcoefs is None else y * dcoefs[:, None, None, :]


class FullyConnected(nn.Module):
  """NVIDIA's FullyConnectedLayer: x @ (W * lr / sqrt(fan_in)).T + b * lr, then optionally
  lrelu * sqrt(2). Weight stored [in, out] (torch's transposed), raw."""
  features: int
  lr_multiplier: float = 1.0
  bias_init: float = 0.0
  lrelu: bool = False

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    weight = self.param("weight", lambda k, s: jax.random.normal(k, s) / self.lr_multiplier, (fan_in, self.features))
    bias = self.param("bias", lambda k, s: jnp.full(s, self.bias_init, jnp.float32), (self.features,))
    x = jnp.dot(x, weight * (self.lr_multiplier / math.sqrt(fan_in)), precision=jax.lax.Precision.HIGHEST)
    return bias_act(x, bias * self.lr_multiplier, self.lrelu, SQRT2 if self.lrelu else 1.0, None)


class Mapping(nn.Module):
  """(z[B, z_dim], y[B] int) -> w[B, w_dim], untruncated; holds w_avg (see `truncate`)."""
  z_dim: int
  c_dim: int
  w_dim: int
  num_layers: int
  embed_features: int
  layer_features: int
  lr_multiplier: float

  @nn.compact
  def __call__(self, z, y):
    parts = [normalize_2nd_moment(z.astype(jnp.float32))] if self.z_dim else []
    if self.c_dim:
      c = jax.nn.one_hot(y, self.c_dim, dtype=jnp.float32)
      parts.append(normalize_2nd_moment(FullyConnected(self.embed_features, name="embed")(c)))
    x = jnp.concatenate(parts, axis=-1)
    for i in range(self.num_layers):
      features = self.w_dim if i == self.num_layers - 1 else self.layer_features
      x = FullyConnected(features, self.lr_multiplier, lrelu=True, name=f"fc{i}")(x)
    self.param("w_avg", nn.initializers.zeros, (self.w_dim,))
    return x


def truncate(w, w_avg, num_ws: int, psi: float, cutoff: int | None):
  """w[B, w_dim] -> ws[B, num_ws, w_dim]: w repeated, its first `cutoff` rows (all when None)
  pulled towards w_avg: w_avg + psi (w - w_avg)."""
  ws = jnp.broadcast_to(w[:, None, :], (w.shape[0], num_ws, w.shape[-1]))
  if psi == 1:
    return ws
  rows = jnp.arange(num_ws)[None, :, None] < (num_ws if cutoff is None else cutoff)
  return jnp.where(rows, w_avg + psi * (ws - w_avg), ws)


class SynthesisLayer(nn.Module):
  """A modulated 3x3 conv (up 1 or 2), noise, bias, lrelu, clamp: x[B, H, W, Cin], w[B, w_dim]."""
  features: int
  resolution: int
  up: int
  use_noise: bool
  noise_mode: str
  conv_clamp: float | None
  gain: float = 1.0
  dtype: str = "float32"
  fused: bool = False

  @nn.compact
  def __call__(self, x, w):
    cin = x.shape[-1]
    styles = FullyConnected(cin, bias_init=1.0, name="affine")(w)
    weight = self.param("weight", nn.initializers.normal(1.0), (3, 3, cin, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    f = self.param("resample_filter", lambda *_: jnp.asarray(default_filter()), None) if self.up > 1 else None
    x = modulated_conv(x, weight, styles, True, self.up, f, jnp.dtype(self.dtype), self.fused)
    if self.use_noise:
      noise_const = self.param("noise_const", nn.initializers.normal(1.0), (self.resolution, self.resolution))
      noise_strength = self.param("noise_strength", nn.initializers.zeros, ())
      if self.noise_mode == "const":
        x = x + (noise_const * noise_strength)[None, :, :, None]
    clamp = None if self.conv_clamp is None else self.conv_clamp * self.gain
    return bias_act(x, bias, True, SQRT2 * self.gain, clamp)


class ToRGB(nn.Module):
  """A 1x1 modulated conv without demodulation, bias, clamp: x[B, H, W, Cin] -> [B, H, W, C]."""
  channels: int
  conv_clamp: float | None
  dtype: str = "float32"
  fused: bool = False

  @nn.compact
  def __call__(self, x, w):
    cin = x.shape[-1]
    styles = FullyConnected(cin, bias_init=1.0, name="affine")(w) * (1 / math.sqrt(cin))
    weight = self.param("weight", nn.initializers.normal(1.0), (1, 1, cin, self.channels))
    bias = self.param("bias", nn.initializers.zeros, (self.channels,))
    x = modulated_conv(x, weight, styles, False, dtype=jnp.dtype(self.dtype), fused=self.fused)
    return bias_act(x, bias, False, 1.0, self.conv_clamp)


class SynthesisBlock(nn.Module):
  """One resolution: (x, img, ws[B, num_conv + num_torgb, w_dim]) -> (x, img)."""
  in_channels: int  # 0 for the first block (learned constant input)
  out_channels: int
  resolution: int
  img_channels: int
  is_last: bool
  architecture: str
  use_noise: bool
  noise_mode: str
  conv_clamp: float | None
  dtype: str = "float32"
  fused: bool = False

  @property
  def num_conv(self) -> int:
    return 1 if self.in_channels == 0 else 2

  @property
  def num_torgb(self) -> int:
    return 1 if self.is_last or self.architecture == "skip" else 0

  @nn.compact
  def __call__(self, x, img, ws):
    layer = lambda name, up, gain=1.0: SynthesisLayer(
        self.out_channels, self.resolution, up, self.use_noise, self.noise_mode, self.conv_clamp, gain,
        self.dtype, self.fused, name=name)
    f = self.param("resample_filter", lambda *_: jnp.asarray(default_filter()), None)
    if self.in_channels == 0:
      const = self.param("const", nn.initializers.normal(1.0), (self.resolution, self.resolution, self.out_channels))
      x = layer("conv1", 1)(jnp.broadcast_to(const, (ws.shape[0],) + const.shape), ws[:, 0])
    elif self.architecture == "resnet":
      skip = self.param("skip", nn.initializers.normal(1.0), (1, 1, self.in_channels, self.out_channels))
      y = conv(x, skip * (1 / math.sqrt(self.in_channels)), 2, f, jnp.dtype(self.dtype)) * math.sqrt(0.5)
      x = layer("conv0", 2)(x, ws[:, 0])
      x = y + layer("conv1", 1, math.sqrt(0.5))(x, ws[:, 1])
    else:
      x = layer("conv1", 1)(layer("conv0", 2)(x, ws[:, 0]), ws[:, 1])
    if img is not None:
      fw = f.shape[0]
      img = upfirdn(img, f, 2, ((fw + 1) // 2, (fw - 2) // 2), gain=4.0)
    if self.num_torgb:
      y = ToRGB(self.img_channels, self.conv_clamp, self.dtype, self.fused, name="torgb")(x, ws[:, self.num_conv])
      img = y if img is None else img + y
    return x, img


def block_widths(resolution: int, channels: Sequence[int]) -> list[tuple[int, int, int]]:
  """[(resolution, in_channels, out_channels)] of the synthesis blocks 4, 8, .., resolution."""
  res = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
  return [(r, channels[i - 1] if i else 0, channels[i]) for i, r in enumerate(res)]


def num_ws(resolution: int) -> int:
  """Rows of ws: one per conv (1 in block 4, 2 in each later block), plus the last ToRGB's."""
  return 2 * int(math.log2(resolution)) - 2


class Synthesis(nn.Module):
  """ws[B, num_ws, w_dim] -> images float32 [B, R, R, C]."""
  resolution: int
  img_channels: int
  channels: Sequence[int]
  architecture: str
  use_noise: bool
  noise_mode: str
  conv_clamp: float | None
  dtype: str
  fused: bool

  @nn.compact
  def __call__(self, ws):
    x = img = None
    row = 0
    for r, cin, cout in block_widths(self.resolution, self.channels):
      block = SynthesisBlock(cin, cout, r, self.img_channels, r == self.resolution, self.architecture,
                             self.use_noise, self.noise_mode, self.conv_clamp, self.dtype, self.fused, name=f"b{r}")
      x, img = block(x, img, ws[:, row:row + block.num_conv + block.num_torgb])
      row += block.num_conv
    return img


class StyleGAN2ADA(nn.Module):
  """(z[B, z_dim], y[B] int) -> images float32 [B, resolution, resolution, img_channels].
  Params: {'mapping': .., 'synthesis': {'b4': .., 'b8': ..}}, NVIDIA's module names."""
  normalize_latent = True  # the mapping's normalize_2nd_moment of z (not a constructor field)
  z_dim: int
  c_dim: int
  w_dim: int
  resolution: int
  img_channels: int
  channels: Sequence[int]  # width of the blocks at 4, 8, .., resolution
  mapping_layers: int = 8
  embed_features: int = 0  # 0: w_dim (when c_dim > 0)
  layer_features: int = 0  # 0: w_dim
  mapping_lr: float = 0.01
  architecture: str = "skip"
  conv_clamp: float | None = None
  use_noise: bool = True
  truncation_psi: float = 1.0
  truncation_cutoff: int | None = None
  noise_mode: str = "const"
  dtype: str = "float32"
  fused_modconv: bool = False

  @property
  def num_classes(self) -> int:
    return max(self.c_dim, 1)

  def setup(self):
    self.validate()
    self.mapping = Mapping(self.z_dim, self.c_dim, self.w_dim, self.mapping_layers, self.embed_features or self.w_dim,
                           self.layer_features or self.w_dim, self.mapping_lr)
    self.synthesis = Synthesis(self.resolution, self.img_channels, tuple(self.channels), self.architecture,
                               self.use_noise, self.noise_mode, self.conv_clamp, self.dtype, self.fused_modconv)

  def validate(self):
    """Raises ValueError naming the first field with an unsupported value."""
    log2 = math.log2(self.resolution) if self.resolution > 0 else 0
    checks = [
        ("resolution", self.resolution >= 4 and log2 == int(log2), "a power of two >= 4"),
        ("channels", len(self.channels) == int(log2) - 1, f"{int(log2) - 1} widths (blocks 4..{self.resolution})"),
        ("architecture", self.architecture in ARCHITECTURES, " or ".join(ARCHITECTURES)),
        ("noise_mode", self.noise_mode in NOISE_MODES, " or ".join(NOISE_MODES)),
        ("dtype", self.dtype in DTYPES, " or ".join(DTYPES)),
        ("z_dim", self.z_dim > 0, "> 0 (a latent to play in)"),
        ("truncation_psi", 0 <= self.truncation_psi <= 1, "in [0, 1]"),
        ("truncation_cutoff", self.truncation_cutoff is None or self.truncation_cutoff >= 0, "None or >= 0"),
    ]
    for field, ok, valid in checks:
      if not ok:
        raise ValueError(f"stylegan2_ada: {field}={getattr(self, field)!r} is unsupported; valid: {valid}")

  def map_w(self, z, y):
    """z[B, z_dim], y[B] -> w[B, w_dim] (untruncated): the W space."""
    return self.mapping(z, y)

  def w_avg(self):
    """The average w [w_dim] NVIDIA tracked in training (zeros for a pickle without one)."""
    return self.mapping.variables["params"]["w_avg"]

  def ws(self, w):
    """w[B, w_dim] -> the truncated ws[B, num_ws, w_dim] the synthesis reads."""
    return truncate(w, self.w_avg(), num_ws(self.resolution), self.truncation_psi, self.truncation_cutoff)

  def synthesize_w(self, w):
    """w[B, w_dim] -> images [B, R, R, C]: truncation, then synthesis."""
    return self.synthesis(self.ws(w))

  def __call__(self, z, y):
    return self.synthesize_w(self.map_w(z, y))
