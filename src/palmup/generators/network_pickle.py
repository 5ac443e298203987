"""Reads NVIDIA's StyleGAN2-ADA network pickles as data: no torch, and no code from the file runs.

A network pickle (NVlabs/stylegan2-ada-pytorch, `network-snapshot-*.pkl` and the pretrained
`cifar10.pkl` etc.) is `dict(G, D, G_ema, augment_pipe, training_set_kwargs)`. Each network is a
`torch_utils.persistence` object: the global `_reconstruct_persistent_obj` applied to a `meta` dict
holding `module_src` (NVIDIA's Python source, which their loader executes) and `state` (the torch
module's `__dict__`: `_parameters`, `_buffers`, `_modules`, `_init_kwargs`, plain attributes).
Tensors are `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` over storages pickled as
`torch.storage._load_from_bytes(payload)`, each payload a legacy `torch.save` of the storage
(read by palmup.generators.torch_legacy).

`load(path)` allows exactly those globals plus the plain containers the format uses, and refuses
any other global with one line naming it, before it can be called. A persistent object becomes a
`Module` record (class name, parameters, buffers, submodules, attributes); its `module_src` is
dropped unread. Nothing is imported from `torch_utils`, `dnnlib` or `torch`.
"""
from __future__ import annotations

import collections
import dataclasses
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from palmup.errors import UserError
from palmup.generators import torch_legacy

HINT = ("palmup reads StyleGAN2-ADA network pickles (NVlabs/stylegan2-ada-pytorch: a training "
        "snapshot or a pretrained .pkl such as cifar10.pkl)")


class MissingEntry(UserError, KeyError):
  """The pickle lacks a parameter, buffer, submodule or attribute that a reader asked for."""

  def __str__(self):
    return self.args[0]


class Entries(dict):
  """A module's parameters, buffers, submodules or attributes: a missing key raises MissingEntry
  naming it, so that a reader tells a pickle's missing entry from its own KeyError."""

  def __init__(self, kind: str, items):
    super().__init__(items)
    self.kind = kind

  def __missing__(self, key):
    raise MissingEntry(f"no {self.kind} {key!r} (it has: {', '.join(map(str, self)) or 'none'})")


@dataclasses.dataclass
class Module:
  """A torch module of the pickle, as data. Tensors are numpy arrays."""
  class_name: str
  parameters: dict[str, np.ndarray]
  buffers: dict[str, np.ndarray]
  modules: dict[str, "Module"]
  attrs: dict[str, Any]  # the module's other attributes, `init_kwargs` included

  def path(self, dotted: str) -> "Module":
    """The submodule at 'a.b.c'."""
    node = self
    for part in dotted.split("."):
      node = node.modules[part]
    return node


class _EasyDict(dict):
  """dnnlib.util.EasyDict (a dict) as data; the official pickles' `_init_kwargs` are EasyDicts."""

  def __setstate__(self, state):
    if state:
      raise pickle.UnpicklingError("refusing an EasyDict with attribute state")


def _persistent_obj(meta):
  """torch_utils.persistence._reconstruct_persistent_obj, without executing meta['module_src']."""
  if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
    raise pickle.UnpicklingError("a persistent object whose meta is not {'type': 'class', 'state': {...}}")
  state = meta["state"]
  known = ("_parameters", "_buffers", "_modules")
  entries = lambda kind, d: Entries(kind, {k: v for k, v in dict(d or {}).items() if v is not None})
  return Module(class_name=str(meta.get("class_name")), parameters=entries("parameter", state.get("_parameters")),
                buffers=entries("buffer", state.get("_buffers")), modules=entries("submodule", state.get("_modules")),
                attrs=Entries("attribute", {k: v for k, v in state.items() if k not in known}))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
  if not isinstance(storage, np.ndarray):
    raise pickle.UnpicklingError("a tensor whose storage is not a stored array")
  return torch_legacy.strided(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
  if not isinstance(data, np.ndarray):
    raise pickle.UnpicklingError("a parameter whose data is not a tensor")
  return data


def _load_from_bytes(payload: bytes):
  if not isinstance(payload, bytes):
    raise pickle.UnpicklingError("a tensor storage that is not bytes")
  return torch_legacy.read_storage(payload)


def _numpy_dtype(name, align=False, copy=True):
  dtype = np.dtype(name)
  if dtype.kind not in "biufc":
    raise pickle.UnpicklingError(f"refusing numpy dtype {name!r} (only numeric dtypes are data)")
  return dtype


def _numpy_scalar(dtype, data=b""):
  if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
    raise pickle.UnpicklingError("refusing a numpy scalar that is not a number")
  return np.frombuffer(data, dtype, count=1)[0].item()


ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("builtins", "set"): set,  # protocol <= 3 pickles sets through the set global
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # written by numpy 1
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,  # written by numpy 2
}


class _Unpickler(pickle.Unpickler):

  def find_class(self, module, name):
    if (module, name) in ALLOWED:
      return ALLOWED[(module, name)]
    if module.startswith("dnnlib.tflib"):
      raise UserError("is a TensorFlow-era StyleGAN pickle; convert it to a StyleGAN2-ADA PyTorch pickle "
                      "with NVIDIA's stylegan2-ada-pytorch `legacy.py` first (on a machine with torch)")
    raise UserError(f"refusing to load global {module}.{name}: it is not part of the StyleGAN2-ADA "
                    "network pickle format, and loading it could run code")

  def persistent_load(self, pid):
    raise UserError(f"refusing persistent id {str(pid)[:60]!r}: not part of the network pickle format")


def load(path: str | Path) -> dict[str, Any]:
  """The network pickle at `path` as data: its dict, with networks as `Module` records.
  Raises UserError (one line, naming the file) for a missing, non-pickle, truncated or hostile file."""
  path = Path(path).expanduser()
  if not path.is_file():
    raise UserError(f"{path}: no such file; give the path of a StyleGAN2-ADA network pickle (.pkl)")
  with open(path, "rb") as f:
    head = f.read(2)
    if len(head) < 2 or head[0] != 0x80:
      raise UserError(f"{path} is not a pickle; {HINT}")
    f.seek(0)
    try:
      data = _Unpickler(f).load()
    except UserError as e:
      raise UserError(f"{path} {e}" if str(e).startswith("is ") else f"{path}: {e}") from None
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, MemoryError) as e:
      truncated = isinstance(e, EOFError) or "truncated" in str(e)
      what = "is truncated (the download or copy did not finish?)" if truncated else f"cannot be read ({e})"
      raise UserError(f"{path} {what}; {HINT}") from None
  if not isinstance(data, dict):
    raise UserError(f"{path} holds a {type(data).__name__}, not a network pickle's dict; {HINT}")
  return data
