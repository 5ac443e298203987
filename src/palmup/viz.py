"""Pictures: image grids as PNG and animated GIFs (uint8 NHWC in, files out)."""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image

from palmup import workdirs


def pyplot():
  """matplotlib.pyplot on the Agg backend (no display needed)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def grid(images: np.ndarray, pad: int = 1) -> np.ndarray:
  """uint8 [rows, cols, H, W, C] -> one uint8 image [rows*(H+pad)+pad, cols*(W+pad)+pad, 3]."""
  images = np.asarray(images)
  rows, cols, h, w, c = images.shape
  if c == 1:
    images = np.repeat(images, 3, axis=-1)
  out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
  for r in range(rows):
    for k in range(cols):
      out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = images[r, k]
  return out


def _write(path, img: Image.Image, **kwargs):
  """Saves a PIL image to a run path (local or cloud: palmup.workdirs.path), its format from the suffix."""
  path = workdirs.path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  buffer = io.BytesIO()
  img.save(buffer, format=path.suffix.lstrip(".").upper(), **kwargs)
  path.write_bytes(buffer.getvalue())


def save_png(path, image: np.ndarray, scale: int = 1):
  """Writes uint8 [H, W, 3] as PNG, nearest-upscaled by `scale`."""
  img = Image.fromarray(np.asarray(image))
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  _write(path, img)


def save_gif(path, frames: Sequence[np.ndarray], scale: int = 1, ms_per_frame: int = 120):
  """Writes uint8 [H, W, 3] frames as a looping animated GIF."""
  imgs = [Image.fromarray(np.asarray(f)) for f in frames]
  if scale > 1:
    imgs = [i.resize((i.width * scale, i.height * scale), Image.NEAREST) for i in imgs]
  _write(path, imgs[0], save_all=True, append_images=imgs[1:], duration=ms_per_frame, loop=0)
