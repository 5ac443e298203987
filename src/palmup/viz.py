"""Pictures: image grids as PNG and animated GIFs (uint8 NHWC in, files out)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image


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


def save_png(path: str | Path, image: np.ndarray, scale: int = 1):
  """Writes uint8 [H, W, 3] as PNG, nearest-upscaled by `scale`."""
  img = Image.fromarray(np.asarray(image))
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  img.save(path)


def save_gif(path: str | Path, frames: Sequence[np.ndarray], scale: int = 1, ms_per_frame: int = 120):
  """Writes uint8 [H, W, 3] frames as a looping animated GIF."""
  imgs = [Image.fromarray(np.asarray(f)) for f in frames]
  if scale > 1:
    imgs = [i.resize((i.width * scale, i.height * scale), Image.NEAREST) for i in imgs]
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=ms_per_frame, loop=0)
