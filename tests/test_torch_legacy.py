"""The numpy-only reader of legacy torch files, on files written here with known tensors, and the
eye DCGAN mapping (transposed-conv orientation, eval-mode BatchNorm) against numpy references."""
import collections
import io
import pickle
import struct
import sys
import types

import jax.numpy as jnp
import numpy as np
import pytest

from palmup.generators import eye_dcgan, torch_legacy


class _Tensor:
  """Pickles like a torch tensor: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""
  def __init__(self, storage, offset, size, stride):
    self.args = (storage, offset, size, stride, False, collections.OrderedDict())

  def __reduce__(self):
    return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


def _fake_torch(monkeypatch):
  """Stand-in modules so that pickle writes references to torch._utils._rebuild_tensor_v2 and
  torch.FloatStorage / torch.LongStorage, exactly the globals a legacy torch file holds."""
  torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
  def _rebuild_tensor_v2(*args):
    raise AssertionError("never called while writing")
  _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  for name in ("FloatStorage", "LongStorage"):
    setattr(torch, name, type(name, (), {"__module__": "torch"}))
  monkeypatch.setitem(sys.modules, "torch", torch)
  monkeypatch.setitem(sys.modules, "torch._utils", utils)
  return torch


def _write_legacy(path, tensors, monkeypatch):
  """Writes {name: (flat base array, offset, size, stride)} the way
  torch.save(_use_new_zipfile_serialization=False) does: magic number, protocol version, system
  info, the state dict (storages as persistent ids), the storage keys, then each storage's raw
  bytes after its int64 element count."""
  torch = _fake_torch(monkeypatch)
  kinds = {np.dtype(np.float32): torch.FloatStorage, np.dtype(np.int64): torch.LongStorage}
  keys = {}  # id(base array) -> storage key

  class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
      if isinstance(obj, np.ndarray):
        return ("storage", kinds[obj.dtype], keys[id(obj)], "cpu", obj.size)
      return None

  buf = io.BytesIO()
  for header in (torch_legacy.MAGIC_NUMBER, torch_legacy.PROTOCOL_VERSION,
                 {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}):
    pickle.dump(header, buf, protocol=2)
  bases = []
  for base, *_ in tensors.values():
    if id(base) not in keys:
      keys[id(base)] = str(len(bases))
      bases.append(base)
  state = collections.OrderedDict((k, _Tensor(*v)) for k, v in tensors.items())
  Pickler(buf, protocol=2).dump(state)
  pickle.dump([keys[id(b)] for b in bases], buf, protocol=2)
  for b in bases:
    buf.write(struct.pack("<q", b.size) + b.tobytes())
  path.write_bytes(buf.getvalue())


def test_reads_tensors_views_and_dtypes(tmp_path, monkeypatch):
  floats = np.arange(24, dtype=np.float32)
  longs = np.array([7, -3], np.int64)
  tensors = {
      "w": (floats, 0, (2, 3, 4), (12, 4, 1)),
      "view": (floats, 2, (3, 2), (1, 3)),       # transposed view with an offset, same storage
      "n": (longs, 1, (), ()),
  }
  path = tmp_path / "legacy.pth"
  _write_legacy(path, tensors, monkeypatch)
  sd = torch_legacy.load(path)
  assert list(sd) == ["w", "view", "n"]
  np.testing.assert_array_equal(sd["w"], floats.reshape(2, 3, 4))
  np.testing.assert_array_equal(sd["view"], np.lib.stride_tricks.as_strided(floats[2:], (3, 2), (4, 12)))
  assert sd["n"].dtype == np.int64 and int(sd["n"]) == -3


def test_rejects_truncated_and_foreign_files(tmp_path, monkeypatch):
  path = tmp_path / "legacy.pth"
  _write_legacy(path, {"w": (np.ones(10, np.float32), 0, (10,), (1,))}, monkeypatch)
  path.write_bytes(path.read_bytes()[:-8])
  with pytest.raises(ValueError, match="truncated"):
    torch_legacy.load(path)
  zip_file = tmp_path / "new.pth"
  zip_file.write_bytes(b"PK\x03\x04rest")
  with pytest.raises(ValueError, match="zip-format"):
    torch_legacy.load(zip_file)
  evil = tmp_path / "evil.pth"
  evil.write_bytes(pickle.dumps(torch_legacy.MAGIC_NUMBER, 2) + pickle.dumps(1001, 2) +
                   pickle.dumps({}, 2) + b"\x80\x02cos\nsystem\nq\x00.")
  with pytest.raises(pickle.UnpicklingError, match="refusing"):
    torch_legacy.load(evil)


def test_a_view_with_a_negative_offset_or_stride_is_refused_not_read_from_the_end(tmp_path, monkeypatch):
  """A hostile file's view (offset -2) would read the storage's last elements through numpy's
  negative indexing; it is refused, as a view running past the storage is."""
  flat = np.arange(10, dtype=np.float32)
  with pytest.raises(ValueError, match=r"offset -2, size \(2,\), stride \(1,\)\) has a negative"):
    torch_legacy.strided(flat, -2, (2,), (1,))
  with pytest.raises(ValueError, match="negative"):
    torch_legacy.strided(flat, 4, (2,), (-1,))
  path = tmp_path / "negative.pth"
  _write_legacy(path, {"w": (flat, -2, (2,), (1,))}, monkeypatch)
  with pytest.raises(ValueError, match="negative"):
    torch_legacy.load(path)


def _conv_transpose_reference(x, w, stride, padding):
  """torch ConvTranspose2d by definition (scatter-add), x [H, W, Cin], w [Cin, Cout, k, k]."""
  h, width, _ = x.shape
  cout, k = w.shape[1], w.shape[2]
  full = np.zeros(((h - 1) * stride + k, (width - 1) * stride + k, cout))
  for i in range(h):
    for j in range(width):
      full[i * stride:i * stride + k, j * stride:j * stride + k] += np.einsum("c,cokl->klo", x[i, j], w)
  return full[padding:full.shape[0] - padding, padding:full.shape[1] - padding]


@pytest.mark.parametrize("stride,padding,size", [(1, 0, 1), (2, 1, 3)])
def test_conv_transpose_matches_torch_definition(stride, padding, size):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(size, size, 3)).astype(np.float32)
  w = rng.normal(size=(3, 5, 4, 4)).astype(np.float32)
  kernel = eye_dcgan.params_from_state_dict(_zero_state_dict() | {"main.0.weight": w})["deconv0"]
  out = eye_dcgan.conv_transpose(jnp.asarray(x)[None], jnp.asarray(kernel), stride, padding)[0]
  np.testing.assert_allclose(out, _conv_transpose_reference(x, w, stride, padding), rtol=1e-4, atol=1e-4)


def _zero_state_dict():
  """The eye DCGAN's torch state dict with zero deconvs and BN (scale 2, mean -1, var 3)."""
  widths = (108, 1024, 512, 256, 128, 64, 3)
  sd = {}
  for i, t in enumerate(eye_dcgan.TORCH_INDICES):
    sd[f"main.{t}.weight"] = np.zeros((widths[i], widths[i + 1], 4, 4), np.float32)
    if i < 5:
      c = widths[i + 1]
      sd.update({f"main.{t + 1}.weight": np.full(c, 2.0, np.float32), f"main.{t + 1}.bias": np.zeros(c, np.float32),
                 f"main.{t + 1}.running_mean": np.full(c, -1.0, np.float32),
                 f"main.{t + 1}.running_var": np.full(c, 3.0, np.float32)})
  return sd


