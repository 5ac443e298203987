"""palmup launch: the exact commands for a Cloud TPU VM pod and a SLURM cluster (--dry-run), and
the distributed start every command makes before touching JAX."""
import json
import shlex
import subprocess
import tarfile

import pytest

from conftest import load_config
from palmup import launch, sharding, workdirs
from palmup.config_checks import ConfigError
from palmup.errors import UserError


def tpu_config(**overrides):
  return load_config("launch", **{"dry_run": True, "preflight": False, "tpu.name": "pod1", "tpu.zone": "us-central2-b",
                                  "allow_dirty": True, "run.workdir": "gs://bucket/palm",
                                  "run.overrides": "--config.train.steps=1000", **overrides})


@pytest.mark.parametrize("accelerator,version", [("v4-32", "tpu-ubuntu2204-base"), ("v5litepod-16", "v2-alpha-tpuv5-lite"),
                                                 ("v5p-8", "v2-alpha-tpuv5"), ("v6e-16", "v2-alpha-tpuv6e")])
def test_tpu_dry_run_ships_this_checkout_to_every_worker_with_its_generations_runtime(tmp_path, capsys, accelerator,
                                                                                       version):
  launch.main(tpu_config(**{"tpu.accelerator_type": accelerator}), tmp_path)
  lines = capsys.readouterr().out.strip().splitlines()
  assert (tmp_path / "commands.sh").read_text().strip().splitlines() == lines
  create, scp, install, run = (shlex.split(line) for line in lines[:4])
  assert create == ["gcloud", "compute", "tpus", "tpu-vm", "create", "pod1", "--zone=us-central2-b",
                    f"--accelerator-type={accelerator}", f"--version={version}"]
  shipped = json.loads((tmp_path / "launch.json").read_text())
  assert shipped["commit"] == workdirs.commit_info()["commit"] and shipped["dirty"] == workdirs.commit_info()["dirty"]
  artifact = tmp_path / shipped["artifact"]
  assert scp == ["gcloud", "compute", "tpus", "tpu-vm", "scp", str(artifact), "pod1:~/", "--zone=us-central2-b",
                 "--worker=all"]
  with tarfile.open(artifact) as tar:  # the checkout itself: code, configs, the installer and its pins
    names = set(tar.getnames())
  assert {"src/palmup/launch.py", "configs/launch.py", "scripts/install.sh", "requirements.txt"} <= names
  assert install[:8] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod1", "--zone=us-central2-b", "--worker=all"]
  assert install[-1] == (f"rm -rf palmup && mkdir palmup && tar -xzf {artifact.name} -C palmup && cd palmup && "
                         "./scripts/install.sh && .venv/bin/pip install -q -e '.[cloud]'")
  commit = shipped["commit"] + ("+dirty" if shipped["dirty"] else "")
  assert run[:9] == install[:9] and run[9] == (
      f"cd palmup && PALMUP_DISTRIBUTED=1 PALMUP_COMMIT={commit} setsid nohup .venv/bin/palmup pretrain --config "
      "configs/pretrain_accelerator.py --workdir gs://bucket/palm --config.train.steps=1000 > $HOME/palmup-pod1.log "
      "2>&1 < /dev/null &")
  assert lines[4].startswith("# the run logs on each worker to ~/palmup-pod1.log")


def test_a_queued_slice_is_requested_and_waited_for(tmp_path, capsys):
  launch.main(tpu_config(**{"tpu.accelerator_type": "v5litepod-16", "tpu.queued": True, "tpu.preemptible": True}),
              tmp_path)
  create, wait = (shlex.split(line) for line in capsys.readouterr().out.splitlines()[:2])
  assert create == ["gcloud", "compute", "tpus", "queued-resources", "create", "pod1", "--node-id=pod1",
                    "--zone=us-central2-b", "--accelerator-type=v5litepod-16", "--runtime-version=v2-alpha-tpuv5-lite",
                    "--spot"]
  assert wait[:2] == ["bash", "-c"] and "queued-resources describe pod1 --zone=us-central2-b" in wait[2]
  assert "grep -qx ACTIVE" in wait[2]


def test_a_dirty_tree_is_shipped_only_when_allowed(tmp_path):
  repo = tmp_path / "repo"
  repo.mkdir()
  git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)
  git("init", "-q")
  (repo / "a.py").write_text("x = 1\n")
  git("add", "a.py")
  git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one")
  (repo / "a.py").write_text("x = 2\n")
  with pytest.raises(UserError, match=r"has uncommitted changes to tracked files .* --config.allow_dirty=True"):
    launch.ship(tpu_config(allow_dirty=False), tmp_path, checkout=repo)
  shipped = launch.ship(tpu_config(allow_dirty=True), tmp_path, checkout=repo)
  assert shipped["dirty"] and shipped["artifact"].endswith("-dirty.tar.gz")
  with tarfile.open(tmp_path / shipped["artifact"]) as tar:
    assert tar.extractfile("a.py").read() == b"x = 2\n"  # the working tree, not the commit
  with pytest.raises(UserError, match="is not one; run it from a clone"):
    launch.ship(tpu_config(), tmp_path, checkout=tmp_path / "nowhere")


def test_a_worker_running_an_archive_records_the_shipped_commit(monkeypatch):
  monkeypatch.setenv("PALMUP_COMMIT", "abc1234+dirty")
  assert workdirs.commit_info() == {"commit": "abc1234", "dirty": True}
  monkeypatch.setenv("PALMUP_COMMIT", "abc1234")
  assert workdirs.commit() == "abc1234"


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
  with pytest.raises(UserError, match=r"TPU topology 'v9-8' is not known"):
    launch.runtime_version(load_config("launch", **{"tpu.accelerator_type": "v9-8"}))


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
