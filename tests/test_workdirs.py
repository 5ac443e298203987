"""Run paths on cloud storage: gs:// paths go through etils.epath and its fsspec backend exactly as on a
pod, with the Google Cloud Storage filesystem replaced by fsspec's in-memory one (no network)."""
import io
import json

import fsspec
import ml_collections
import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from PIL import Image

from palmup import checkpoints, viz, workdirs
from palmup.errors import UserError
from palmup.workdirs import read_json


class FakeGCS(MemoryFileSystem):
  """gcsfs's protocols on an in-memory store."""
  protocol = ("gs", "gcs")
  store = {}
  pseudo_dirs = [""]


@pytest.fixture
def gcs():
  for name in FakeGCS.protocol:
    fsspec.register_implementation(name, FakeGCS, clobber=True)
  yield FakeGCS.store
  FakeGCS.store.clear()


def test_a_cloud_workdir_stays_a_uri_and_a_local_one_becomes_absolute(tmp_path, monkeypatch):
  assert str(workdirs.path("gs://bucket/runs/a")) == "gs://bucket/runs/a"
  monkeypatch.chdir(tmp_path)
  assert workdirs.path("runs/a") == tmp_path / "runs" / "a"


def test_every_workdir_writer_works_on_a_non_local_filesystem(gcs, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # nothing may land on the local disk
  run = workdirs.create("gs://bucket/a")
  assert str(run) == "gs://bucket/a" and run.is_dir()
  workdirs.write_config(run, ml_collections.ConfigDict({"seed": 3}))
  assert read_json(run / "config.json", "config", "") == {"seed": 3}

  writer = workdirs.MetricWriter(run, resume_step=0, tensorboard=False)
  for step in (1, 2, 3):
    writer.write(step, {"loss": step / 10})
  writer.close()
  writer = workdirs.MetricWriter(run, resume_step=2, tensorboard=False)  # a resume from step 2
  writer.write(3, {"loss": 0.5})
  assert [(r["step"], r["loss"]) for r in workdirs.read_metrics(run)] == [(1, 0.1), (2, 0.2), (3, 0.5)]
  writer.write(4, {"loss": 0.4}, flush=False)  # many rows at once: written at close
  assert len(workdirs.read_metrics(run)) == 3
  writer.close()
  assert [r["step"] for r in workdirs.read_metrics(run)] == [1, 2, 3, 4]

  image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
  viz.save_png(run / "strips" / "x.png", image, scale=2)
  back = np.asarray(Image.open(io.BytesIO((run / "strips" / "x.png").read_bytes())))
  np.testing.assert_array_equal(back, image.repeat(2, 0).repeat(2, 1))

  (run / "probe.json").write_text("{not json")
  with pytest.raises(UserError, match="probe.json is unreadable or corrupt"):
    read_json(run / "probe.json", "probe", "rerun")

  aside = checkpoints.move_aside(run)  # what train.restart does with a run that cannot be resumed
  assert str(aside).startswith("gs://bucket/a/previous_")
  assert sorted(p.name for p in aside.iterdir()) == ["config.json", "metrics.jsonl", "probe.json", "strips"]
  assert json.loads((aside / "config.json").read_text()) == {"seed": 3}
  assert not any(tmp_path.iterdir())
  assert all(k.startswith("gs://bucket/a/") for k in gcs)


def test_a_workdir_that_is_a_file_is_one_clear_error(gcs):
  workdirs.path("gs://bucket/file").write_text("x")
  with pytest.raises(UserError, match="gs://bucket/file is an existing file"):
    workdirs.create("gs://bucket/file")
