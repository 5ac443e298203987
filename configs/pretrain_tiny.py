"""The main pretraining config at toy sizes (8x8 observations, 8 envs, a 2-layer CNN, 6 steps):
seconds per run on a CPU. For tests and the experiments' --scale tiny; it checks plumbing, not
results.

    palmup pretrain --config configs/pretrain_tiny.py --workdir runs/pretrain_tiny
"""
import runpy
from pathlib import Path


def get_config():
  c = runpy.run_path(str(Path(__file__).with_name("pretrain_fashion_mnist.py")))["get_config"]()
  c.obs_size = 8
  c.num_envs = 8
  c.env.episode_length = 5
  c.replay.update(capacity=16, batch_size=16)
  c.learner.update(pair_offset=1, head_hidden=16, head_out=8)
  c.learner.encoder.update(widths=(8, 16), features=16)
  c.agent.update(hidden=16, feature_dim=8, seed_steps=3)
  c.gradient.update(hidden=16, feature_dim=8)
  c.apt.k = 4
  c.train.update(steps=6, chunk_steps=3, warmup_steps=4, checkpoint_every=1)
  c.log.strip_every = 1
  c.eval.enabled = False
  return c
