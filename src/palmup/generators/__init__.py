"""Frozen class-conditional generators behind one interface.

    gen, params = palmup.generators.load("builtin:fashion_mnist_32")
    images = gen.apply(params, z, y)   # z[B, gen.latent_dim] float, y[B] int -> [B, H, W, C] in [-1, 1]

A generator on disk is a directory holding `generator.json` (its kind, constructor arguments,
latent size, class names) and `params/` (an orbax checkpoint of the frozen parameters).
Kinds: "stylegan" (palmup's own, trained by `palmup train-generator`), "eye_dcgan" and
"stylegan2_ada" (NVIDIA's StyleGAN2-ADA network pickles), both imported by `palmup import-generator`.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from etils import epath

from palmup import checkpoints, workdirs
from palmup.errors import UserError

ASSETS = Path(__file__).parent / "assets"


@dataclasses.dataclass(frozen=True)
class Generator:
  """Static description of a generator; hashable, so it can be a static jit argument."""
  kind: str
  module: nn.Module
  latent_dim: int
  num_classes: int
  image_shape: tuple[int, int, int]  # (H, W, C)
  class_names: tuple[str, ...] = ()

  def apply(self, params, z: jax.Array, y: jax.Array) -> jax.Array:
    """z[B, latent_dim], y[B] int32 -> images float32 [B, H, W, C] in [-1, 1]."""
    return self.module.apply({"params": params}, z, y)

  @property
  def normalizes_latent(self) -> bool:
    """Whether the generator divides z by its root mean square before using it."""
    return bool(getattr(self.module, "normalize_latent", False))

  @property
  def w_dim(self) -> int | None:
    """Size of the generator's W space (its mapping network's output), None when it has none."""
    return self.module.w_dim if hasattr(self.module, "map_w") else None

  def map(self, params, z: jax.Array, y: jax.Array) -> jax.Array:
    """z[B, latent_dim], y[B] -> w[B, w_dim], the W-space latent (untruncated)."""
    return self.module.apply({"params": params}, z, y, method="map_w")

  def w_avg(self, params) -> jax.Array:
    """The W space's centre [w_dim]: the average w of the generator's training."""
    return self.module.apply({"params": params}, method="w_avg")

  def synthesize(self, params, w: jax.Array) -> jax.Array:
    """w[B, w_dim] -> images [B, H, W, C]: apply(params, z, y) == synthesize(params, map(params, z, y))."""
    return self.module.apply({"params": params}, w, method="synthesize_w")

  def init(self, key: jax.Array):
    """Fresh (untrained) parameters."""
    z = jnp.zeros((1, self.latent_dim))
    return self.module.init(key, z, jnp.zeros((1,), jnp.int32))["params"]


def class_grid(gen: Generator, params, num_per_class: int, seed: int = 0):
  """uint8 grid image [H', W', 3]: one row per class, the same `num_per_class` latents in every row."""
  import numpy as np
  from palmup import viz
  from palmup.data import transforms
  z = jnp.tile(jax.random.normal(jax.random.PRNGKey(seed), (num_per_class, gen.latent_dim)), (gen.num_classes, 1))
  y = jnp.repeat(jnp.arange(gen.num_classes), num_per_class)
  images = np.asarray(transforms.to_uint8(jax.jit(gen.apply)(params, z, y)))
  return viz.grid(images.reshape((gen.num_classes, num_per_class) + gen.image_shape))


def _module(kind: str, kwargs: dict[str, Any]) -> nn.Module:
  if kind == "stylegan":
    from palmup.generators.stylegan import StyleGenerator
    return StyleGenerator(**kwargs)
  if kind == "eye_dcgan":
    from palmup.generators.eye_dcgan import EyeDCGAN
    return EyeDCGAN(**kwargs)
  if kind == "stylegan2_ada":
    from palmup.generators.stylegan2_ada import StyleGAN2ADA
    return StyleGAN2ADA(**kwargs)
  raise ValueError(f"unknown generator kind {kind!r}; valid: {', '.join(map(repr, KINDS))}")


KINDS = ("stylegan", "eye_dcgan", "stylegan2_ada")

# Random-weight generators of a public generator's kind and shape: what `palmup preflight` and the
# benchmarks compile in place of a config's imported generator when it is not on disk (a config
# names its own in its `stand_in` key). name -> (kind, latent_dim, kwargs); the shapes come from:
STAND_INS = {
    # NVIDIA's class-conditional CIFAR-10 StyleGAN2-ADA, cifar10.pkl (NVlabs/stylegan2-ada-pytorch,
    # trained with --cfg=cifar --cond=1), imported with --config.dtype=bfloat16 as its recipe does
    "stylegan2_ada_cifar10": ("stylegan2_ada", 512, dict(
        z_dim=512, c_dim=10, w_dim=512, resolution=32, img_channels=3, channels=(512, 512, 512, 512),
        mapping_layers=2, conv_clamp=256.0, dtype="bfloat16")),
    # the conditional DCGAN whose weights ship in omniart-eye-generator 0.1 (palmup.generators.eye_dcgan)
    "eye_dcgan": ("eye_dcgan", 100, {}),
}


def stand_in(name: str) -> Generator:
  """The generator STAND_INS names (its parameters: `gen.init`, or jax.eval_shape of it)."""
  if name not in STAND_INS:
    raise UserError(f"stand-in generator {name!r} is not known; valid: {', '.join(STAND_INS)}")
  kind, latent_dim, kwargs = STAND_INS[name]
  return make(kind, latent_dim, kwargs)


def exists(path: str) -> bool:
  """Whether `path` names a generator on disk (a built-in, or a directory with generator.json)."""
  return path.startswith("builtin:") or (workdirs.path(path) / "generator.json").exists()
IMPORTERS = {"eye_dcgan": "palmup.generators.eye_dcgan", "stylegan2_ada": "palmup.generators.stylegan2_ada_import"}


def import_main(config, workdir):
  """`palmup import-generator`: the importer of config.kind ('eye_dcgan' or 'stylegan2_ada')."""
  import importlib
  from palmup import config_checks
  config_checks.one_of(config, "kind", IMPORTERS)
  importlib.import_module(IMPORTERS[config.kind]).import_main(config, workdir)


def make(kind: str, latent_dim: int, kwargs: dict[str, Any],
         class_names: Sequence[str] = ()) -> Generator:
  """Builds a Generator; the image shape is found by tracing one sample."""
  module = _module(kind, {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
  num_classes = module.num_classes
  shape = jax.eval_shape(
      lambda: module.init_with_output(jax.random.PRNGKey(0), jnp.zeros((1, latent_dim)),
                                      jnp.zeros((1,), jnp.int32))[0]).shape
  return Generator(kind, module, latent_dim, num_classes, tuple(shape[1:]), tuple(class_names))


def _spec(gen: Generator) -> dict[str, Any]:
  kwargs = {f.name: getattr(gen.module, f.name) for f in dataclasses.fields(gen.module)
            if f.name not in ("parent", "name")}
  kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
  return {"kind": gen.kind, "latent_dim": gen.latent_dim, "kwargs": kwargs,
          "class_names": list(gen.class_names)}


def save(directory: str | epath.Path, gen: Generator, params, extra: dict[str, Any] | None = None):
  """Writes `generator.json` and `params/` into `directory` (created; params overwritten)."""
  directory = workdirs.path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  spec = _spec(gen) | (extra or {})
  (directory / "generator.json").write_text(json.dumps(spec, indent=2) + "\n")
  checkpoints.write_params(directory / "params", params)


def resolve(path: str) -> epath.Path:
  """'builtin:NAME' -> the shipped generator directory; anything else is a directory path."""
  if path.startswith("builtin:"):
    name = path.split(":", 1)[1]
    found = ASSETS / name
    valid = sorted(p.name for p in ASSETS.iterdir() if (p / "generator.json").exists()) if ASSETS.exists() else []
    if not (found / "generator.json").exists():
      raise UserError(f"no built-in generator {name!r}; valid: {', '.join('builtin:' + v for v in valid)}")
    return found
  found = workdirs.path(path)
  if not (found / "generator.json").exists():
    raise UserError(
        f"{found} is not a generator directory (no generator.json). Use 'builtin:fashion_mnist_32', "
        "a `palmup train-generator` workdir's generator/ folder, or `palmup import-generator`'s output.")
  return found


def load(path: str) -> tuple[Generator, Any]:
  """Loads a saved generator: 'builtin:NAME' or a directory. Returns (Generator, params)."""
  directory = resolve(path)
  hint = "re-export it (`palmup train-generator` or `palmup import-generator`) or use 'builtin:fashion_mnist_32'"
  spec = workdirs.read_json(directory / "generator.json", "generator spec", hint, keys=("kind", "latent_dim", "kwargs"))
  gen = make(spec["kind"], spec["latent_dim"], spec["kwargs"], spec.get("class_names", ()))
  target = jax.eval_shape(gen.init, jax.random.PRNGKey(0))
  return gen, checkpoints.read_params(directory / "params", target, "generator", hint)
