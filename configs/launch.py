"""One palmup command on every host of a Cloud TPU VM pod or a SLURM GPU cluster (palmup.launch).

    palmup launch --config configs/launch.py --workdir runs/launch --config.dry_run=True
    palmup launch --config configs/launch.py --workdir runs/launch --config.target=slurm \
        --config.slurm.nodes=4 --config.run.workdir=/shared/runs/palm_r50

run.workdir must be one path every host sees: a gs:// bucket (the TPU install adds palmup's `cloud`
extra) or a shared filesystem (NFS). Rerunning the same launch after a preemption resumes the run
from its checkpoint.
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.target = "tpu"  # tpu | slurm
  c.dry_run = False  # print the commands (and write them to the workdir) without running them
  # tpu, pretrain: first compile the run config for tpu.accelerator_type on this machine (palmup
  # preflight, needs libtpu) and stop if it does not compile or fit the chips' memory
  c.preflight = True
  # tpu: this checkout is shipped to every worker (git archive of its commit) and installed there with
  # its own scripts/install.sh and pinned requirements.txt; a tree with uncommitted changes to
  # tracked files is refused unless allow_dirty (then the working tree is shipped, recorded as dirty)
  c.allow_dirty = False
  c.checkout = "$HOME/palmup"  # slurm: the checkout (with its .venv) every node sees
  c.run = dict(command="pretrain", config="configs/pretrain_accelerator.py", workdir="gs://my-bucket/runs/palm_r50",
               overrides="")  # overrides: e.g. "--config.train.steps=1000 --config.seed=1"
  # version: the TPU runtime; "" picks the generation's (palmup.launch.RUNTIME_VERSIONS, from the Cloud
  # TPU docs). queued: obtain the slice as a queued resource (how v5e/v5p/v6e slices are usually
  # obtained) and wait until it is active; preemptible: --preemptible (queued: --spot)
  c.tpu = dict(name="palmup", zone="us-central2-b", project="", accelerator_type="v4-32", version="",
               queued=False, preemptible=False)
  c.slurm = dict(nodes=2, gpus_per_node=8, time="24:00:00", partition="")
  return c
