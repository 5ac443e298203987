"""Small CIFAR-10 / CIFAR-100 datasets prepared offline in exactly the format `tfds build cifar10
--file_format=array_record` writes: tfds' own Cifar10 / Cifar100 builders (same name, version
3.0.2, features, splits; cifar100 with label and coarse_label), with only the example generation
replaced by synthetic images, then tfds' own download_and_prepare (serialisation, shuffling,
array_record shards, dataset_info.json, features.json). `tfds.data_source("cifar10",
data_dir=...)` then opens them with the registered builder, as it would the real ones.

Without TensorFlow, tfds cannot build the real CIFAR (its builder reads the archive with
tf.io.gfile and encodes numpy images with tf.image.encode_png). Here nothing is read, and each
image is handed to the Image feature as PNG bytes encoded with PIL, which tfds stores verbatim
(the PNG bytes differ from TensorFlow's encoder; the decoded pixels are the same).

Synthetic classes: each has a mean image, a random 8x8 grid of colours in 4x4-pixel blocks (so the
class means span many dimensions, as real classes do; with one flat colour per class they would
lie in a 3-d space and one-vs-rest ridge regression could not separate them), plus pixel noise.
cifar10: classes 2j and 2j+1 share a grey pattern and differ only by a constant chroma of zero
luma, so a grey (luma) view tells the five pairs apart but not the two classes in a pair (at most
~50% top-1), while RGB separates all ten. cifar100: one random colour pattern per fine class;
coarse_label = label // 5.
"""
from __future__ import annotations

import io

import numpy as np
import PIL.Image
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import cifar

LUMA = np.asarray([0.299, 0.587, 0.114])
CHROMA = np.asarray([50.0, -50.0 * LUMA[0] / LUMA[1], 0.0])  # luma(CHROMA) == 0


def class_means(name: str) -> np.ndarray:
  """float [num_classes, 32, 32, 3]: the mean image of each synthetic class."""
  rng = np.random.default_rng({"cifar10": 10, "cifar100": 100}[name])
  if name == "cifar10":
    grey = np.repeat(rng.uniform(80.0, 175.0, (5, 8, 8, 1)), 2, axis=0)  # one luma pattern per pair; +- CHROMA
    # keeps R, G, B in [30, 225], 3.75 noise stds from clipping (which would change the luma)
    grids = grey + np.tile([1.0, -1.0], 5)[:, None, None, None] * CHROMA
  else:
    grids = rng.uniform(30.0, 225.0, (100, 8, 8, 3))
  return np.repeat(np.repeat(grids, 4, axis=1), 4, axis=2)


def synthetic_split(name: str, n: int, seed: int, noise: float = 8.0) -> dict[str, np.ndarray]:
  """{"image": uint8 [n, 32, 32, 3], "label": int64 [n] (balanced: i % num_classes)[, "coarse_label"]}."""
  means = class_means(name)
  labels = np.arange(n) % len(means)
  images = means[labels] + np.random.default_rng(seed).normal(0.0, noise, (n, 32, 32, 3))
  out = {"image": np.clip(np.round(images), 0, 255).astype(np.uint8), "label": labels}
  if name == "cifar100":
    out["coarse_label"] = labels // 5
  return out


class _Synthetic:
  """Overrides only where the examples come from: `arrays` {split: synthetic_split(...)}."""

  def __init__(self, *, arrays: dict[str, dict[str, np.ndarray]], **kwargs):
    self._arrays = arrays
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {split: self._generate_examples(f"{split}_", arrays) for split, arrays in self._arrays.items()}

  def _generate_examples(self, split_prefix, arrays):
    """As tfds' CIFAR: key = index in generation order, id = "<split>_<index:05d>"."""
    for index, image in enumerate(arrays["image"]):
      record = {key: int(arrays[key][index]) for key in self._cifar_info.label_keys}
      record["id"] = f"{split_prefix}{index:05d}"
      record["image"] = _png(image)
      yield index, record


class SyntheticCifar10(_Synthetic, cifar.Cifar10, skip_registration=True):
  name = "cifar10"
  __module__ = cifar.__name__  # dataset_info.json's moduleName, as the real build writes it


class SyntheticCifar100(_Synthetic, cifar.Cifar100, skip_registration=True):
  name = "cifar100"
  __module__ = cifar.__name__


BUILDERS = {"cifar10": SyntheticCifar10, "cifar100": SyntheticCifar100}


def _png(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  PIL.Image.fromarray(image).save(buf, format="PNG")
  return buf.getvalue()


def prepare(name: str, data_dir, sizes=(("train", 300), ("test", 100)), seed: int = 0) -> dict:
  """Builds `name` (cifar10 or cifar100) in data_dir as array_record, offline; returns the arrays
  per split, in generation order (tfds' shuffle reorders them on disk)."""
  arrays = {split: synthetic_split(name, n, seed + i) for i, (split, n) in enumerate(sizes)}
  builder = BUILDERS[name](arrays=arrays, data_dir=str(data_dir), file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return arrays
