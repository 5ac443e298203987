"""`palmup import-generator` for NVIDIA's StyleGAN2-ADA network pickles (G_ema only).

    palmup import-generator --config configs/import_stylegan2ada.py --config.source=cifar10.pkl \\
        --workdir runs/cifar10_world [--config.truncation_psi=0.7] [--config.noise_mode=none]

The pickle is read as data (palmup.generators.network_pickle: no torch, no code from the file). The
architecture comes from the modules' attributes and parameter shapes (block resolutions, widths,
mapping depth, learning-rate multiplier, conv_clamp, architecture, noise buffers); every stored gain,
activation and upsampling factor the port relies on is checked against the port's formula (one
missing is taken as the formula), and anything else is refused with one line.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from palmup import checkpoints, config_checks
from palmup import generators, viz, workdirs
from palmup.errors import UserError
from palmup.generators import network_pickle, stylegan2_ada
from palmup.generators.network_pickle import Module

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Unsupported(UserError):
  """The pickle is a network palmup's port does not implement; the message says what."""


def _require(ok: bool, what: str):
  if not ok:
    raise Unsupported(what)


def _number(value, what: str) -> float:
  """A stored attribute that must be a number, else Unsupported naming it."""
  _require(isinstance(value, (int, float)) and not isinstance(value, bool), f"{what} is {value!r}, not a number")
  return float(value)


def _close(stored, expected) -> bool:
  """A stored gain equals the port's formula; an attribute the pickle lacks is taken as the formula
  (older networks.py versions may not store every one)."""
  return stored is None or math.isclose(float(stored), float(expected), rel_tol=1e-6)


def _fc(m: Module, name: str, lr: float, lrelu: bool) -> dict[str, np.ndarray]:
  """A FullyConnectedLayer's params (weight [in, out]) after checking its gains and activation."""
  w, b = m.parameters["weight"], m.parameters["bias"]
  _require(m.attrs.get("activation", "lrelu" if lrelu else "linear") == ("lrelu" if lrelu else "linear"),
           f"{name} has activation {m.attrs.get('activation')!r}, the port supports "
           f"{'lrelu' if lrelu else 'linear'} there")
  _require(_close(m.attrs.get("weight_gain"), lr / math.sqrt(w.shape[1])) and _close(m.attrs.get("bias_gain"), lr),
           f"{name} has weight gain {m.attrs.get('weight_gain')} / bias gain {m.attrs.get('bias_gain')}, "
           f"not lr / sqrt(fan_in) and lr with lr {lr}")
  return {"weight": w.T, "bias": b}


def _layer(m: Module, name: str, up: int, conv_clamp, use_noise: bool) -> dict[str, np.ndarray]:
  """A SynthesisLayer's params (weight [3, 3, in, out])."""
  w = m.parameters["weight"]
  _require(w.shape[2:] == (3, 3) and m.attrs.get("padding", 1) == 1, f"{name} has a {w.shape[2:]} kernel; the port supports 3x3")
  _require(m.attrs.get("up", up) == up, f"{name} upsamples by {m.attrs.get('up')}, expected {up}")
  _require(m.attrs.get("activation", "lrelu") == "lrelu" and _close(m.attrs.get("act_gain"), math.sqrt(2)),
           f"{name} has activation {m.attrs.get('activation')!r} with gain {m.attrs.get('act_gain')}; the port supports lrelu")
  _require(m.attrs.get("conv_clamp") == conv_clamp and ("noise_const" in m.buffers) == use_noise,
           f"{name} has conv_clamp {m.attrs.get('conv_clamp')} / use_noise {m.attrs.get('use_noise')}, "
           f"unlike the rest of the network ({conv_clamp} / {use_noise})")
  out = {"affine": _fc(m.modules["affine"], f"{name}.affine", 1.0, False),
         "weight": w.transpose(2, 3, 1, 0), "bias": m.parameters["bias"]}
  if up > 1:
    out["resample_filter"] = m.buffers["resample_filter"]
  if use_noise:
    out["noise_const"] = m.buffers["noise_const"]
    out["noise_strength"] = np.asarray(m.parameters["noise_strength"], np.float32).reshape(())
  return out


