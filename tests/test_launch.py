"""palmup launch: the exact commands for a Cloud TPU VM pod and a SLURM cluster (--dry-run), and
the distributed start every command makes before touching JAX."""
import shlex

import pytest

from conftest import load_config
from palmup import launch, sharding
from palmup.config_checks import ConfigError
from palmup.errors import UserError


def test_tpu_dry_run_prints_create_install_and_the_same_command_on_every_worker(tmp_path, capsys):
  config = load_config("launch", **{"dry_run": True, "preflight": False, "tpu.name": "pod1",
                                    "tpu.zone": "us-central2-b", "tpu.accelerator_type": "v4-32", "commit": "abc123",
                                    "run.workdir": "gs://bucket/palm", "run.overrides": "--config.train.steps=1000"})
  launch.main(config, tmp_path)
  lines = capsys.readouterr().out.strip().splitlines()
  assert (tmp_path / "commands.sh").read_text().strip().splitlines() == lines
  create, install, run = (shlex.split(line) for line in lines)
  assert create == ["gcloud", "compute", "tpus", "tpu-vm", "create", "pod1", "--zone=us-central2-b",
                    "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base"]
  assert install[:8] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod1", "--zone=us-central2-b", "--worker=all"]
  assert "git checkout -q abc123 && ./scripts/install.sh" in install[-1] and "'jax[tpu]==0.10.2' -e '.[cloud]'" in install[-1]
  assert run[:9] == install[:9] and run[9] == (
      "cd palmup && PALMUP_DISTRIBUTED=1 .venv/bin/palmup pretrain --config configs/pretrain_accelerator.py "
      "--workdir gs://bucket/palm --config.train.steps=1000")


def test_slurm_dry_run_prints_one_task_per_gpu_srun_and_requeue_on_sigterm(tmp_path, capsys):
  config = load_config("launch", **{"dry_run": True, "target": "slurm", "slurm.nodes": 4, "slurm.gpus_per_node": 8,
                                    "slurm.partition": "a100", "checkout": "/shared/palmup",
                                    "run.workdir": "/shared/runs/r50"})
  launch.main(config, tmp_path)
  out = capsys.readouterr().out
  script = (tmp_path / "job.sbatch").read_text()
  assert out == script + f"sbatch {tmp_path / 'job.sbatch'}\n"
  for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-task=1",
               "#SBATCH --signal=TERM@120", "#SBATCH --requeue", "#SBATCH --partition=a100", "cd /shared/palmup",
               "srun .venv/bin/palmup pretrain --config configs/pretrain_accelerator.py --workdir /shared/runs/r50"):
    assert line in script.splitlines(), line


def test_bad_launch_values_are_named():
  with pytest.raises(ConfigError, match=r"config.target='k8s' is invalid; valid: one of 'tpu', 'slurm'"):
    launch.validate(load_config("launch", target="k8s"))
  with pytest.raises(ConfigError, match=r"config.slurm.nodes=0 is invalid"):
    launch.validate(load_config("launch", **{"target": "slurm", "slurm.nodes": 0}))
  with pytest.raises(ConfigError, match=r"config.run.workdir='gs://b/run' is invalid; valid: a shared filesystem"):
    launch.validate(load_config("launch", **{"target": "slurm", "run.workdir": "gs://b/run"}))


@pytest.mark.parametrize("env,expected", [
    ({}, None),
    ({"JAX_COORDINATOR_ADDRESS": "h0:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "2"},
     {"coordinator_address": "h0:1234", "num_processes": 4, "process_id": 2}),
    ({"JAX_COORDINATOR_ADDRESS": "h0:1234", "JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"}, None),
    ({"SLURM_NTASKS": "16", "SLURM_JOB_ID": "7"}, {}),
    ({"SLURM_NTASKS": "1", "SLURM_JOB_ID": "7"}, None),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, {}),
    ({"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}, {}),
    ({"TPU_WORKER_HOSTNAMES": "w0"}, None),
    ({"PALMUP_DISTRIBUTED": "1"}, {}),
])
def test_distributed_settings_come_from_the_environment(env, expected):
  assert sharding.distributed_settings(env) == expected


def test_an_incomplete_multi_process_setting_is_named():
  with pytest.raises(UserError, match=r"JAX_NUM_PROCESSES='2', JAX_PROCESS_ID=None is an incomplete"):
    sharding.distributed_settings({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"})
  with pytest.raises(UserError, match="0 <= JAX_PROCESS_ID < JAX_NUM_PROCESSES"):
    sharding.distributed_settings({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"})
