"""`palmup launch`: one palmup command on every host of a Cloud TPU VM pod or a SLURM GPU cluster.

    palmup launch --config configs/launch.py --workdir runs/launch --config.target=tpu --config.dry_run=True

The same command runs on every host (see the README, "Run on a pod or a cluster"); the processes
join through palmup's distributed start (palmup.sharding.initialize_distributed): on a TPU pod with
PALMUP_DISTRIBUTED=1 (JAX finds the workers), under SLURM from its task variables. Writes into the
workdir: commands.sh (tpu: create, ship, install, run) or job.sbatch (slurm), then runs them unless
dry_run, in which case it prints exactly what it would run. Nothing here is tested on real TPU or
GPU hardware: the tests check the generated commands; the multi-process run itself is tested with
local CPU processes (tests/test_multiprocess.py).

What a TPU launch ships: the user's own checkout, as `git archive` of its commit (with
allow_dirty, of its working tree: `git stash create`), one tar.gz in the launch workdir copied to
every worker (`gcloud compute tpus tpu-vm scp --worker=all`). A source archive rather than a wheel
because a run needs more than the package: the configs it names, scripts/install.sh and the pinned
requirements.txt, so each worker installs exactly what this checkout's tests ran against. A tree
with uncommitted changes to tracked files is refused unless allow_dirty; the commit and the dirty
flag go to the launch workdir's launch.json and, through PALMUP_COMMIT, to every run's
provenance.jsonl. The slice is created with the runtime version of its generation
(RUNTIME_VERSIONS), directly or as a queued resource (tpu.queued), and the run starts detached
(setsid nohup) on every worker, logging to ~/palmup-<tpu.name>.log there, so a dropped ssh session
does not end it.

Before anything is created, a TPU launch of `pretrain` runs `palmup preflight` (palmup.preflight)
for tpu.accelerator_type on this machine: the run config is compiled for that slice by the TPU
compiler, and a program that does not compile or does not fit its chips' memory stops the launch
with the compiler's reason (workdir/preflight/ holds the figures). --config.preflight=False skips it.
"""
from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from palmup import config_checks, workdirs
from palmup.errors import UserError

TARGETS = ("tpu", "slurm")
# The TPU software (runtime) version to create each generation's VMs with, for JAX: Cloud TPU docs,
# "TPU software versions", https://cloud.google.com/tpu/docs/runtimes (v4 and older share one).
RUNTIME_VERSIONS = {"v2": "tpu-ubuntu2204-base", "v3": "tpu-ubuntu2204-base", "v4": "tpu-ubuntu2204-base",
                    "v5e": "v2-alpha-tpuv5-lite", "v5p": "v2-alpha-tpuv5", "v6e": "v2-alpha-tpuv6e"}
CHECKOUT = Path(__file__).resolve().parents[2]  # the checkout palmup runs from (src layout)


def validate(config):
  config_checks.one_of(config, "target", TARGETS)
  config_checks.one_of(config, "preflight", (True, False))
  config_checks.require(bool(config.run.command.strip()), "run.command", config.run.command, "a palmup command, e.g. pretrain")
  config_checks.require(bool(config.run.workdir.strip()), "run.workdir", config.run.workdir,
             "the run's workdir, one path every host sees (a gs:// bucket or NFS)")
  if config.target == "tpu":
    for key in ("tpu.name", "tpu.zone", "tpu.accelerator_type"):
      config_checks.require(bool(config_checks.get(config, key)), key, config_checks.get(config, key), "a non-empty string")
    config_checks.one_of(config, "tpu.queued", (True, False))
    config_checks.one_of(config, "allow_dirty", (True, False))
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


def runtime_version(config) -> str:
  """tpu.version, or the runtime version of tpu.accelerator_type's generation (RUNTIME_VERSIONS)."""
  if config.tpu.version:
    return config.tpu.version
  from palmup import preflight
  gen = preflight.generation(preflight.topology_name(config.tpu.accelerator_type))
  if gen not in RUNTIME_VERSIONS:
    raise UserError(f"no TPU runtime version known for {gen} ({config.tpu.accelerator_type}); set "
                    f"--config.tpu.version (https://cloud.google.com/tpu/docs/runtimes); known: {sorted(RUNTIME_VERSIONS)}")
  return RUNTIME_VERSIONS[gen]


