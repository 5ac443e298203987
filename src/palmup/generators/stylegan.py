"""A small class-conditional StyleGAN2-style generator and a projection discriminator.

Generator: z[B, d] and y[B] -> mapping MLP -> style w[B, w_dim] -> synthesis network of
modulated 3x3 convolutions from a learned 4x4 constant up to `resolution`, with StyleGAN2's
skip architecture (a 1x1 toRGB at every resolution, summed after upsampling). There are no
per-pixel noise inputs, so decoding is a deterministic function of (z, y), as the latent
environment requires. Output: images[B, R, R, channels] in [-1, 1].

Discriminator: residual-free conv stack with minibatch-stddev and a projection head
(Miyato & Koyama, 2018): D(x, y) = psi(h) + <embed(y), h>.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from palmup.nn.layers import Conv, Dense, ModulatedConv, downsample2x, lrelu, upsample2x


def _normalize(x, axis=-1):
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + 1e-8)


def _block_channels(channels: Sequence[int], resolution: int) -> list[tuple[int, int]]:
  """[(res, ch)] from 4x4 up to `resolution`; channels[i] is the width at 4 * 2**i."""
  n = resolution.bit_length() - 3  # log2(res) - 2 blocks after 4x4
  if resolution < 4 or resolution & (resolution - 1) or len(channels) != n + 1:
    raise ValueError(f"resolution must be a power of two >= 4 with len(channels) == log2(res) - 1;"
                     f" got resolution={resolution}, channels={list(channels)}")
  return [(4 * 2**i, c) for i, c in enumerate(channels)]


def _conv_grad(fast_weight_grad: bool) -> str:
  """The conv gradient rule (palmup.nn.conv) of the GAN's `fast_weight_grad` switch."""
  return "taps" if fast_weight_grad else "xla"


class StyleGenerator(nn.Module):
  """(z[B, latent_dim], y[B] int) -> images[B, resolution, resolution, out_channels] in [-1, 1]."""
  num_classes: int
  resolution: int = 32
  out_channels: int = 1
  channels: Sequence[int] = (256, 128, 64, 32)
  w_dim: int = 128
  mapping_layers: int = 2
  normalize_latent: bool = True
  fast_weight_grad: bool = False

  def mapping(self, z, y):
    embed = nn.Embed(self.num_classes, self.w_dim, embedding_init=nn.initializers.normal(1.0),
                     name="class_embed")(y)
    h = jnp.concatenate([_normalize(z) if self.normalize_latent else z, _normalize(embed)], -1)
    for i in range(self.mapping_layers):
      h = lrelu(Dense(self.w_dim, lr_mul=0.01, name=f"mapping_{i}")(h))
    return h

  @nn.compact
  def __call__(self, z, y):
    w = self.mapping(z, y)
    blocks = _block_channels(self.channels, self.resolution)
    const = self.param("const", nn.initializers.normal(1.0), (4, 4, blocks[0][1]))
    x = jnp.broadcast_to(const, (z.shape[0],) + const.shape)
    rgb = None
    for res, ch in blocks:
      if res > 4:
        x = upsample2x(x)
      x = lrelu(ModulatedConv(ch, grad=_conv_grad(self.fast_weight_grad), name=f"conv{res}_0")(x, w))
      if res > 4:
        x = lrelu(ModulatedConv(ch, grad=_conv_grad(self.fast_weight_grad), name=f"conv{res}_1")(x, w))
      out = ModulatedConv(self.out_channels, kernel_size=1, demodulate=False, name=f"torgb{res}")(x, w)
      rgb = out if rgb is None else upsample2x(rgb) + out
    return jnp.tanh(rgb)


class ProjectionDiscriminator(nn.Module):
  """(images[B, R, R, C] in [-1, 1], y[B] int) -> logits[B]."""
  num_classes: int
  channels: Sequence[int] = (256, 128, 64, 32)
  mbstd_group: int = 4
  fast_weight_grad: bool = False

  @nn.compact
  def __call__(self, x, y):
    blocks = _block_channels(self.channels, x.shape[1])
    conv = lambda ch, name, k=3: Conv(ch, kernel_size=k, grad=_conv_grad(self.fast_weight_grad),
                                      name=name)
    h = lrelu(conv(blocks[-1][1], "fromrgb", k=1)(x))
    for (res, ch), (_, ch_next) in zip(blocks[:0:-1], blocks[-2::-1]):
      h = lrelu(conv(ch, f"conv{res}")(h))
      h = downsample2x(lrelu(conv(ch_next, f"down{res}")(h)))
    h = _minibatch_stddev(h, self.mbstd_group)
    h = lrelu(conv(blocks[0][1], "conv4")(h))
    h = lrelu(Dense(blocks[0][1], name="fc")(h.reshape(h.shape[0], -1)))
    out = Dense(1, name="out")(h)[:, 0]
    embed = nn.Embed(self.num_classes, h.shape[-1], embedding_init=nn.initializers.normal(1.0),
                     name="class_embed")(y)
    return out + jnp.sum(embed * h, axis=-1) / jnp.sqrt(h.shape[-1])


def _minibatch_stddev(h, group):
  """Append the std over groups of `group` samples as one extra channel (StyleGAN)."""
  b, hh, ww, c = h.shape
  g = group if b % group == 0 else 1
  s = jnp.std(h.reshape(g, b // g, hh, ww, c), axis=0).mean(axis=(1, 2, 3))  # [b // g]
  s = jnp.broadcast_to(jnp.tile(s, g)[:, None, None, None], (b, hh, ww, 1))
  return jnp.concatenate([h, s], axis=-1)
