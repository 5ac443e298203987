"""The Flax eye DCGAN against the original torch network (slow: needs torch and the wheel;
`make test-slow` installs torch and pip-downloads the wheel)."""
import importlib.util
import os
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from palmup.generators import eye_dcgan, torch_legacy

pytestmark = pytest.mark.slow


def test_matches_torch(tmp_path):
  torch = pytest.importorskip("torch")
  wheel = os.environ.get("PALMUP_EYE_WHEEL")
  if not wheel:
    pytest.skip("set PALMUP_EYE_WHEEL to the omniart_eye_generator wheel (make test-slow does)")
  with zipfile.ZipFile(wheel) as whl:
    whl.extractall(tmp_path)
  spec = importlib.util.spec_from_file_location("eye_torch", tmp_path / "omniart_eye_generator/generator.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  weights = tmp_path / eye_dcgan.WEIGHTS_IN_WHEEL
  torch_sd = torch.load(weights, map_location="cpu", weights_only=False)
  net = module.Generator()
  net.load_state_dict(torch_sd)
  net.eval()

  ours = torch_legacy.load(weights)
  assert set(ours) == set(torch_sd)
  for k, v in torch_sd.items():
    np.testing.assert_array_equal(ours[k], v.numpy())

  z = np.random.default_rng(0).normal(size=(8, 100)).astype(np.float32)
  y = np.arange(8)
  with torch.no_grad():
    expected = net(torch.from_numpy(z).view(8, 100, 1, 1), torch.eye(8)[y]).numpy().transpose(0, 2, 3, 1)
  got = eye_dcgan.make_generator().apply(eye_dcgan.params_from_state_dict(ours), jnp.asarray(z), jnp.asarray(y))
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)
