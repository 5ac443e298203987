"""A real multi-process run on this CPU, as a pod's hosts would start it: 2 processes x 2 forced CPU
devices, joined by JAX's distributed runtime (JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
JAX_PROCESS_ID on a free localhost port) with gloo CPU collectives, each running the same
`palmup pretrain` command. It must equal 1 process x 4 devices (one SPMD program; equal to float
rounding, see assert_same_state), stop on SIGTERM to both, resume, and write the encoder once,
without any process hanging."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from palmup import configs, evaluate, generators, learner as learner_lib, sharding, workdirs

ROOT = Path(__file__).parents[1]
CHUNKS = 4


@pytest.fixture(scope="module")
def gen_dir(tiny_gen, tmp_path_factory):
  path = tmp_path_factory.mktemp("gen")
  generators.save(path, *tiny_gen)
  return path


def start(args: list[str], processes: int, devices: int, only: dict[int, list[str]] = {}) -> list[subprocess.Popen]:
  """`processes` processes of `palmup <args>` (plus only[i] for process i), each with `devices` CPU devices."""
  return [subprocess.Popen([sys.executable, "-m", "palmup", *args, *only.get(i, [])], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for i, env in enumerate(sharding.local_processes_env(processes, devices))]


def launch(workdir, gen_dir, processes: int, devices: int, only: dict[int, list[str]] = {}) -> list[subprocess.Popen]:
  """The same tiny pretrain command in every process."""
  return start(["pretrain", "--config", "configs/pretrain_tiny.py", "--workdir", str(workdir),
                f"--config.generator={gen_dir}", "--config.log.judge=", f"--config.train.steps={3 * CHUNKS}"],
               processes, devices, only)


def finish(procs, timeout=240, ok=True) -> list[str]:
  """Waits for every process (a hang fails the test after `timeout` s); -> their stdout (ok) or
  stderr (not ok: every process must have failed)."""
  outs = []
  for proc in procs:
    try:
      out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
      for p in procs:
        p.kill()
      pytest.fail("a process hung")
    assert (proc.returncode == 0) == ok, err[-3000:]
    outs.append(out if ok else err)
  return outs


def final_state(workdir):
  """(newest step, its arrays) read onto this test process's one device, whatever wrote them."""
  with ocp.CheckpointManager(workdir / "checkpoints", item_handlers=ocp.StandardCheckpointHandler()) as manager:
    step = manager.latest_step()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          manager.item_metadata(step).tree)
    return step, jax.tree.leaves(manager.restore(step, args=ocp.args.StandardRestore(target)))


def assert_same_state(a, b):
  """Integer leaves (replay frames, labels, RNG keys, counters) bit-identical; float leaves within
  1e-3 of the leaf's scale (max |x|). Not bit-identical because gloo sums the processes' partial
  gradients in another order than XLA's all-reduce within one process: float addition is not
  associative, so the last bits differ, and Adam's normalised steps carry that into small
  parameters (measured: at most 1.4e-4 of the leaf's scale after 12 steps)."""
  for x, y in zip(a, b):
    x, y = np.asarray(x), np.asarray(y)
    if np.issubdtype(x.dtype, np.floating):
      np.testing.assert_allclose(x, y, rtol=0, atol=1e-3 * max(float(np.max(np.abs(x), initial=0.0)), 1e-3))
    else:
      np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def one_process(gen_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("one_process")
  finish(launch(workdir, gen_dir, processes=1, devices=4))
  return workdir


@pytest.mark.slow  # about 65 s; `make test-slow` (the default suite keeps the other multi-process tests)
def test_two_processes_stopped_by_sigterm_and_resumed_equal_one_process_and_write_the_encoder_once(
    one_process, gen_dir, tmp_path):
  procs = launch(tmp_path, gen_dir, processes=2, devices=2)
  deadline = time.time() + 240
  while not workdirs.read_metrics(tmp_path) and time.time() < deadline and all(p.poll() is None for p in procs):
    time.sleep(0.05)
  for proc in procs:  # a preemption notice reaches every host
    proc.send_signal(signal.SIGTERM)
  outs = finish(procs)
  assert sum("received; checkpointed chunk" in o for o in outs) == 2, outs  # both stopped after one chunk
  with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
    assert manager.latest_step() < CHUNKS and not (tmp_path / "encoder").exists()
  finish(launch(tmp_path, gen_dir, processes=2, devices=2))  # the same command resumes
  (step_a, a), (step_b, b) = final_state(one_process), final_state(tmp_path)
  assert step_a == step_b == CHUNKS
  assert len(a) == len(b) > 20  # learner, agent, replay, env states, RNG, running mean
  assert_same_state(a, b)
  assert [r["step"] for r in workdirs.read_metrics(tmp_path)] == [3 * (i + 1) for i in range(CHUNKS)]  # one writer
  assert len(list(tmp_path.glob("**/learner.json"))) == 1
  _, params, _ = learner_lib.load_encoder(tmp_path / "encoder")
  _, reference, _ = learner_lib.load_encoder(one_process / "encoder")
  assert_same_state(jax.tree.leaves(params), jax.tree.leaves(reference))


def test_a_generator_missing_on_one_host_stops_every_process_with_one_clear_line(gen_dir, tmp_path):
  errs = finish(launch(tmp_path, gen_dir, 2, 2, only={1: [f"--config.generator={tmp_path / 'absent'}"]}), ok=False)
  last = [e.strip().splitlines()[-1] for e in errs]
  assert last[1].startswith(f"palmup pretrain: {tmp_path / 'absent'} is not a generator directory"), errs[1][-2000:]
  assert last[0].startswith("palmup pretrain: process 1 of 2 failed while loading the config, generator") and \
      "is not a generator directory" in last[0], errs[0][-2000:]
  assert not any("Traceback" in e for e in errs)
  assert not (tmp_path / "checkpoints").exists()


def test_two_process_evaluate_writes_once_and_equals_one_process(one_process, tmp_path):
  overrides = {"encoders": str(one_process), "datasets": "digits", "probe.train_examples": 600,
               "probe.random_seeds": 1, "probe.logistic.steps": 30, "probe.logistic.l2_grid": (1e-3,),
               "probe.ridge.l2_grid": (10.0,), "probe.few_shot.shots": (1, 5), "probe.few_shot.seeds": 1}
  outs = finish(start(["evaluate", "--config", "configs/evaluate.py", "--workdir", str(tmp_path / "two"),
                       *(f"--config.{k}={v}" for k, v in overrides.items())], 2, 2))
  assert sum("| digits |" in o for o in outs) == 1, outs  # the table printed once
  assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["config.json", "evaluate.json", "results.md"]
  evaluate.main(configs.load("evaluate", **overrides), tmp_path / "one")  # this process: one device's numbers
  assert (tmp_path / "two" / "evaluate.json").read_text() == (tmp_path / "one" / "evaluate.json").read_text()