def ship(config, workdir, checkout: Path = CHECKOUT) -> dict:
  """Archives the checkout into workdir/palmup-<commit>[-dirty].tar.gz; -> {"commit", "dirty",
  "artifact"}, also written to workdir/launch.json. A UserError outside a git checkout, or for a tree
  with uncommitted changes to tracked files unless allow_dirty."""
  git = lambda *a: subprocess.run(["git", "-C", str(checkout), *a], capture_output=True, text=True, check=True).stdout.strip()
  try:
    commit = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
  except (OSError, subprocess.CalledProcessError):
    raise UserError(f"palmup launch ships a git checkout, and {checkout} is not one; run it from a clone") from None
  if dirty and not config.allow_dirty:
    raise UserError(f"{checkout} has uncommitted changes to tracked files (git status); commit them, or ship the "
                    "working tree as it is with --config.allow_dirty=True (recorded as dirty)")
  tree = (git("stash", "create") or "HEAD") if dirty else "HEAD"
  artifact = workdirs.path(workdir) / f"palmup-{commit}{'-dirty' if dirty else ''}.tar.gz"
  git("archive", "--format=tar.gz", "-o", str(artifact), tree)
  info = {"commit": commit, "dirty": dirty, "artifact": artifact.name}
  (workdirs.path(workdir) / "launch.json").write_text(json.dumps(info, indent=2) + "\n")
  return info


def tpu_commands(config, shipped: dict, artifact: str) -> list[list[str]]:
  """gcloud commands: create the slice (or queue it and wait until it is active), copy the archive
  to every worker, install it there, start the run detached on every worker."""
  t = config.tpu
  zone = [f"--zone={t.zone}", *([f"--project={t.project}"] if t.project else [])]
  where = [t.name, *zone]
  version = runtime_version(config)
  if t.queued:
    create = [["gcloud", "compute", "tpus", "queued-resources", "create", t.name, f"--node-id={t.name}", *zone,
               f"--accelerator-type={t.accelerator_type}", f"--runtime-version={version}",
               *(["--spot"] if t.preemptible else [])],
              ["bash", "-c", "until gcloud compute tpus queued-resources describe " + " ".join(map(shlex.quote, where))
               + " --format='value(state.state)' | grep -qx ACTIVE; do sleep 60; done"]]
  else:
    create = [["gcloud", "compute", "tpus", "tpu-vm", "create", *where, f"--accelerator-type={t.accelerator_type}",
               f"--version={version}", *(["--preemptible"] if t.preemptible else [])]]
  name = Path(artifact).name
  ssh = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", *where, "--worker=all", "--command"]
  install = (f"rm -rf palmup && mkdir palmup && tar -xzf {shlex.quote(name)} -C palmup && cd palmup && "
             "./scripts/install.sh && .venv/bin/pip install -q -e '.[cloud]'")
  commit = shipped["commit"] + ("+dirty" if shipped["dirty"] else "")
  log = f"$HOME/palmup-{t.name}.log"
  run = (f"cd palmup && PALMUP_DISTRIBUTED=1 PALMUP_COMMIT={shlex.quote(commit)} setsid nohup "
         f"{palmup_command(config)} > {log} 2>&1 < /dev/null &")
  return [*create,
          ["gcloud", "compute", "tpus", "tpu-vm", "scp", str(artifact), f"{t.name}:~/", *zone, "--worker=all"],
          [*ssh, install],
          [*ssh, run]]


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
    shipped = ship(config, workdir)
    commands = tpu_commands(config, shipped, str(workdir / shipped["artifact"]))
    text = "\n".join(" ".join(shlex.quote(a) for a in c) for c in commands) + "\n"
    text += (f"# the run logs on each worker to ~/palmup-{config.tpu.name}.log: gcloud compute tpus tpu-vm ssh "
             f"{config.tpu.name} --zone={config.tpu.zone} --worker=0 --command 'tail -f palmup-{config.tpu.name}.log'\n")
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