def _torgb(m: Module, name: str, conv_clamp) -> dict[str, np.ndarray]:
  w = m.parameters["weight"]
  _require(w.shape[2:] == (1, 1) and _close(m.attrs.get("weight_gain"), 1 / math.sqrt(w.shape[1])),
           f"{name}: a ToRGB that is not a 1x1 conv with gain 1 / sqrt(Cin)")
  _require(m.attrs.get("conv_clamp") == conv_clamp, f"{name} has conv_clamp {m.attrs.get('conv_clamp')}, unlike the rest")
  return {"affine": _fc(m.modules["affine"], f"{name}.affine", 1.0, False),
          "weight": w.transpose(2, 3, 1, 0), "bias": m.parameters["bias"]}


def convert(g: Module) -> tuple[dict[str, Any], dict]:
  """G_ema's record -> (StyleGAN2ADA kwargs without the truncation/noise/dtype settings, params)."""
  _require(g.class_name == "Generator" and {"mapping", "synthesis"} <= g.modules.keys(),
           f"G_ema is a {g.class_name!r} with modules {sorted(g.modules)}, not a StyleGAN2-ADA Generator")
  mapping, synthesis = g.modules["mapping"], g.modules["synthesis"]
  _require("input" not in synthesis.modules and synthesis.class_name == "SynthesisNetwork",
           "a StyleGAN3 generator (SynthesisInput and L* layers); palmup supports StyleGAN2-ADA only")
  a = g.attrs
  z_dim, c_dim, w_dim, res, img_channels = (int(_number(a[k], f"G_ema's {k}"))
                                            for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"))
  resolutions = [int(r) for r in synthesis.attrs.get("block_resolutions", [])] or [2 ** i for i in range(2, int(math.log2(res)) + 1)]
  _require(resolutions == [2 ** i for i in range(2, int(math.log2(res)) + 1)], f"block resolutions {resolutions}")

  num_layers = sum(1 for k in mapping.modules if k.startswith("fc"))
  # the mapping's learning-rate multiplier as it was built (MappingNetwork's default 0.01), which
  # every layer's stored gains are then checked against
  lr = _number(dict(mapping.attrs.get("_init_kwargs") or {}).get("lr_multiplier", 0.01), "mapping's lr_multiplier")
  mp = {f"fc{i}": _fc(mapping.modules[f"fc{i}"], f"mapping.fc{i}", lr, True) for i in range(num_layers)}
  if c_dim:
    mp["embed"] = _fc(mapping.modules["embed"], "mapping.embed", 1.0, False)
  mp["w_avg"] = mapping.buffers.get("w_avg", np.zeros(w_dim, np.float32))
  kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, resolution=res, img_channels=img_channels,
                mapping_layers=num_layers, mapping_lr=lr,
                embed_features=int(mp["embed"]["weight"].shape[1]) if c_dim else 0,
                layer_features=int(mp["fc0"]["weight"].shape[1]) if num_layers > 1 else 0,
                has_w_avg="w_avg" in mapping.buffers)

  first = synthesis.modules[f"b{resolutions[0]}"]
  architecture = first.attrs.get("architecture", "skip")
  conv_clamp = first.modules["conv1"].attrs.get("conv_clamp")
  use_noise = "noise_const" in first.modules["conv1"].buffers
  _require(architecture in stylegan2_ada.ARCHITECTURES,
           f"architecture {architecture!r}; the port supports {', '.join(stylegan2_ada.ARCHITECTURES)}")
  sp, channels = {}, []
  for r in resolutions:
    b, name = synthesis.modules[f"b{r}"], f"synthesis.b{r}"
    _require(b.attrs.get("architecture", architecture) == architecture, f"{name} has architecture {b.attrs.get('architecture')!r}, unlike b{resolutions[0]}")
    bp = {"resample_filter": b.buffers["resample_filter"],
          "conv1": _layer(b.modules["conv1"], f"{name}.conv1", 1, conv_clamp, use_noise)}
    if "const" in b.parameters:  # the first block (in_channels 0)
      bp["const"] = b.parameters["const"].transpose(1, 2, 0)
    else:
      bp["conv0"] = _layer(b.modules["conv0"], f"{name}.conv0", 2, conv_clamp, use_noise)
    if "torgb" in b.modules:
      bp["torgb"] = _torgb(b.modules["torgb"], f"{name}.torgb", conv_clamp)
    if architecture == "resnet" and "skip" in b.modules:
      skip = b.modules["skip"]
      _require(skip.attrs.get("up", 2) == 2 and skip.attrs.get("conv_clamp") is None and skip.parameters.get("bias") is None,
               f"{name}.skip is not a bias-free, unclamped 1x1 up-2 conv")
      bp["skip"] = skip.parameters["weight"].transpose(2, 3, 1, 0)
    sp[f"b{r}"] = bp
    channels.append(int(b.modules["conv1"].parameters["weight"].shape[0]))
  kwargs.update(channels=channels, architecture=architecture, use_noise=use_noise,
                conv_clamp=None if conv_clamp is None else float(conv_clamp))
  return kwargs, {"mapping": mp, "synthesis": sp}


