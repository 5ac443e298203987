"""Latent trajectories of the imported eye DCGAN (run `palmup import-generator` first).

    palmup import-generator --config configs/import_eye_generator.py --workdir runs/eye
    palmup render --config configs/render_eye.py --workdir runs/eye_render
"""
import os
import runpy


def get_config():
  c = runpy.run_path(os.path.join(os.path.dirname(__file__), "render_fashion_mnist.py"))["get_config"]()
  c.generator.path = "runs/eye/generator"
  c.obs_size = 64       # the generator draws 128x128; observations are resized
  c.render.classes = ()  # all 8 iris colours
  c.render.steps = 12
  c.scale = 1
  return c
