"""An ablation of a pretraining config: members x seeds, probed and tabulated (palmup.sweep).

    palmup sweep --config configs/sweep.py --workdir runs/sweep \
        --config.axes='env.ema=0.5,0.9,0.99;env.action_weight=0,1' --config.seeds=3

The default is the dynamics ablation of the main job at the experiments' CPU scale (24 x 24
observations, the conv widths halved, 1,200 steps: about 5 min per run on 2 cores).
"""
import ml_collections

from palmup.evaluate import probe_config


def get_config():
  c = ml_collections.ConfigDict()
  c.base = "configs/pretrain_fashion_mnist.py"  # the pretrain config every member starts from
  # 'key=value;...' applied to every member (values are Python literals): here the CPU scale
  c.overrides = "obs_size=24;learner.encoder.widths=(16, 32, 64, 128);train.steps=1200"
  # 'key=v1,v2;key2=v3,...': the settings swept (values Python literals, no commas inside one)
  c.axes = "env.ema=0,0.5,0.7,0.9,0.99;env.action_weight=0,0.5,1"
  c.design = "one_at_a_time"  # or "grid": every combination of the axes' values
  c.seeds = 3
  c.target = "local"  # or "slurm": write DIR/sweep.sbatch (one array task per run) and stop
  # target "slurm": what each array task (one run) asks for: time as [days-]h:mm:ss, CPUs, GPUs (0:
  # none), and the partition and memory ("": the cluster's default)
  c.slurm = dict(time="4:00:00", cpus=8, gpus=1, partition="", mem="")
  # "auto": members that differ only in EnvParams and seed run `size` at a time as one vmapped program.
  # Off here: on this 2-core CPU a population of 4 at this scale was slower than its runs one after
  # another (benchmarks/results/population.json); try it where batching pays (an accelerator).
  c.population = dict(enabled="off", size=4)
  c.datasets = "fashion_mnist,mnist5k,digits"
  c.data_dir = ml_collections.FieldReference(None, field_type=str)
  c.shots = 10  # the few-shot probe reported (one of probe.few_shot.shots)
  c.probe = probe_config()
  c.metrics = "judge_entropy,judge_coverage"  # from each run's metrics.jsonl
  c.metrics_tail = 0.5  # averaged over this last share of a run's chunks
  return c
