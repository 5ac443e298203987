"""Image encoders and the projection head for representation learning (Linen).

All encoders map uint8-derived float images [B, H, W, C] in [-1, 1] to features [B, D].
- ConvEncoder: a small strided CNN that trains fast on a CPU (the built-in configs' default).
- ResNet (18 / 50): for accelerators. GroupNorm instead of BatchNorm, so the encoder is
  stateless (no batch statistics to thread through the fused loop or to synchronise across
  devices); parameter counts equal torchvision's BatchNorm ResNets without the classifier
  (tested). stem="imagenet" (7x7 stride 2 + max-pool) for inputs of 64 px and more,
  stem="cifar" (3x3 stride 1) for small ones.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from palmup.nn import conv
from palmup.nn.layers import Conv


class ConvEncoder(nn.Module):
  """Strided 3x3 convs (stride 2 after the first), ReLU, global mean pool, dense to `features`.
  conv_grad: the convolutions' gradient rule (a key of palmup.nn.conv.GRADS): "im2col" is fastest
  on CPU, "xla" on accelerators."""
  widths: Sequence[int] = (32, 64, 128, 256)
  features: int = 256
  conv_grad: str = "xla"

  @nn.compact
  def __call__(self, x):
    for i, w in enumerate(self.widths):
      x = nn.relu(Conv(w, 3, stride=1 if i == 0 else 2, grad=self.conv_grad)(x))
    return nn.Dense(self.features)(x.mean(axis=(1, 2)))


def _conv(x, width: int, kernel: int, stride: int, name: str):
  return nn.Conv(width, (kernel, kernel), (stride, stride), padding=kernel // 2, use_bias=False, name=name)(x)


def _residual(x, y, stride: int):
  """relu(shortcut(x) + y): identity, or a normalised 1x1 projection when the shape changes."""
  if x.shape[-1] != y.shape[-1] or stride != 1:
    x = _norm(_conv(x, y.shape[-1], 1, stride, "proj"))
  return nn.relu(x + y)


class _Basic(nn.Module):
  width: int
  stride: int

  @nn.compact
  def __call__(self, x):
    y = nn.relu(_norm(_conv(x, self.width, 3, self.stride, "conv1")))
    return _residual(x, _norm(_conv(y, self.width, 3, 1, "conv2"), zero_init=True), self.stride)


class _Bottleneck(nn.Module):
  width: int
  stride: int

  @nn.compact
  def __call__(self, x):
    y = nn.relu(_norm(_conv(x, self.width, 1, 1, "conv1")))
    y = nn.relu(_norm(_conv(y, self.width, 3, self.stride, "conv2")))
    return _residual(x, _norm(_conv(y, 4 * self.width, 1, 1, "conv3"), zero_init=True), self.stride)


def _norm(x, zero_init: bool = False):
  groups = min(32, x.shape[-1])
  return nn.GroupNorm(num_groups=groups, scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones)(x)


RESNETS = {18: (_Basic, (2, 2, 2, 2)), 34: (_Basic, (3, 4, 6, 3)), 50: (_Bottleneck, (3, 4, 6, 3))}


class ResNet(nn.Module):
  """ResNet-{18, 34, 50} trunk with global mean pooling -> [B, final width] (512 or 2048)."""
  depth: int = 18
  stem: str = "cifar"
  width: int = 64

  @nn.compact
  def __call__(self, x):
    if self.depth not in RESNETS or self.stem not in ("cifar", "imagenet"):
      raise ValueError(f"ResNet depth must be one of {sorted(RESNETS)} and stem 'cifar' or 'imagenet'; "
                       f"got depth={self.depth}, stem={self.stem!r}")
    block, counts = RESNETS[self.depth]
    if self.stem == "imagenet":
      x = nn.relu(_norm(_conv(x, self.width, 7, 2, "stem")))
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    else:
      x = nn.relu(_norm(_conv(x, self.width, 3, 1, "stem")))
    for stage, n in enumerate(counts):
      for i in range(n):
        x = block(self.width * 2 ** stage, 2 if i == 0 and stage > 0 else 1)(x)
    return x.mean(axis=(1, 2))


class ProjectionHead(nn.Module):
  """SimCLR's MLP head: features [B, D] -> Dense(hidden), ReLU, Dense(out) -> [B, out]."""
  hidden: int = 256
  out: int = 128

  @nn.compact
  def __call__(self, h):
    return nn.Dense(self.out)(nn.relu(nn.Dense(self.hidden)(h)))


ENCODERS = ("conv", "resnet18", "resnet34", "resnet50")


def make_encoder(config, platform: str | None = None) -> nn.Module:
  """The encoder a config names, for the backend `platform` ("cpu", "gpu", "tpu"; None: the default
  backend): config.name in ENCODERS; conv: widths, features, conv_grad (palmup.nn.conv.RULES:
  "auto" follows the platform); resnets: stem, width (base channels)."""
  if config.name == "conv":
    return ConvEncoder(tuple(config.widths), config.features, conv.rule_for(config.conv_grad, platform))
  if config.name.startswith("resnet") and config.name in ENCODERS:
    return ResNet(int(config.name[len("resnet"):]), stem=config.stem, width=config.width)
  raise ValueError(f"encoder.name must be one of {ENCODERS}, got {config.name!r}")