def class_names(spec: str, c_dim: int) -> tuple[str, ...]:
  """'cifar10' (10 classes), comma-separated names (c_dim of them) or '' (class_0..)."""
  n = max(c_dim, 1)
  if spec == "cifar10":
    config_checks.require(c_dim == 10, "class_names", spec, f"'' or {n} comma-separated names: the pickle has {c_dim} classes, not 10")
    return CIFAR10_CLASSES
  if spec:
    names = tuple(s.strip() for s in spec.split(","))
    config_checks.require(len(names) == n, "class_names", spec, f"'cifar10' (10 classes), '' or {n} comma-separated names")
    return names
  return tuple(f"class_{i}" for i in range(n))


def build(kwargs: dict[str, Any], params, config, names=()) -> tuple[generators.Generator, dict]:
  """The palmup Generator of converted kwargs/params with the config's truncation, noise and dtype;
  the params are checked against the module's own shapes."""
  kwargs = dict(kwargs)
  has_w_avg = kwargs.pop("has_w_avg")
  config_checks.require(has_w_avg or config.truncation_psi == 1, "truncation_psi", config.truncation_psi,
             "1.0: this pickle has no w_avg (w_avg_beta=None) to truncate towards")
  kwargs.update(truncation_psi=float(config.truncation_psi), truncation_cutoff=config.truncation_cutoff,
                noise_mode=config.noise_mode, dtype=config.dtype)
  gen = generators.make("stylegan2_ada", kwargs["z_dim"], kwargs, names)
  params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params)
  wrong = checkpoints.differences(params, jax.eval_shape(gen.init, jax.random.PRNGKey(0)))
  if wrong:
    raise Unsupported("parameters that do not fit the port: " + "; ".join(wrong[:3]))
  return gen, params


def validate(config):
  config_checks.require(bool(config.source), "source", config.source, "the path of a StyleGAN2-ADA network pickle (.pkl)")
  config_checks.in_range(config, "truncation_psi", 0.0, 1.0)
  config_checks.require(config.truncation_cutoff is None or config.truncation_cutoff >= 0, "truncation_cutoff",
             config.truncation_cutoff, "None (every w row) or >= 0")
  config_checks.one_of(config, "noise_mode", stylegan2_ada.NOISE_MODES)
  config_checks.one_of(config, "dtype", stylegan2_ada.DTYPES)
  config_checks.positive(config, "samples_per_class")


def import_main(config, workdir):
  """Reads config.source, converts G_ema and writes workdir/generator and workdir/samples.png.
  Every check runs before anything is written."""
  validate(config)
  source = Path(config.source).expanduser()
  data = network_pickle.load(source)
  if "G_ema" not in data:
    raise UserError(f"{source} has no G_ema (keys: {', '.join(map(str, data))}); {network_pickle.HINT}")
  if not isinstance(data["G_ema"], Module):
    raise UserError(f"{source}: G_ema is a {type(data['G_ema']).__name__}, not a persistent network; {network_pickle.HINT}")
  try:
    kwargs, params = convert(data["G_ema"])
    names = class_names(config.class_names, kwargs["c_dim"])
    gen, params = build(kwargs, params, config, names)
  except Unsupported as e:
    raise UserError(f"{source}: unsupported network: {e}") from None
  except network_pickle.MissingEntry as e:  # only the pickle's own entries: a bug of the port keeps its traceback
    raise UserError(f"{source}: a G_ema whose layout is not StyleGAN2-ADA's ({e})") from None
  workdir = workdirs.prepare(workdir, config)
  generators.save(workdir / "generator", gen, params, {"imported_from": str(source)})
  viz.save_png(workdir / "samples.png", generators.class_grid(gen, params, config.samples_per_class))
  print(f"wrote {workdir / 'generator'} ({gen.num_classes} classes, z {gen.latent_dim}, "
        f"{'x'.join(map(str, gen.image_shape))}) and {workdir / 'samples.png'}")
