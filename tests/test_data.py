"""Built-in offline datasets, the tfds path (mocked, never downloading), batching, transforms."""
import time

import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from palmup import data
from palmup.data import transforms
from palmup.errors import UserError


@pytest.mark.parametrize("name,sizes,shape", [
    ("fashion_mnist", (60000, 10000), (28, 28, 1)),
    ("mnist5k", (4000, 1000), (28, 28, 1)),
    ("digits", (1438, 359), (8, 8, 1)),
])
def test_builtin_splits(name, sizes, shape):
  train, test = data.load(name, "train"), data.load(name, "test")
  assert (len(train), len(test)) == sizes
  for ds in (train, test):
    assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == shape
    assert ds.num_classes == 10 and set(np.unique(ds.labels)) == set(range(10))
    assert ds.images.max() == 255  # full uint8 range, not 0..16 or 0..1
  # train and test are disjoint images
  train_rows = {r.tobytes() for r in train.images[:2000]}
  assert sum(r.tobytes() in train_rows for r in test.images[:500]) < 5


def test_mnist5k_labels_match_images():
  """Class means differ: a 1 has far less ink than a 0 (catches a label/pixel column mix-up)."""
  ds = data.load("mnist5k", "train")
  ink = [ds.images[ds.labels == c].mean() for c in range(10)]
  assert ink[1] < 0.6 * ink[0]


def test_unknown_split_named():
  with pytest.raises(UserError, match="'validation'.*train, test"):
    data.load("digits", "validation")


def test_tfds_data_source_path_with_mock(tmp_path, monkeypatch):
  # tfds 4.9.10's mock_data sets __getitems__ on a MagicMock as an unbound partial, so a batched read
  # passes the keys as `self` (TypeError); the loader reads in batches, so the mock is mended here.
  from tensorflow_datasets.testing import mocking
  monkeypatch.setattr(mocking, "_getitems", lambda *args, generator, serialized=False: [
      generator[k] for k in args[-1]])
  with tfds.testing.mock_data(num_examples=9, data_dir=str(tmp_path)):
    ds = data.load("mnist", "train")
  assert ds.images.shape == (9, 28, 28, 1) and ds.images.dtype == np.uint8 and ds.num_classes == 10


def test_missing_tfds_dataset_fails_fast_with_instructions(tmp_path):
  start = time.time()
  with pytest.raises(UserError, match="tfds build cifar10"):
    data.load("cifar10", "train", data_dir=str(tmp_path))
  assert time.time() - start < 10  # no network retries


def test_batches_deterministic_and_resumable():
  ds = data.load("digits", "test")
  a = [l for _, l in data.batches(ds, 50, seed=3, epochs=2)]
  b = [l for _, l in data.batches(ds, 50, seed=3, epochs=2)]
  assert len(a) == 2 * (359 // 50)
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  second = [l for _, l in data.batches(ds, 50, seed=3, epochs=1, start_epoch=1)]
  assert all(np.array_equal(x, y) for x, y in zip(a[7:], second))
  assert not np.array_equal(a[0], a[7])  # epochs are shuffled differently
  with pytest.raises(ValueError, match="batch_size"):
    next(data.batches(ds, 1000))


def test_transforms_roundtrip_resize_channels():
  x = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
  np.testing.assert_array_equal(transforms.to_uint8(transforms.to_float(x)), x)
  y = transforms.prepare(x, 16, 3)
  assert y.shape == (2, 16, 16, 3) and float(jnp.abs(y).max()) <= 1.0
  np.testing.assert_allclose(y[..., 0], y[..., 2])
  grey = transforms.set_channels(y, 1)
  np.testing.assert_allclose(grey[..., 0], y[..., 0], atol=1e-5)
  with pytest.raises(ValueError, match="4 channels"):
    transforms.set_channels(jnp.zeros((1, 2, 2, 4)), 3)
