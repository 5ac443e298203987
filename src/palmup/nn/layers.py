"""Equalised-learning-rate layers shared by the generator and the discriminator (Linen).

Weights are stored as N(0, 1) and scaled at run time by lr_mul / sqrt(fan_in) (StyleGAN's
equalised learning rate), so Adam's step size is the same for every layer.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from palmup.nn.conv import conv2d


class Dense(nn.Module):
  """x[..., Din] -> [..., features]."""
  features: int
  bias_init: float = 0.0
  lr_mul: float = 1.0

  @nn.compact
  def __call__(self, x):
    w = self.param("kernel", lambda k, s: jax.random.normal(k, s) / self.lr_mul,
                   (x.shape[-1], self.features))
    b = self.param("bias", lambda k, s: jnp.full(s, self.bias_init / self.lr_mul), (self.features,))
    return x @ (w * (self.lr_mul / jnp.sqrt(x.shape[-1]))) + b * self.lr_mul


class Conv(nn.Module):
  """x[B, H, W, Cin] -> [B, H/stride, W/stride, features] (SAME padding)."""
  features: int
  kernel_size: int = 3
  stride: int = 1
  use_bias: bool = True
  grad: str = "xla"  # conv2d's gradient rule: "xla", "taps" or "im2col"

  @nn.compact
  def __call__(self, x):
    k, cin = self.kernel_size, x.shape[-1]
    w = self.param("kernel", nn.initializers.normal(1.0), (k, k, cin, self.features))
    y = conv2d(x, w / jnp.sqrt(k * k * cin), self.stride, grad=self.grad)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


class ModulatedConv(nn.Module):
  """StyleGAN2 modulated convolution, computed with a shared weight (no per-sample kernels).

  x[B, H, W, Cin] is scaled per sample by styles s = affine(w)[B, Cin], convolved with the
  shared kernel, then (if demodulate) divided per output channel by ||W * s||, which equals
  StyleGAN2's weight demodulation exactly.
  """
  features: int
  kernel_size: int = 3
  demodulate: bool = True
  grad: str = "xla"

  @nn.compact
  def __call__(self, x, w_latent):
    k, cin = self.kernel_size, x.shape[-1]
    styles = Dense(cin, bias_init=1.0, name="affine")(w_latent)  # [B, Cin]
    kernel = self.param("kernel", nn.initializers.normal(1.0), (k, k, cin, self.features))
    kernel = kernel / jnp.sqrt(k * k * cin)
    y = conv2d(x * styles[:, None, None, :], kernel, 1, grad=self.grad)
    if self.demodulate:
      sq = jnp.sum(jnp.square(kernel), axis=(0, 1))  # [Cin, Cout]
      y = y * jax.lax.rsqrt(jnp.square(styles) @ sq + 1e-8)[:, None, None, :]
    return y + self.param("bias", nn.initializers.zeros, (self.features,))


def lrelu(x):
  """StyleGAN's leaky ReLU with gain sqrt(2)."""
  return nn.leaky_relu(x, 0.2) * jnp.sqrt(2.0)


def upsample2x(x):
  """Nearest-neighbour 2x upsampling of [B, H, W, C]."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample2x(x):
  """2x2 average pooling of [B, H, W, C] (H, W even)."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
