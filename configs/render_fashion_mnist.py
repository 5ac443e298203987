"""Latent trajectories of the shipped Fashion-MNIST generator for three EMA values.

    palmup render --config configs/render_fashion_mnist.py --workdir runs/render
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.generator = dict(path="builtin:fashion_mnist_32")
  c.obs_size = 32
  c.latent_space = "z"  # "z" or "w" (stylegan2_ada generators only; see palmup.env.LatentEnv)
  c.env = dict(ema=0.9, action_weight=0.5, action_scale=1.0, noise_scale=1.0,
               variance_preserving=False, episode_length=64, resample_class_each_step=False)
  c.render = dict(classes=(0, 1, 3, 5, 7, 8, 9), steps=16, policy="random",
                  sweep=dict(ema=(0.5, 0.8, 0.95)))
  c.scale = 3  # nearest upscaling of the written pictures
  return c
