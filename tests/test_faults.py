"""Faults as a user meets them, through the real CLI in subprocesses (tests/fault_run.py injects
faults into checkpoint saving): SIGKILL at random moments and mid-save, SIGTERM mid-save, a full
disk, damaged and incompatible checkpoints. Each asserts the exact outcome: the resumed run is
bit-identical to an uninterrupted one with one metric row per step, or the run stops with one line
and nothing is deleted. Then every class of user error prints one line, without a traceback."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from palmup import generators, workdirs

ROOT = Path(__file__).parents[1]
CHUNK, CHUNKS = 3, 8  # configs/pretrain_tiny.py: 3 steps per chunk, a checkpoint per chunk (2 kept)


@pytest.fixture(scope="module")
def gen_dir(tiny_gen, tmp_path_factory):
  path = tmp_path_factory.mktemp("gen")
  generators.save(path, *tiny_gen)
  return path


def _env(fault=None):  # conftest's XLA cache is in os.environ: the processes compile the tiny program once
  return dict(os.environ, JAX_PLATFORMS="cpu", PALMUP_FAULT=fault or "")


def _pretrain_args(workdir, gen_dir, chunks=CHUNKS, *extra):
  return [sys.executable, str(ROOT / "tests" / "fault_run.py"), "pretrain", "--config", "configs/pretrain_tiny.py",
          "--workdir", str(workdir), f"--config.generator={gen_dir}", "--config.log.judge=",
          f"--config.train.steps={chunks * CHUNK}", *extra]


def pretrain(workdir, gen_dir, *extra, chunks=CHUNKS, fault=None):
  return subprocess.run(_pretrain_args(workdir, gen_dir, chunks, *extra), capture_output=True, text=True,
                        env=_env(fault), cwd=ROOT, timeout=300)


def final_state(workdir):
  """(newest checkpoint step, its arrays, metrics.jsonl's steps, the encoder's arrays)."""
  with ocp.CheckpointManager(workdir / "checkpoints") as manager:
    step = manager.latest_step()
    leaves = jax.tree.leaves(manager.restore(step))
  with ocp.StandardCheckpointer() as ckpt:
    encoder = jax.tree.leaves(ckpt.restore(workdir / "encoder" / "params"))
  return step, leaves, [row["step"] for row in workdirs.read_metrics(workdir)], encoder


def assert_same_run(a, b):
  (step_a, state_a, rows_a, enc_a), (step_b, state_b, rows_b, enc_b) = a, b
  assert step_a == step_b == CHUNKS
  assert rows_a == rows_b == [CHUNK * (i + 1) for i in range(CHUNKS)]  # one row per logged step
  assert len(state_a) == len(state_b) > 20
  for x, y in zip(state_a + enc_a, state_b + enc_b):
    np.testing.assert_array_equal(x, y)


def one_line_error(out, start):
  """The process failed with exactly one line of stderr after the progress bar, starting with start."""
  assert out.returncode not in (0, None), out.stdout + out.stderr
  assert "Traceback" not in out.stderr, out.stderr
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith(start), last
  return last


def snapshot(directory: Path) -> dict[str, bytes]:
  return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(gen_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  out = pretrain(workdir, gen_dir)
  assert out.returncode == 0, out.stderr
  return final_state(workdir)


def test_sigkill_mid_save_and_at_random_moments_then_resume_is_bit_identical(reference, gen_dir,
                                                                             tmp_path):
  out = pretrain(tmp_path, gen_dir, fault="kill:3")
  assert out.returncode == -signal.SIGKILL
  rng = np.random.default_rng(0)
  for _ in range(2):  # kills at random moments once the run is under way: mid-chunk, mid-save, mid-write
    rows = len(workdirs.read_metrics(tmp_path))
    proc = subprocess.Popen(_pretrain_args(tmp_path, gen_dir), env=_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(workdirs.read_metrics(tmp_path)) <= rows and proc.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.4))
    proc.kill()
    proc.wait()
  out = pretrain(tmp_path, gen_dir)
  assert out.returncode == 0, out.stderr
  assert_same_run(final_state(tmp_path), reference)


def test_sigterm_mid_save_finishes_the_save_stops_and_resumes(reference, gen_dir, tmp_path):
  out = pretrain(tmp_path, gen_dir, fault="sigterm:2")
  assert out.returncode == 0, out.stderr
  assert f"SIGTERM received; checkpointed chunk 2 of {CHUNKS}" in out.stdout
  with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
    assert manager.all_steps() == [1, 2]
  assert not (tmp_path / "encoder").exists()
  out = pretrain(tmp_path, gen_dir)
  assert out.returncode == 0, out.stderr
  assert_same_run(final_state(tmp_path), reference)


@pytest.mark.slow  # about 35 s; `make test-slow`
def test_full_disk_during_a_save_stops_with_one_line_and_keeps_the_last_good_checkpoint(
    reference, gen_dir, tmp_path):
  out = pretrain(tmp_path, gen_dir, fault="enospc:3")
  line = one_line_error(out, "palmup pretrain: could not write checkpoint 3 to ")
  assert "No space left on device); the last good checkpoint (2) is kept" in line
  with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
    assert manager.all_steps() == [1, 2]
  out = pretrain(tmp_path, gen_dir)  # space freed: the same command resumes
  assert out.returncode == 0, out.stderr
  assert_same_run(final_state(tmp_path), reference)


@pytest.mark.slow  # about 55 s; `make test-slow` (one damaged checkpoint: test_pretrain)
def test_all_checkpoints_damaged_stops_with_one_line_and_deletes_nothing(gen_dir, tmp_path):
  assert pretrain(tmp_path, gen_dir, chunks=2).returncode == 0
  for f in (tmp_path / "checkpoints").rglob("*"):
    if f.is_file() and "ocdbt" in str(f.relative_to(tmp_path)):
      f.write_bytes(b"\0" * 7)
  before = snapshot(tmp_path)
  line = one_line_error(pretrain(tmp_path, gen_dir, chunks=4), "palmup pretrain: none of the checkpoints 1, 2")
  assert "nothing was deleted; use a new --workdir, or add --config.train.restart=True" in line
  assert snapshot(tmp_path) == before
  out = pretrain(tmp_path, gen_dir, "--config.train.restart=True", chunks=4)
  assert out.returncode == 0, out.stderr
  (aside,) = tmp_path.glob("previous_*")
  assert snapshot(aside) == before  # moved, byte for byte
  assert [row["step"] for row in workdirs.read_metrics(tmp_path)] == [3, 6, 9, 12]


def test_incompatible_checkpoint_stops_with_one_line_naming_the_difference(gen_dir, tmp_path):
  """A checkpoint that reads but holds another state (as after a code change that resizes a layer)."""
  assert pretrain(tmp_path, gen_dir, chunks=1).returncode == 0
  config = json.loads((tmp_path / "config.json").read_text())
  config["agent"]["hidden"] = 24  # the config check passes; the checkpoint's arrays do not fit
  (tmp_path / "config.json").write_text(json.dumps(config))
  before = snapshot(tmp_path)
  out = pretrain(tmp_path, gen_dir, "--config.agent.hidden=24", chunks=2)
  line = one_line_error(out, "palmup pretrain: checkpoint 1 in ")
  assert "does not fit this run's state" in line and "shape" in line and "(16,) in the checkpoint, (24,) in this run" in line
  assert snapshot(tmp_path) == before


def _cli(*args, cwd=ROOT):
  return subprocess.run([sys.executable, "-m", "palmup", *args], capture_output=True, text=True,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"), cwd=cwd, timeout=300)


def test_every_class_of_user_error_prints_one_line(gen_dir, tmp_path):
  (tmp_path / "a_file").write_text("x")
  (tmp_path / "bad.py").write_text("def get_config(:\n")
  broken_gen = tmp_path / "broken_gen"
  broken_gen.mkdir()
  (broken_gen / "generator.json").write_text("{not json")
  encoder = tmp_path / "enc" / "encoder"
  encoder.mkdir(parents=True)
  (encoder / "learner.json").write_text("{}")
  pretrain_tiny = ["pretrain", "--config", "configs/pretrain_tiny.py", "--config.log.judge="]
  cases = [  # (args, start of the one line)
      (["pretrain", "--config", "configs/nope.py", "--workdir", str(tmp_path / "w1")],
       "palmup pretrain: --config configs/nope.py cannot be loaded ([Errno 2] No such file"),
      (["pretrain", "--config", str(tmp_path / "bad.py"), "--workdir", str(tmp_path / "w2")],
       f"palmup pretrain: --config {tmp_path / 'bad.py'} cannot be loaded (SyntaxError"),
      ([*pretrain_tiny, "--workdir", str(tmp_path / "a_file")],
       f"palmup pretrain: --workdir {tmp_path / 'a_file'} is an existing file; give a directory"),
      ([*pretrain_tiny, "--workdir", str(tmp_path / "w3"), f"--config.generator={tmp_path / 'nope'}"],
       f"palmup pretrain: {tmp_path / 'nope'} is not a generator directory (no generator.json)"),
      ([*pretrain_tiny, "--workdir", str(tmp_path / "w4"), f"--config.generator={broken_gen}"],
       f"palmup pretrain: generator spec {broken_gen / 'generator.json'} is unreadable or corrupt"),
      ([*pretrain_tiny, "--workdir", str(tmp_path / "w5"), "--config.num_envs=-1"],
       "palmup pretrain: config.num_envs=-1 is invalid; valid: > 0"),
      (["evaluate", "--config", "configs/evaluate.py", "--workdir", str(tmp_path / "w6"),
        f"--config.encoders={tmp_path / 'nope'}"],
       f"palmup evaluate: config.encoders: '{tmp_path / 'nope'}' is neither a palmup encoder directory"),
      (["evaluate", "--config", "configs/evaluate.py", "--workdir", str(tmp_path / "w7"),
        f"--config.encoders={encoder}"], f"palmup evaluate: encoder spec {encoder / 'learner.json'} is corrupt (no learner"),
      (["eval-generator", "--config", "configs/eval_generator_fashion_mnist.py", "--workdir", str(tmp_path / "w8"),
        f"--config.generator.path={gen_dir}", "--config.data.name=no_such_dataset"],
       "palmup eval-generator: dataset 'no_such_dataset' (split 'train') is neither built in"),
      (["report", "--workdir", str(tmp_path / "nope")], f"palmup report: no such workdir: {tmp_path / 'nope'}"),
  ]
  for args, start in cases:
    one_line_error(_cli(*args), start)


def _tensorboard_events(directory: Path):
  """Every event record in directory's TensorBoard files (TFRecord framing: length, crc, data, crc)."""
  from tensorboardX.proto import event_pb2
  events = []
  for path in sorted(directory.glob("events.out.tfevents.*")):
    data, at = path.read_bytes(), 0
    while at < len(data):
      length = int.from_bytes(data[at:at + 8], "little")
      events.append(event_pb2.Event.FromString(data[at + 12:at + 12 + length]))
      at += 12 + length + 4
  return events


