"""Image conversions, in one place: dtype, value range, size and channels.

Conventions: uint8 images are NHWC in [0, 255]; float images are NHWC in [-1, 1].
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def to_float(images) -> jax.Array:
  """uint8 [B, H, W, C] in [0, 255] -> float32 in [-1, 1]."""
  return jnp.asarray(images, jnp.float32) / 127.5 - 1.0


def to_uint8(images) -> jax.Array:
  """float [B, H, W, C] in [-1, 1] -> uint8 in [0, 255] (clipped, rounded)."""
  return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def resize(images, size: int) -> jax.Array:
  """Bilinear (antialiased when shrinking) resize of float [B, H, W, C] to [B, size, size, C]."""
  b, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  return jax.image.resize(images, (b, size, size, c), method="linear", antialias=True)


def set_channels(images, channels: int):
  """Grey <-> RGB: [B, H, W, 1] -> [B, H, W, 3] by repetition, [.., 3] -> [.., 1] by luma."""
  c = images.shape[-1]
  if c == channels:
    return images
  if c == 1 and channels == 3:
    return jnp.repeat(images, 3, axis=-1)
  if c == 3 and channels == 1:
    luma = jnp.asarray([0.299, 0.587, 0.114], jnp.float32)
    out = jnp.tensordot(jnp.asarray(images, jnp.float32), luma, axes=[[-1], [0]])[..., None]
    return out.astype(images.dtype) if images.dtype != jnp.uint8 else jnp.round(out).astype(jnp.uint8)
  raise ValueError(f"cannot convert {c} channels to {channels}; supported: 1 <-> 3")


def prepare(images, size: int, channels: int) -> jax.Array:
  """uint8 or float images of any size/channels -> float32 [B, size, size, channels] in [-1, 1]."""
  x = to_float(images) if images.dtype == jnp.uint8 else jnp.asarray(images, jnp.float32)
  return set_channels(resize(x, size), channels)


def prepare_all(images: np.ndarray, obs_shape, batch_size: int = 1000) -> np.ndarray:
  """A whole uint8 image array [N, h, w, c] -> uint8 [N, *obs_shape] (resized, channels converted),
  in batches on the default device."""
  fn = jax.jit(lambda x: to_uint8(prepare(x, obs_shape[0], obs_shape[2])))
  return np.concatenate([np.asarray(fn(images[i:i + batch_size])) for i in range(0, len(images), batch_size)])
