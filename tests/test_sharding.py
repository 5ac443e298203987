"""Data parallelism: the same global batch and seed give the same run on 1 and 8 devices."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from palmup import sharding

HERE = Path(__file__).parent


def _run(devices, out, explorer):
  env = {**sharding.local_processes_env(1, devices)[0], "PYTHONPATH": str(HERE)}
  subprocess.run([sys.executable, str(HERE / "sharded_run.py"), str(out), explorer], env=env, check=True,
                 timeout=600, cwd=HERE.parent)
  return dict(np.load(out))


@pytest.mark.slow  # about 60 s each: 1 and 8 devices in subprocesses (test_multiprocess keeps 1 x 4 vs 2 x 2 devices in the default run); `make test-slow`
@pytest.mark.parametrize("explorer", ["apt", "gradient"])  # gradient: its reward's kNN span every device's envs
def test_one_and_eight_devices_give_the_same_losses_and_parameters(tmp_path, explorer):
  one, eight = _run(1, tmp_path / "one.npz", explorer), _run(8, tmp_path / "eight.npz", explorer)
  assert int(one["devices"]) == 1 and int(eight["devices"]) == 8
  assert int(eight["env_shards"]) == 8  # env states really are split over the mesh
  assert one.keys() == eight.keys()
  for key in sorted(one):
    if key.startswith("m"):
      np.testing.assert_allclose(eight[key], one[key], rtol=2e-3, atol=1e-5, err_msg=key)
    elif key.startswith("p"):
      np.testing.assert_allclose(eight[key], one[key], rtol=2e-3, atol=2e-5, err_msg=key)


def test_a_population_restores_each_member_onto_its_own_devices():
  """4 tiny runs as a population on 4 devices (4 groups of 1): each member restored onto its own
  group and stacked in place peaks at most 1.5x the running state's bytes per device; restored
  replicated over every group, as before, a device held all 4 members."""
  env = {**sharding.local_processes_env(1, 4)[0], "PYTHONPATH": str(HERE)}
  out = subprocess.run([sys.executable, str(HERE / "population_memory.py")], env=env, check=True, timeout=600,
                       cwd=HERE.parent, capture_output=True, text=True).stdout
  found = json.loads(out.strip().splitlines()[-1])
  assert found["same"]  # the stacked state is the population's, value and sharding
  assert found["restoring"] <= 1.5 * found["running"], found
  assert found["old_restoring"] >= 3.9 * found["running"], found
