"""Writes network pickles in NVIDIA's StyleGAN2-ADA format without torch or NVIDIA's code, for tests.

The globals are those of a real snapshot: `torch_utils.persistence._reconstruct_persistent_obj`
over a `meta` dict, `torch._utils._rebuild_parameter` / `_rebuild_tensor_v2` over storages pickled as
`torch.storage._load_from_bytes(payload)` (a legacy torch.save of the storage). Stand-in modules in
sys.modules make pickle write those names; nothing here is NVIDIA's code. `generator_state` builds
the state of a StyleGAN2-ADA `Generator` of any shape with random weights, in NVIDIA's layout
(parameter shapes, buffers, the attributes their forward pass reads).
"""
from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import sys
import types

import numpy as np

from palmup.generators import torch_legacy


def _stand_in(modules: dict, module: str, name: str):
  def fn(*args):
    raise AssertionError("a stand-in, never called")
  fn.__module__, fn.__qualname__, fn.__name__ = module, name, name
  mod = modules.setdefault(module, types.ModuleType(module))
  setattr(mod, name, fn)
  return mod, fn


def install_stand_ins(monkeypatch):
  """Registers torch_utils.persistence, torch._utils, torch.storage and torch.FloatStorage."""
  fns, modules = {}, {}
  for module, name in (("torch_utils.persistence", "_reconstruct_persistent_obj"),
                       ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
                       ("torch.storage", "_load_from_bytes")):
    mod, fns[name] = _stand_in(modules, module, name)
    monkeypatch.setitem(sys.modules, module, mod)
  torch = types.ModuleType("torch")
  torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
  monkeypatch.setitem(sys.modules, "torch", torch)
  monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
  return fns, torch


class _Storage:
  def __init__(self, flat, fns, torch):
    self.flat, self.fns, self.torch = flat, fns, torch

  def __reduce__(self):
    storage_type = self.torch.FloatStorage

    class P(pickle.Pickler):
      def persistent_id(p, obj):
        return ("storage", storage_type, "0", "cuda:0", self.flat.size, None) if obj is self else None

    buf = io.BytesIO()
    for header in (torch_legacy.MAGIC_NUMBER, torch_legacy.PROTOCOL_VERSION,
                   {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}):
      pickle.dump(header, buf, protocol=2)
    P(buf, protocol=2).dump(self)
    pickle.dump(["0"], buf, protocol=2)
    buf.write(struct.pack("<q", self.flat.size) + self.flat.tobytes())
    return (self.fns["_load_from_bytes"], (buf.getvalue(),))


class Tensor:
  """Pickles as torch does a float32 tensor (a parameter if `param`)."""
  def __init__(self, array, param=True):
    self.array, self.param = np.ascontiguousarray(array, np.float32), param

  def reduce_with(self, fns, torch):
    a = self.array
    stride = tuple(s // 4 for s in a.strides)
    tensor = _Rebuilt(fns["_rebuild_tensor_v2"], (_Storage(a.reshape(-1), fns, torch), 0, a.shape, stride,
                                                  False, collections.OrderedDict()))
    return _Rebuilt(fns["_rebuild_parameter"], (tensor, True, collections.OrderedDict())) if self.param else tensor


class _Rebuilt:
  def __init__(self, fn, args):
    self.fn, self.args = fn, args

  def __reduce__(self):
    return (self.fn, self.args)


class Persistent:
  """A persistent network object: meta = {type, version, module_src, class_name, state}."""
  def __init__(self, class_name, state, module_src="# NVIDIA's source would be here; never run\n"):
    self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)


def dumps(obj, monkeypatch, protocol=4) -> bytes:
  """Pickles obj (dicts, Persistent, Tensor, plain values) in the network pickle format."""
  fns, torch = install_stand_ins(monkeypatch)

  def convert(o):
    if isinstance(o, Persistent):
      return _Rebuilt(fns["_reconstruct_persistent_obj"], ({**o.meta, "state": convert(o.meta["state"])},))
    if isinstance(o, Tensor):
      return o.reduce_with(fns, torch)
    if isinstance(o, dict):
      return type(o)((k, convert(v)) for k, v in o.items())
    return o

  return pickle.dumps(convert(obj), protocol=protocol)


def _module(class_name, params=None, buffers=None, modules=None, **attrs):
  state = {"training": False, "_parameters": collections.OrderedDict((k, Tensor(v)) for k, v in (params or {}).items()),
           "_buffers": collections.OrderedDict((k, Tensor(v, param=False)) for k, v in (buffers or {}).items()),
           "_non_persistent_buffers_set": set(), "_forward_hooks": collections.OrderedDict(),
           "_modules": collections.OrderedDict(modules or {})}
  state.update(attrs)
  return Persistent(class_name, state)