def test_state_dict_mapping_and_eval_batchnorm():
  """A random state dict in torch's layout maps to params with the right shapes, and BatchNorm
  uses running statistics: a network whose deconvs are zero outputs tanh(BN'd zeros) -> constant."""
  gen = eye_dcgan.make_generator()
  assert gen.image_shape == (128, 128, 3) and gen.latent_dim == 100 and gen.num_classes == 8
  params = eye_dcgan.params_from_state_dict(_zero_state_dict())
  shapes = jax_shapes(gen)
  assert {k: np.shape(v) if not isinstance(v, dict) else {kk: np.shape(vv) for kk, vv in v.items()}
          for k, v in params.items()} == shapes
  out = gen.apply(params, jnp.zeros((2, 100)), jnp.array([0, 7]))
  assert out.shape == (2, 128, 128, 3)
  np.testing.assert_allclose(out, 0.0, atol=1e-6)  # last deconv is zero: tanh(0)


def test_batchnorm_uses_running_statistics():
  x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype(np.float32)
  p = {"scale": np.array([1, 2, 3, 4], np.float32), "bias": np.ones(4, np.float32),
       "mean": np.full(4, 0.5, np.float32), "var": np.full(4, 2.0, np.float32)}
  out = eye_dcgan._BatchNormEval().apply({"params": p}, x)
  np.testing.assert_allclose(out, (x - 0.5) / np.sqrt(2.0 + 1e-5) * p["scale"] + 1, rtol=1e-5, atol=1e-6)


def jax_shapes(gen):
  import jax
  tree = jax.eval_shape(gen.init, jax.random.PRNGKey(0))
  return {k: v.shape if not isinstance(v, dict) else {kk: vv.shape for kk, vv in v.items()} for k, v in tree.items()}
