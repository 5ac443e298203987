"""SimCLR-style image augmentation in JAX, per image, for float images [B, H, W, C] in [-1, 1].

Random resized crop (scale in [crop_min, 1], aspect 3/4..4/3, bilinear back to H x W), horizontal
flip, and colour jitter (brightness and contrast; saturation too for RGB). Used on the temporal
pairs (`learner.augment=add`, the main config's default, or `only`) and by the static baseline.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _crop(key, image, crop_min: float):
  h, w, _ = image.shape
  k_scale, k_ratio, k_y, k_x = jax.random.split(key, 4)
  area = jax.random.uniform(k_scale, (), minval=crop_min, maxval=1.0)
  ratio = jnp.exp(jax.random.uniform(k_ratio, (), minval=jnp.log(3 / 4), maxval=jnp.log(4 / 3)))
  ch = jnp.clip(jnp.sqrt(area / ratio), 0.0, 1.0)  # crop size as a fraction of the image
  cw = jnp.clip(jnp.sqrt(area * ratio), 0.0, 1.0)
  y0 = jax.random.uniform(k_y, ()) * (1.0 - ch)
  x0 = jax.random.uniform(k_x, ()) * (1.0 - cw)
  scale = jnp.array([1.0 / ch, 1.0 / cw])
  translation = -jnp.array([y0 * h, x0 * w]) * scale
  return jax.image.scale_and_translate(image, image.shape, (0, 1), scale, translation, "linear")


def _jitter(key, image, strength: float):
  k_b, k_c, k_s = jax.random.split(key, 3)
  u = lambda k: jax.random.uniform(k, (), minval=1 - strength, maxval=1 + strength)
  x = (image + 1.0) / 2.0 * u(k_b)  # brightness
  mean = jnp.mean(x)
  x = (x - mean) * u(k_c) + mean  # contrast
  if image.shape[-1] == 3:
    grey = jnp.mean(x, axis=-1, keepdims=True)
    x = (x - grey) * u(k_s) + grey  # saturation
  return jnp.clip(x, 0.0, 1.0) * 2.0 - 1.0


def augment_one(key, image, crop_min: float = 0.3, jitter: float = 0.4):
  """One random view of one image [H, W, C]."""
  k_crop, k_flip, k_jit = jax.random.split(key, 3)
  x = _crop(k_crop, image, crop_min)
  x = jnp.where(jax.random.bernoulli(k_flip), x[:, ::-1], x)
  return _jitter(k_jit, x, jitter) if jitter > 0 else x


def augment(key, images, crop_min: float = 0.3, jitter: float = 0.4):
  """Independent random views of images [B, H, W, C]."""
  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(augment_one, (0, 0, None, None))(keys, images, crop_min, jitter)
