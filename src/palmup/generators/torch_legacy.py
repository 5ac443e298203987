"""Reads PyTorch's legacy (pre-1.6, non-zip) `torch.save` files with pickle and numpy alone.

Layout of such a file: four pickles (magic number, protocol version, system info, the object),
then a pickle of the storage keys in file order, then each storage's raw bytes prefixed by its
element count as int64. Tensors in the object refer to storages through `persistent_load` ids
('storage', type, key, device, numel[, view]) and are rebuilt by
torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...); we rebuild them as numpy views.
"""
from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
          "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
          "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _StorageType:
  def __init__(self, name: str):
    if name not in DTYPES:
      raise ValueError(f"unsupported torch storage type {name!r}; supported: {', '.join(DTYPES)}")
    self.dtype = np.dtype(DTYPES[name])


class _TensorRef:
  """A tensor whose storage is read after the object pickle; resolved by `load`."""

  def __init__(self, key, offset, size, stride):
    self.key, self.offset, self.size, self.stride = key, offset, tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
  return _TensorRef(storage, storage_offset, size, stride)


class _Unpickler(pickle.Unpickler):
  ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
             ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2}

  def __init__(self, f, storages: dict):
    super().__init__(f)
    self.storages = storages

  def find_class(self, module, name):
    if module == "torch" and name.endswith("Storage"):
      return _StorageType(name)
    if (module, name) in self.ALLOWED:
      return self.ALLOWED[(module, name)]
    raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a torch file")

  def persistent_load(self, pid):
    kind, storage_type, key, _location, numel = pid[:5]
    if kind != "storage" or len(pid) > 5 and pid[5] is not None:
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    self.storages.setdefault(key, (storage_type.dtype, numel))
    return key


def load(path: str | Path):
  """Returns the saved object with every tensor replaced by a numpy array (a copy)."""
  with open(path, "rb") as f:
    obj, data = _read(f, str(path))
  return _resolve(obj, data)


def read_storage(payload: bytes) -> np.ndarray:
  """One storage saved alone in the legacy format (what `torch.storage._load_from_bytes` reads in a
  pickled tensor) -> its elements, flat."""
  key, data = _read(io.BytesIO(payload), "a tensor storage")
  if not isinstance(key, str) or key not in data:
    raise ValueError("a tensor storage payload holds something other than one storage")
  return data[key]


def strided(flat: np.ndarray, offset: int, size, stride) -> np.ndarray:
  """The tensor view (offset, size, stride in elements) of a flat storage, as a copy."""
  item = flat.dtype.itemsize
  if offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
    raise ValueError(f"a tensor view (offset {offset}, size {tuple(size)}, stride {tuple(stride)}) has a negative "
                     "offset, size or stride")
  if 0 not in size and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= len(flat):
    raise ValueError(f"a tensor view (offset {offset}, size {tuple(size)}, stride {tuple(stride)}) "
                     f"runs past its storage of {len(flat)} elements")
  return np.array(np.lib.stride_tricks.as_strided(flat[offset:], tuple(size), [s * item for s in stride]))


def _read(f, name: str):
  """(object, {storage key: flat array}) of a legacy torch file open at its start."""
  if f.read(2) == b"PK":
    raise ValueError(f"{name} is a zip-format torch file; only the legacy format is supported")
  f.seek(0)
  storages: dict = {}
  load_one = lambda: _Unpickler(f, storages).load()
  if load_one() != MAGIC_NUMBER:
    raise ValueError(f"{name} is not a legacy torch file (bad magic number)")
  if load_one() != PROTOCOL_VERSION:
    raise ValueError(f"{name}: unsupported torch protocol version")
  sys_info = load_one()
  if not sys_info.get("little_endian", True):
    raise ValueError(f"{name} was written on a big-endian machine")
  obj = load_one()
  data = {}
  for key in load_one():
    dtype, numel = storages[key]
    (count,) = np.frombuffer(f.read(8), np.int64)
    if count != numel:
      raise ValueError(f"{name}: storage {key} holds {count} elements, expected {numel}")
    raw = f.read(int(count) * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
      raise ValueError(f"{name} is truncated (storage {key})")
    data[key] = np.frombuffer(raw, dtype)
  return obj, data


def _resolve(obj, data):
  if isinstance(obj, _TensorRef):
    return strided(data[obj.key], obj.offset, obj.size, obj.stride)
  if isinstance(obj, dict):
    return type(obj)((k, _resolve(v, data)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_resolve(v, data) for v in obj)
  return obj
