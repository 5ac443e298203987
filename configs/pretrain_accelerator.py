"""Accelerator-sized Palm pretraining: ResNet-50 at 64x64 on the eye generator, 2048 envs.

    palmup pretrain --config configs/pretrain_accelerator.py --workdir gs://my-bucket/runs/palm_r50

on every host (palmup launch writes the commands), with a workdir every host sees: a gs:// bucket
(needs palmup's `cloud` extra: pip install -e '.[cloud]') or a shared filesystem (NFS). Sized for a TPU v4-32 / 8xA100 class
machine (not runnable on a 2-core CPU; a test builds and compiles it at a tiny scale). num_envs
and replay.batch_size must be multiples of the device count. The replay stores latents: 2048
envs x 512 steps of 64x64x3 pixels would take 13.3 GB, the latents (100-d z, action, label, flag)
take 0.84 GB; sampled frames are decoded on device.
URLB's full-size DDPG (hidden 1024) and SimCLR's LARS-free Adam setting with temperature 0.1.
Everything else (generator, 64x64 observations, variance-preserving EMA, no end-of-run probe) is
configs/pretrain_eye.py's.
"""
import runpy
from pathlib import Path


def get_config():
  c = runpy.run_path(str(Path(__file__).with_name("pretrain_eye.py")))["get_config"]()
  c.num_envs = 2048
  c.replay.update(storage="latents", capacity=512, batch_size=1024)
  c.learner.encoder.update(name="resnet50", stem="imagenet", width=64)
  c.learner.update(head_hidden=2048, head_out=128, lr=3e-4, dtype="bfloat16")  # bf16 compute, f32 params
  c.agent.update(hidden=1024)
  c.train.update(steps=200_000, chunk_steps=100, warmup_steps=8, checkpoint_every=10, keep_checkpoints=3)
  c.log.strip_every = 20
  return c
