"""The dynamics ablation in the paper's world: configs/pretrain_cifar10_stylegan2ada.py (NVIDIA's
cifar10.pkl, a ResNet-18, 4,096 envs) with env.ema, env.action_weight, the variance-preserving EMA
and the class prompt's persistence varied one at a time, 3 seeds, probed on CIFAR-10 and CIFAR-100.

    palmup preflight --config configs/preflight.py --workdir runs/preflight_sweep \
        --config.run.config=configs/pretrain_cifar10_stylegan2ada.py --config.topology=v4-32
    palmup sweep --config configs/sweep_cifar10_dynamics.py --workdir gs://BUCKET/sweep_cifar10 \
        --config.overrides="generator=gs://BUCKET/cifar10_world/generator" --config.data_dir=$HOME/tensorflow_datasets

Sized for a pod: every run uses the whole slice (preflight the run config for it first), one after
another (or `--config.target=slurm`, one array task per run). On a slice with room for several
runs, run them as populations: each member gets slice / population.size chips (palmup.sharding),
so preflight that first, e.g. 16 members on v5e:16x16 (benchmarks/results/tpu_population.md; it
sizes each member at 32 x 256 = 8,192 envs, twice the recipe's 4,096):

    palmup preflight --config configs/preflight.py --workdir runs/preflight_population \
        --config.run.config=configs/pretrain_cifar10_stylegan2ada.py --config.topology=v5e:16x16 \
        --config.members=16 --config.envs_per_chip=32 --config.batch_per_chip=8 --config.programs=chunk
    palmup sweep ... --config.population.enabled=auto --config.population.size=16
"""
import runpy
from pathlib import Path


def get_config():
  c = runpy.run_path(str(Path(__file__).with_name("sweep.py")))["get_config"]()  # seeds, probes, slurm, ...
  c.base = "configs/pretrain_cifar10_stylegan2ada.py"
  c.overrides = ""  # e.g. "generator=gs://BUCKET/cifar10_world/generator"
  c.axes = ("env.ema=0,0.5,0.7,0.9,0.99;env.action_weight=0,0.5,1;env.variance_preserving=True;"
            "env.resample_class_each_step=True")
  c.datasets = "cifar10,cifar100"  # data_dir: a tfds data_dir with CIFAR prepared
  c.metrics = "knn_entropy,class_coverage"  # the recipe has no judge (log.judge=""): the latents' own
  return c
