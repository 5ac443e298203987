"""CIFAR-10 / CIFAR-100 through tfds' data_source (array_record), as `tfds build ...
--file_format=array_record` prepares them: small synthetic copies built offline by tfds' own CIFAR
builders (tests/tfds_fixtures.py), the loader, the missing-dataset error, `palmup evaluate` on them."""
import json
import socket
import time

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.image_classification import cifar

import tfds_fixtures
from conftest import load_config
from palmup import evaluate
from palmup.data import datasets
from palmup.errors import UserError
from palmup.learner import Learner, save_encoder

SIZES = {"cifar10": (("train", 300), ("test", 200)), "cifar100": (("train", 500), ("test", 200))}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


@pytest.fixture
def no_network(monkeypatch):
  """Any attempt to open a network connection fails the test."""
  def refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args}")
  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)
  monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
  """A data_dir holding cifar10 and cifar100, prepared offline; and the arrays they were built from."""
  data_dir = tmp_path_factory.mktemp("tfds")
  arrays = {name: tfds_fixtures.prepare(name, data_dir, SIZES[name]) for name in SIZES}
  return data_dir, arrays


def test_prepared_like_tfds_build(cifar_dir, no_network):
  data_dir, _ = cifar_dir
  for name, builder_cls in (("cifar10", cifar.Cifar10), ("cifar100", cifar.Cifar100)):
    builder = tfds.builder(name, data_dir=str(data_dir))
    assert type(builder) is builder_cls and builder.is_prepared() and str(builder.version) == "3.0.2"
    assert builder.info.file_format.value == "array_record" and builder.info.module_name == cifar.__name__
    assert {s: builder.info.splits[s].num_examples for s in ("train", "test")} == dict(SIZES[name])
    assert builder.info.features.to_json() == builder_cls(data_dir=str(data_dir / "code")).info.features.to_json()
  record = tfds.data_source("cifar100", split="test", data_dir=str(data_dir), download=False, try_gcs=False)[0]
  assert set(record) == {"id", "image", "label", "coarse_label"} and record["id"].startswith(b"test_")
  assert record["image"].shape == (32, 32, 3) and record["coarse_label"] == record["label"] // 5


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_load_reads_every_image_with_its_label(cifar_dir, name, monkeypatch, no_network):
  data_dir, arrays = cifar_dir
  monkeypatch.setattr(datasets, "TFDS_READ_BATCH", 64)  # several batches and a remainder
  for split, n in SIZES[name]:
    ds = datasets.load(name, split, str(data_dir))
    assert ds.images.shape == (n, 32, 32, 3) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int32 and ds.num_classes == NUM_CLASSES[name]
    assert np.array_equal(np.bincount(ds.labels, minlength=ds.num_classes), np.full(ds.num_classes, n // ds.num_classes))
    # the same (image, label) pairs as generated, in tfds' shuffled order, and in the order of reading one by one
    pair = lambda images, labels: sorted(im.tobytes() + bytes([lab]) for im, lab in zip(images, labels))
    assert pair(ds.images, ds.labels) == pair(arrays[name][split]["image"], arrays[name][split]["label"])
    source = tfds.data_source(name, split=split, data_dir=str(data_dir), download=False, try_gcs=False)
    assert np.array_equal(ds.images, np.stack([source[i]["image"] for i in range(n)]))
    assert np.array_equal(ds.labels, [source[i]["label"] for i in range(n)])
    assert not np.array_equal(ds.labels, arrays[name][split]["label"])  # tfds' shuffle did reorder them


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_unprepared_cifar_fails_at_once_without_network(tmp_path, name, no_network):
  start = time.time()
  with pytest.raises(UserError, match=f"tfds build {name} --data_dir={tmp_path} --file_format=array_record"):
    datasets.load(name, "train", str(tmp_path))
  assert time.time() - start < 5


def test_evaluate_fails_before_writing_when_a_dataset_is_missing(tmp_path, encoders, no_network):
  empty = tmp_path / "empty"
  empty.mkdir()
  config = load_config("evaluate_cifar", encoders=str(encoders[0]), data_dir=str(empty))
  start = time.time()
  with pytest.raises(UserError, match="tfds build cifar10"):
    evaluate.main(config, tmp_path / "eval")
  assert time.time() - start < 10 and not (tmp_path / "eval").exists()


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
  """Two encoder directories (as `palmup pretrain` writes them) with tiny random conv encoders: rgb32
  takes RGB 32x32 (CIFAR as it is), grey16 grey 16x16 (CIFAR resized, luma)."""
  root = tmp_path_factory.mktemp("encoders")
  learner = Learner(ml_collections.ConfigDict(dict(
      encoder=dict(name="conv", widths=(8, 16), features=16, conv_grad="auto", stem="cifar", width=8), head_hidden=16, head_out=8,
      temperature=0.1, lr=1e-3, weight_decay=0.0, pair_offset=1, augment="none", dtype="float32")), 10)
  for name, obs_shape in (("rgb32", (32, 32, 3)), ("grey16", (16, 16, 1))):
    save_encoder(root / name / "encoder", learner, learner.init(jax.random.PRNGKey(0), obs_shape).params, obs_shape)
  return root / "rgb32", root / "grey16"


def test_evaluate_cifar_config():
  config, base = load_config("evaluate_cifar"), load_config("evaluate")
  assert config.datasets == "cifar10,cifar100" and config.data_dir is None
  assert config.probe.to_dict() == base.probe.to_dict() and config.fine_tune.to_dict() == base.fine_tune.to_dict()


@pytest.mark.slow  # about 80 s; `make test-slow` (the CIFAR tfds path of `palmup evaluate`)
def test_evaluate_on_cifar_rgb_and_grey_encoders(tmp_path, cifar_dir, encoders, no_network):
  """An RGB 32x32 encoder and a grey 16x16 one (resized, luma). The synthetic CIFAR-10's classes 2j
  and 2j+1 differ only in chroma, so grey pixels tell only the five pairs apart: ~50% vs ~100%."""
  data_dir, _ = cifar_dir
  config = load_config("evaluate_cifar", **{
      "encoders": ",".join(map(str, encoders)), "data_dir": str(data_dir), "probe.train_examples": 0,
      "probe.random_seeds": 1, "probe.logistic.steps": 30, "probe.logistic.l2_grid": (1e-3,),
      "probe.ridge.l2_grid": (10.0,), "probe.few_shot.shots": (1, 5), "probe.few_shot.seeds": 1})
  evaluate.main(config, tmp_path / "eval")
  results = json.loads((tmp_path / "eval" / "evaluate.json").read_text())
  assert set(results) == {"cifar10", "cifar100"} and all(set(r) == {"rgb32", "grey16"} for r in results.values())
  for dataset, by_encoder in results.items():
    chance = 1 / NUM_CLASSES[dataset]
    for name, r in by_encoder.items():
      assert r["dataset"] == dataset and len(r["random_init"]) == 1 and set(r["pretrained"]["few_shot"]) == {"1", "5"}
      for probe in (r["pretrained"], r["random_init"][0], r["pixels"]):
        assert 3 * chance < probe["test_accuracy"] <= 1 and 3 * chance < probe["ridge"]["test_accuracy"] <= 1
  rgb, grey = results["cifar10"]["rgb32"]["pixels"], results["cifar10"]["grey16"]["pixels"]
  assert rgb["test_accuracy"] > 0.95 and rgb["ridge"]["test_accuracy"] > 0.8 and rgb["few_shot"]["5"]["mean"] > 0.9
  for probe in (grey, results["cifar10"]["grey16"]["pretrained"], results["cifar10"]["grey16"]["random_init"][0]):
    assert 0.35 < probe["test_accuracy"] < 0.7 and probe["ridge"]["test_accuracy"] < 0.7  # luma only: pairs merge
  assert results["cifar100"]["rgb32"]["pixels"]["test_accuracy"] > 0.9
  assert results["cifar100"]["grey16"]["pixels"]["test_accuracy"] > 0.5  # the 100 patterns differ in luma too
  table = (tmp_path / "eval" / "results.md").read_text()
  for dataset in results:
    assert f"| {dataset} | rgb32 |" in table and f"| {dataset} | raw pixels (16x16x1) |" in table