def _fc(rng, fan_in, out, lr=1.0, lrelu=False, bias_init=0.0):
  return _module("FullyConnectedLayer",
                 {"weight": rng.normal(size=(out, fan_in)) / lr, "bias": bias_init + 0.3 * rng.normal(size=out)},
                 activation="lrelu" if lrelu else "linear", weight_gain=lr / math.sqrt(fan_in), bias_gain=lr)


def _filter():
  f = np.outer([1.0, 3.0, 3.0, 1.0], [1.0, 3.0, 3.0, 1.0])
  return f / f.sum()


def _layer(rng, cin, cout, w_dim, res, up, conv_clamp, use_noise):
  buffers = {"resample_filter": _filter()}
  params = {"weight": rng.normal(size=(cout, cin, 3, 3)), "bias": 0.3 * rng.normal(size=cout)}
  if use_noise:
    buffers["noise_const"] = rng.normal(size=(res, res))
    params["noise_strength"] = np.asarray(0.5 * rng.normal())
  return _module("SynthesisLayer", params, buffers, {"affine": _fc(rng, w_dim, cin, bias_init=1.0)},
                 resolution=res, up=up, use_noise=use_noise, activation="lrelu", conv_clamp=conv_clamp,
                 padding=1, act_gain=math.sqrt(2))


def generator_state(z_dim=8, c_dim=3, w_dim=16, resolution=16, channels=(16, 16, 8), mapping_layers=2,
                    architecture="skip", conv_clamp=None, use_noise=True, w_avg=True, seed=0, mapping_lr=0.01,
                    mapping_kwargs=None) -> Persistent:
  """A StyleGAN2-ADA Generator with random weights, in NVIDIA's layout: the mapping's layers at
  learning-rate multiplier mapping_lr, and the MappingNetwork's _init_kwargs (none by default, as
  when it was built with its default lr_multiplier 0.01)."""
  rng = np.random.default_rng(seed)
  resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
  lr = mapping_lr
  maps = {}
  if c_dim:
    maps["embed"] = _fc(rng, c_dim, w_dim)
  width = z_dim + (w_dim if c_dim else 0)
  for i in range(mapping_layers):
    maps[f"fc{i}"] = _fc(rng, width, w_dim, lr, lrelu=True)
    width = w_dim
  mapping = _module("MappingNetwork", buffers={"w_avg": rng.normal(size=w_dim)} if w_avg else {}, modules=maps,
                    z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_layers=mapping_layers, w_avg_beta=0.995 if w_avg else None,
                    **({"_init_kwargs": dict(mapping_kwargs)} if mapping_kwargs else {}))
  blocks = {}
  for i, r in enumerate(resolutions):
    cin, cout, last = (channels[i - 1] if i else 0), channels[i], r == resolution
    mods, params = {}, {}
    if cin == 0:
      params["const"] = rng.normal(size=(cout, r, r))
    else:
      mods["conv0"] = _layer(rng, cin, cout, w_dim, r, 2, conv_clamp, use_noise)
    mods["conv1"] = _layer(rng, cout, cout, w_dim, r, 1, conv_clamp, use_noise)
    if last or architecture == "skip":
      mods["torgb"] = _module("ToRGBLayer", {"weight": rng.normal(size=(3, cout, 1, 1)), "bias": 0.3 * rng.normal(size=3)},
                              modules={"affine": _fc(rng, w_dim, cout, bias_init=1.0)}, conv_clamp=conv_clamp,
                              weight_gain=1 / math.sqrt(cout))
    if architecture == "resnet" and cin:
      mods["skip"] = _module("Conv2dLayer", {"weight": rng.normal(size=(cout, cin, 1, 1))}, {"resample_filter": _filter()},
                             up=2, conv_clamp=None, activation="linear", weight_gain=1 / math.sqrt(cin))
    blocks[f"b{r}"] = _module("SynthesisBlock", params, {"resample_filter": _filter()}, mods, in_channels=cin,
                              resolution=r, is_last=last, architecture=architecture, use_fp16=False,
                              num_conv=1 if cin == 0 else 2, num_torgb=int(last or architecture == "skip"))
  synthesis = _module("SynthesisNetwork", modules=blocks, w_dim=w_dim, img_resolution=resolution,
                      block_resolutions=resolutions)
  init = {"z_dim": z_dim, "c_dim": c_dim, "w_dim": w_dim, "img_resolution": resolution, "img_channels": 3}
  return _module("Generator", modules={"synthesis": synthesis, "mapping": mapping}, _init_args=(),
                 _init_kwargs=dict(init), **init)


def snapshot(g_ema) -> dict:
  """A training snapshot's dict around a G_ema (G and D as stand-ins, as importers must ignore them)."""
  return dict(training_set_kwargs={"class_name": "training.dataset.ImageFolderDataset", "resolution": 16},
              G=g_ema, D=_module("Discriminator"), G_ema=g_ema, augment_pipe=None)
