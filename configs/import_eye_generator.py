"""Imports the pretrained 128x128 eye DCGAN (PyPI omniart-eye-generator, MIT) as a palmup generator.

    palmup import-generator --config configs/import_eye_generator.py --workdir runs/eye
    # then use --config.generator.path=runs/eye/generator in render/pretrain configs
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.kind = "eye_dcgan"
  c.source = "pypi"        # or the path of the wheel / its generator_model_state.pth
  c.samples_per_class = 6
  return c
