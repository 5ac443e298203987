"""Imports an NVIDIA StyleGAN2-ADA network pickle (G_ema) as a palmup generator.

    palmup import-generator --config configs/import_stylegan2ada.py --workdir runs/cifar10_world \
        --config.source=cifar10.pkl --config.class_names=cifar10
    # then --config.generator.path=runs/cifar10_world/generator in render/pretrain configs

The pickle is read as data: no torch, and no code from the file is executed (a pickle's other
globals are refused). Fetch the file yourself on a machine with network access; palmup never
downloads it.
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.kind = "stylegan2_ada"
  c.source = ""  # path of the .pkl (a training snapshot or a pretrained network such as cifar10.pkl)
  c.truncation_psi = 1.0  # 1 = no truncation (NVIDIA's default); 0.7 is a common choice for cleaner samples
  c.truncation_cutoff = ml_collections.FieldReference(None, field_type=int)  # None: truncate every w row
  c.noise_mode = "const"  # 'const' (NVIDIA's generate.py default: the stored noise) or 'none'
  c.class_names = ""  # 'cifar10' (10-class pickles), comma-separated names, or '' for class_0..
  c.dtype = "float32"  # synthesis conv compute dtype: 'float32' (exact) or 'bfloat16' (accelerators)
  c.samples_per_class = 8  # columns of samples.png
  return c
