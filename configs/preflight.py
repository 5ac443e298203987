"""Compile a pretraining recipe for TPU slices on this machine, before booking one (palmup.preflight).

    palmup preflight --config configs/preflight.py --workdir runs/preflight \
        --config.run.config=configs/pretrain_cifar10_stylegan2ada.py --config.topology=v5e:4x4,v6e-16

Needs libtpu (`pip install 'jax[tpu]==0.10.2'`; the install script adds it), no TPU and no download.
Prints, and writes to the workdir (preflight.json, preflight.md), per topology: memory per chip
against its HBM, FLOPs and bytes per step, a roofline step time and frames/s, the collectives, the
compile time. Exits non-zero, with the compiler's reason, if a topology does not compile or fit.
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  # the pretrain config and its overrides, as `palmup pretrain` would take them
  c.run = dict(config="configs/pretrain_cifar10_stylegan2ada.py", overrides="")  # e.g. "--config.num_envs=2048"
  # comma-separated: libtpu topology names (v5e:4x4, v4:2x2x4, v5p:2x2x1, v6e:16x16) or Cloud TPU
  # accelerator types (v5litepod-16, v4-32, v5p-8, v6e-256); v4 compiles in megacore mode
  c.topology = "v5e:4x4"
  # 0: the run config's num_envs / replay.batch_size; > 0: this many per chip, times the chips
  c.envs_per_chip = 0
  c.batch_per_chip = 0
  c.chunk_steps = 0  # 0: the run config's train.chunk_steps (the compile does not depend on it)
  c.members = 0  # > 0: a population of this many runs in one program, as `palmup sweep` runs them
  c.programs = "init,chunk"
  c.headroom = 0.1  # fits: total memory per chip <= (1 - headroom) x HBM
  c.parallel = 1  # topologies compiled at once, each in its own process
  c.timeout = 1800  # seconds per topology's compile
  return c
