"""`palmup launch`: one palmup command on every host of a Cloud TPU VM pod or a SLURM GPU cluster.

    palmup launch --config configs/launch.py --workdir runs/launch --config.target=tpu --config.dry_run=True

The same command runs on every host (see the README, "Run on a pod or a cluster"); the processes
join through palmup's distributed start (palmup.sharding.initialize_distributed): on a TPU pod with
PALMUP_DISTRIBUTED=1 (JAX finds the workers), under SLURM from its task variables. Writes into the
workdir: commands.sh (tpu: create, install, run) or job.sbatch (slurm), then runs them unless
dry_run, in which case it prints exactly what it would run. Nothing here is tested on real TPU or
GPU hardware: the tests check the generated commands; the multi-process run itself is tested with
local CPU processes (tests/test_multiprocess.py).

Before anything is created, a TPU launch of `pretrain` runs `palmup preflight` (palmup.preflight)
for tpu.accelerator_type on this machine: the run config is compiled for that slice by the TPU
compiler, and a program that does not compile or does not fit its chips' memory stops the launch
with the compiler's reason (workdir/preflight/ holds the figures). --config.preflight=False skips it.
"""
from __future__ import annotations

import shlex
import subprocess

from palmup import config_checks, workdirs

TARGETS = ("tpu", "slurm")


def validate(config):
  config_checks.one_of(config, "target", TARGETS)
  config_checks.one_of(config, "preflight", (True, False))
  config_checks.require(bool(config.run.command.strip()), "run.command", config.run.command, "a palmup command, e.g. pretrain")
  config_checks.require(bool(config.run.workdir.strip()), "run.workdir", config.run.workdir,
             "the run's workdir, one path every host sees (a gs:// bucket or NFS)")
  if config.target == "tpu":
    for key in ("tpu.name", "tpu.zone", "tpu.accelerator_type", "tpu.version"):
      config_checks.require(bool(config_checks.get(config, key)), key, config_checks.get(config, key), "a non-empty string")
  else:
    for key in ("slurm.nodes", "slurm.gpus_per_node"):
      config_checks.positive(config, key)
    config_checks.require(not workdirs.is_uri(config.run.workdir), "run.workdir", config.run.workdir,
               "a shared filesystem path on a SLURM cluster (sbatch writes its log there)")


def palmup_command(config) -> str:
  """The command every host runs, from the checkout's venv."""
  r = config.run
  args = [".venv/bin/palmup", r.command, "--config", r.config, "--workdir", r.workdir, *shlex.split(r.overrides)]
  return " ".join(shlex.quote(a) for a in args)


def tpu_commands(config) -> list[list[str]]:
  """gcloud commands: create the TPU VM, install palmup on every worker, run on every worker."""
  t = config.tpu
  where = [t.name, f"--zone={t.zone}"]
  if t.project:
    where.append(f"--project={t.project}")
  ssh = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", *where, "--worker=all", "--command"]
  install = (f"test -d palmup || git clone {shlex.quote(config.repo)} palmup; cd palmup && git fetch -q && "
             f"git checkout -q {shlex.quote(config.commit)} && ./scripts/install.sh && "
             f".venv/bin/pip install -q 'jax[tpu]=={config.jax_version}' -e '.[cloud]'")
  return [["gcloud", "compute", "tpus", "tpu-vm", "create", *where, f"--accelerator-type={t.accelerator_type}",
           f"--version={t.version}", *(["--preemptible"] if t.preemptible else [])],
          [*ssh, install],
          [*ssh, f"cd palmup && PALMUP_DISTRIBUTED=1 {palmup_command(config)}"]]


def slurm_script(config) -> str:
  """An sbatch script: one task per GPU, srun starts them; SIGTERM before the time limit checkpoints
  the run, and --requeue resumes it from that checkpoint."""
  s = config.slurm
  lines = ["#!/bin/bash", "#SBATCH --job-name=palmup", f"#SBATCH --nodes={s.nodes}",
           f"#SBATCH --ntasks-per-node={s.gpus_per_node}", "#SBATCH --gpus-per-task=1",
           f"#SBATCH --time={s.time}", f"#SBATCH --output={config.run.workdir}/slurm-%j.out",
           "#SBATCH --signal=TERM@120", "#SBATCH --requeue"]
  lines += [f"#SBATCH --partition={s.partition}"] if s.partition else []
  lines += ["set -euo pipefail", f"cd {shlex.quote(config.checkout)}", f"mkdir -p {shlex.quote(config.run.workdir)}",
            f"srun {palmup_command(config)}"]
  return "\n".join(lines) + "\n"


def preflight(config, workdir):
  """`palmup preflight` of the run config for tpu.accelerator_type, into workdir/preflight/ (a
  UserError if it does not compile or fit)."""
  from palmup import configs, preflight as preflight_lib
  check = configs.load("preflight", **{"run.config": config.run.config, "run.overrides": config.run.overrides,
                                       "topology": config.tpu.accelerator_type})
  print(f"palmup launch: compiling {config.run.config} for {config.tpu.accelerator_type} "
        f"({preflight_lib.topology_name(config.tpu.accelerator_type)}) before creating it", flush=True)
  preflight_lib.main(check, workdir / "preflight")


def main(config, workdir):
  validate(config)
  workdir = workdirs.prepare(workdir, config)
  if config.target == "tpu" and config.preflight and config.run.command == "pretrain":
    preflight(config, workdir)
  if config.target == "tpu":
    commands = tpu_commands(config)
    text = "\n".join(" ".join(shlex.quote(a) for a in c) for c in commands) + "\n"
    (workdir / "commands.sh").write_text(text)
  else:
    script = slurm_script(config)
    (workdir / "job.sbatch").write_text(script)
    commands = [["sbatch", str(workdir / "job.sbatch")]]
    text = script + " ".join(commands[0]) + "\n"
  if config.dry_run:
    print(text, end="")
    return
  for command in commands:
    print("+", " ".join(shlex.quote(a) for a in command), flush=True)
    subprocess.run(command, check=True)