def test_metric_writer_drops_rows_after_the_restored_step_in_jsonl_and_tensorboard(tmp_path):
  writer = workdirs.MetricWriter(tmp_path, resume_step=0)
  for step in (3, 6, 9):
    writer.write(step, {"loss": step})
  writer.close()
  with (tmp_path / "metrics.jsonl").open("a") as f:
    f.write('{"step": 12, "ti')  # a row torn by a kill
  writer = workdirs.MetricWriter(tmp_path, resume_step=6)  # the state was restored at step 6
  assert [row["step"] for row in workdirs.read_metrics(tmp_path)] == [3, 6]
  writer.write(9, {"loss": -9.0})
  writer.close()
  rows = workdirs.read_metrics(tmp_path)
  assert [(r["step"], r["loss"]) for r in rows] == [(3, 3.0), (6, 6.0), (9, -9.0)]
  starts = [e.step for e in _tensorboard_events(tmp_path / "tensorboard") if e.HasField("session_log")]
  assert 7 in starts  # TensorBoard hides the first process's events from step 7 on (purge_step)


def test_machine_errors_read_as_one_line_and_code_errors_do_not():
  import errno
  from palmup.errors import environment_message
  full = environment_message(OSError(errno.ENOSPC, "No space left on device", "/runs/x/metrics.jsonl"))
  assert full.startswith("No space left on device: /runs/x/metrics.jsonl; free disk space")
  assert "rerun the same command: it resumes" in full
  assert environment_message(OSError(errno.EROFS, "Read-only file system", "/ro")).endswith("use a path you can write to")
  assert environment_message(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None  # a traceback


def test_late_asyncio_noise_of_a_damaged_checkpoint_read_is_dropped_and_other_errors_are_not(tmp_path, caplog):
  """orbax leaves failed read tasks that the garbage collector logs at any time later ("Task
  exception was never retrieved"); those of checkpoints already reported damaged must not follow the
  run's one-line error, and an unrelated failed task must still be logged."""
  import asyncio
  import gc
  import warnings
  from palmup.checkpoints import CheckpointError, Checkpoints
  state = {"w": np.ones((3, 4), np.float32), "b": np.zeros(4, np.float32)}
  Checkpoints(tmp_path, keep=2).save(1, state)
  for f in (tmp_path / "checkpoints").rglob("*"):
    if f.is_file() and "ocdbt" in str(f.relative_to(tmp_path)):
      f.write_bytes(b"\0" * 7)
  with warnings.catch_warnings(record=True), pytest.raises(CheckpointError, match="none of the checkpoints 1 "):
    Checkpoints(tmp_path, keep=2).restore(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state))

  async def read(path):
    raise ValueError(f'DATA_LOSS: Error reading in OCDBT database at local file "{path}/default/"')

  def failed_task_collected(path):
    loop = asyncio.new_event_loop()
    task = loop.create_task(read(path))
    loop.run_until_complete(asyncio.wait([task]))
    del task
    gc.collect()  # the task is deleted with its exception unretrieved: asyncio logs it
    loop.close()

  caplog.clear()
  failed_task_collected(tmp_path / "checkpoints" / "1")
  assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
  failed_task_collected(tmp_path / "checkpoints" / "12")  # not a checkpoint reported damaged
  assert [r for r in caplog.records if "never retrieved" in r.getMessage()]
