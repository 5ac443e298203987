"""The StyleGAN2-ADA port and importer: exact against NVIDIA's own outputs (shared reference), safe
against hostile pickles, one line for every bad input, and general over the format's shapes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import network_pickles as npk
from palmup import configs, generators
from palmup.errors import UserError
from palmup.generators import network_pickle, stylegan2_ada, stylegan2_ada_import as imp

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "stylegan2ada"
TOLERANCE = 1e-5  # of the outputs' scale (max |value|)


def map_ws(gen, params, z, y):
  """The mapped, truncated ws [B, num_ws, w_dim] of a stylegan2_ada Generator (NVIDIA's G.mapping)."""
  return gen.module.apply({"params": params}, z, y, method=lambda m, z, y: m.ws(m.map_w(z, y)))


def _cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.Popen([sys.executable, "-m", "palmup", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, cwd=ROOT)


def _import_args(source, workdir, *overrides):
  return ("import-generator", "--config", "configs/import_stylegan2ada.py", "--workdir", str(workdir),
          f"--config.source={source}", *overrides)


def reference(name: str) -> Path:
  """A file of the shared StyleGAN2-ADA reference (NVIDIA's outputs for cond32.pkl); every test that
  reads one skips when it is missing, saying which, and fails instead under CI."""
  path = REFERENCE / name
  if not path.exists():
    if os.environ.get("CI"):
      pytest.fail(f"{path} is missing: CI must have shared/reference/ beside the clone")
    pytest.skip(f"{path} is missing (the shared StyleGAN2-ADA reference, beside the clone)")
  return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  """cond32.pkl imported through the real CLI three ways (run concurrently): {name: workdir}."""
  reference("cond32.pkl")
  root = tmp_path_factory.mktemp("imports")
  runs = {"const": ("--config.class_names=cifar10",), "none": ("--config.noise_mode=none",),
          "psi07": ("--config.truncation_psi=0.7",)}
  procs = {k: _cli(*_import_args(reference("cond32.pkl"), root / k, *v)) for k, v in runs.items()}
  for k, p in procs.items():
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, f"import {k} failed:\n{err[-3000:]}"
  return {k: root / k for k in runs}


@pytest.mark.parametrize("run,image,ws", [("const", "img_const", "ws"), ("none", "img_none", "ws"),
                                          ("psi07", "img_psi07_const", "ws_psi07")])
def test_matches_nvidia_reference_through_the_cli(imported, run, image, ws):
  ref = np.load(reference("cond32_ref.npz"))
  gen, params = generators.load(str(imported[run] / "generator"))
  z, y = jnp.asarray(ref["z"]), jnp.asarray(ref["labels"])
  out = np.asarray(jax.jit(gen.apply)(params, z, y)).transpose(0, 3, 1, 2)  # NHWC -> NVIDIA's NCHW
  expected = ref[image]
  assert out.shape == expected.shape == (8, 3, 32, 32)
  assert np.abs(out - expected).max() <= TOLERANCE * np.abs(expected).max()
  assert np.abs(expected).max() > 5  # raw outputs, not clamped to [-1, 1] (the perturbed weights reach ~14)
  mapped = np.asarray(map_ws(gen, params, z, y))
  assert np.abs(mapped - ref[ws]).max() <= TOLERANCE * np.abs(ref[ws]).max()


def test_import_writes_spec_samples_and_class_names(imported):
  spec = json.loads((imported["const"] / "generator" / "generator.json").read_text())
  assert spec["kind"] == "stylegan2_ada" and spec["latent_dim"] == 64
  assert spec["kwargs"]["truncation_psi"] == 1.0 and spec["kwargs"]["noise_mode"] == "const"
  assert spec["kwargs"]["conv_clamp"] == 256 and spec["kwargs"]["architecture"] == "skip"
  assert spec["class_names"][:2] == ["airplane", "automobile"] and len(spec["class_names"]) == 10
  none = json.loads((imported["none"] / "generator" / "generator.json").read_text())
  assert none["kwargs"]["noise_mode"] == "none" and none["class_names"][0] == "class_0"
  from PIL import Image
  grid = np.asarray(Image.open(imported["const"] / "samples.png"))
  assert grid.shape[0] > 10 * 32 and grid.shape[1] > 8 * 32 and grid.std() > 10  # 10 rows of 8, not blank


def test_truncation_cutoff_matches_reference():
  ref = np.load(reference("cond32_ref.npz"))
  config = configs.load("import_stylegan2ada", source="x", truncation_psi=0.5, truncation_cutoff=2)
  gen, params = imp.build(*imp.convert(network_pickle.load(reference("cond32.pkl"))["G_ema"]), config)
  mapped = np.asarray(map_ws(gen, params, jnp.asarray(ref["z"]), jnp.asarray(ref["labels"])))
  np.testing.assert_allclose(mapped, ref["ws_psi05_cut2"], atol=TOLERANCE * np.abs(ref["ws"]).max())
  assert not np.allclose(mapped[:, 2:], ref["ws_psi07"][:, 2:])


def _config(**overrides):
  return configs.load("import_stylegan2ada", **{"source": "x", **overrides})


def _import(path, workdir, **overrides):
  imp.import_main(_config(source=str(path), **overrides), str(workdir))


def test_hostile_global_is_refused_before_it_runs(tmp_path):
  marker = tmp_path / "pwned"
  evil = tmp_path / "evil.pkl"
  cmd = f"touch {marker}".encode()
  evil.write_bytes(b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R.")  # os.system(cmd)
  with pytest.raises(UserError) as e:
    _import(evil, tmp_path / "w")
  assert "refusing to load global os.system" in str(e.value) and "\n" not in str(e.value)
  assert not marker.exists() and not (tmp_path / "w").exists()
  out = _cli(*_import_args(evil, tmp_path / "w2"))
  _, err = out.communicate(timeout=300)
  assert out.returncode == 1 and not marker.exists() and not (tmp_path / "w2").exists()
  assert err.strip().splitlines()[-1].startswith("palmup import-generator: ") and "os.system" in err


def test_module_src_is_never_executed(tmp_path, monkeypatch):
  marker = tmp_path / "pwned"
  src = f"open({str(marker)!r}, 'w').write('ran')\nclass Generator: pass\n"
  g = npk.Persistent("Generator", {"_modules": {}, "_parameters": {}, "_buffers": {}}, module_src=src)
  path = tmp_path / "src.pkl"
  path.write_bytes(npk.dumps(npk.snapshot(g), monkeypatch))
  data = network_pickle.load(path)
  assert isinstance(data["G_ema"], network_pickle.Module) and not marker.exists()
  assert "module_src" not in data["G_ema"].attrs
  with pytest.raises(UserError, match="not a StyleGAN2-ADA Generator"):
    _import(path, tmp_path / "w")
  assert not marker.exists() and not (tmp_path / "w").exists()


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, monkeypatch):
  tf_era = tmp_path / "tf.pkl"
  tf_era.write_bytes(b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01}q\x02b.")
  text = tmp_path / "notes.pkl"
  text.write_text("not a pickle at all")
  truncated = tmp_path / "half.pkl"
  truncated.write_bytes(reference("cond32.pkl").read_bytes()[:1_000_000])
  no_g_ema = tmp_path / "no_g_ema.pkl"
  no_g_ema.write_bytes(npk.dumps({"G": npk.generator_state(), "D": None}, monkeypatch))
  sg3_synthesis = npk.Persistent("SynthesisNetwork", {"_modules": {"input": npk.Persistent("SynthesisInput", {}),
                                                                   "L0_36_512": npk.Persistent("SynthesisLayer", {})}})
  sg3 = tmp_path / "sg3.pkl"
  sg3.write_bytes(npk.dumps(npk.snapshot(npk.Persistent("Generator", {"_modules": {
      "synthesis": sg3_synthesis, "mapping": npk.Persistent("MappingNetwork", {})}})), monkeypatch))
  cases = {tmp_path / "missing.pkl": "no such file", text: "is not a pickle", truncated: "is truncated",
           no_g_ema: "has no G_ema", sg3: "StyleGAN3", tf_era: "TensorFlow-era"}
  for path, message in cases.items():
    with pytest.raises(UserError, match=message) as e:
      _import(path, tmp_path / "w")
    assert str(path) in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert not (tmp_path / "w").exists()


def test_the_mapping_lr_comes_from_how_it_was_built_and_a_port_bug_keeps_its_traceback(tmp_path, monkeypatch):
  """The mapping's learning-rate multiplier is its MappingNetwork's lr_multiplier (default 0.01), and
  each layer's stored gains are checked against it: layers whose gains say 0.02 in a mapping built
  with the default are refused (the lr used to be read from fc0's own bias gain, then checked against
  itself). Only the pickle's own missing entries become the one-line layout error; an error of the
  port itself (here a TypeError) keeps its traceback."""
  def write(name, **shape):
    path = tmp_path / name
    path.write_bytes(npk.dumps(npk.snapshot(npk.generator_state(**shape)), monkeypatch, protocol=3))
    return path
  with pytest.raises(UserError, match=r"mapping.fc0 has weight gain .* / bias gain 0.02, not .* with lr 0.01"):
    _import(write("lr.pkl", mapping_lr=0.02), tmp_path / "w")
  kwargs, _ = imp.convert(network_pickle.load(write("lr_built.pkl", mapping_lr=0.02,
                                                    mapping_kwargs={"lr_multiplier": 0.02}))["G_ema"])
  assert kwargs["mapping_lr"] == 0.02
  good = write("good.pkl")
  def port_bug(*args):
    raise TypeError("a bug in the port")
  monkeypatch.setattr(imp, "_torgb", port_bug)
  with pytest.raises(TypeError, match="a bug in the port"):
    _import(good, tmp_path / "w2")
  monkeypatch.undo()
  no_fc0 = npk.generator_state()
  del no_fc0.meta["state"]["_modules"]["mapping"].meta["state"]["_modules"]["fc0"]
  path = tmp_path / "no_fc0.pkl"
  path.write_bytes(npk.dumps(npk.snapshot(no_fc0), monkeypatch, protocol=3))
  with pytest.raises(UserError, match=r"a G_ema whose layout is not StyleGAN2-ADA's \(no submodule 'fc0' \(it has: "):
    _import(path, tmp_path / "w3")


def test_bad_config_values_are_named():
  for key, value, valid in (("noise_mode", "random", "'const', 'none'"), ("truncation_psi", 1.5, "in \\[0"),
                            ("dtype", "float16", "'float32', 'bfloat16'")):
    with pytest.raises(UserError, match=f"config.{key}=.*invalid; valid: .*{valid}"):
      imp.import_main(_config(**{key: value}), "unused")


def _convert(monkeypatch, tmp_path, **shape):
  """A generator of the given shape written as a real network pickle, read back and converted."""
  path = tmp_path / "g.pkl"
  path.write_bytes(npk.dumps(npk.snapshot(npk.generator_state(**shape)), monkeypatch, protocol=3))
  return imp.convert(network_pickle.load(path)["G_ema"])


@pytest.mark.parametrize("shape", [
    dict(resolution=16, c_dim=3, architecture="resnet", channels=(32, 16, 8), mapping_layers=4),
    dict(resolution=8, c_dim=0, architecture="skip", channels=(8, 8), conv_clamp=4.0, use_noise=False, w_avg=False),
    dict(resolution=16, c_dim=5, architecture="orig", channels=(8, 8, 8), mapping_layers=1, z_dim=4, w_dim=12),
])
def test_other_shapes_convert_and_fused_equals_non_fused(monkeypatch, tmp_path, shape):
  kwargs, params = _convert(monkeypatch, tmp_path, **shape)
  gen, params = imp.build(kwargs, params, _config())
  r = shape["resolution"]
  assert gen.image_shape == (r, r, 3) and gen.num_classes == max(shape["c_dim"], 1)
  assert kwargs["mapping_layers"] == shape.get("mapping_layers", 2) and kwargs["channels"] == list(shape["channels"])
  z = jax.random.normal(jax.random.PRNGKey(0), (4, gen.latent_dim))
  y = jnp.arange(4) % gen.num_classes
  out = gen.apply(params, z, y)
  assert map_ws(gen, params, z, y).shape == (4, stylegan2_ada.num_ws(r), kwargs["w_dim"])
  fused = generators.make("stylegan2_ada", gen.latent_dim, {**_spec(gen), "fused_modconv": True})
  np.testing.assert_allclose(fused.apply(params, z, y), out, rtol=1e-4, atol=1e-4 * float(jnp.abs(out).max()))
  if shape["c_dim"]:
    assert not np.allclose(gen.apply(params, z, (y + 1) % gen.num_classes), out)  # the class matters
  with pytest.raises(UserError, match="truncation_psi") if not shape.get("w_avg", True) else _nothing():
    imp.build(kwargs, params, _config(truncation_psi=0.7))


def test_conv_clamp_bites(monkeypatch, tmp_path):
  """'orig' decodes with the last ToRGB only, so a clamp of 0.3 bounds every pixel by 0.3 and is
  reached; without the clamp the same weights go far past it."""
  shape = dict(resolution=8, c_dim=2, architecture="orig", channels=(8, 8))
  z = jax.random.normal(jax.random.PRNGKey(1), (6, 8))
  outs = {}
  for clamp in (0.3, None):
    gen, params = imp.build(*_convert(monkeypatch, tmp_path, conv_clamp=clamp, **shape), _config())
    outs[clamp] = np.asarray(gen.apply(params, z, jnp.arange(6) % 2))
  assert np.abs(outs[0.3]).max() == pytest.approx(0.3) and np.mean(np.abs(outs[0.3]) == np.float32(0.3)) > 0.2
  assert np.abs(outs[None]).max() > 1.0


def test_bfloat16_is_close_to_float32():
  gen, params = imp.build(*imp.convert(network_pickle.load(reference("cond32.pkl"))["G_ema"]), _config())
  bf16 = generators.make("stylegan2_ada", gen.latent_dim, {**_spec(gen), "dtype": "bfloat16"})
  z = jax.random.normal(jax.random.PRNGKey(0), (16, gen.latent_dim))
  a, b = gen.apply(params, z, jnp.arange(16) % 10), bf16.apply(params, z, jnp.arange(16) % 10)
  # bfloat16 convolutions (8 mantissa bits, float32 accumulation): measured 0.4% of the outputs'
  # mean magnitude on average and 0.6% of their scale at worst here; not exact
  mean_err, max_err = float(jnp.abs(a - b).mean() / jnp.abs(a).mean()), float(jnp.abs(a - b).max() / jnp.abs(a).max())
  assert 0 < mean_err < 0.005 and max_err < 0.01, (mean_err, max_err)


def _spec(gen):
  return generators._spec(gen)["kwargs"]


class _nothing:
  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False


@pytest.mark.slow  # about 55 s; `make test-slow` (the default suite pretrains the recipe in the sweep test below)
def test_paper_recipe_pretrains_and_evaluates_in_the_imported_world(imported, tmp_path):
  """configs/pretrain_cifar10_stylegan2ada.py unchanged but for its sizes, in the imported shared
  pickle: the env, the fused loop (CIFAR ResNet-18, bfloat16), checkpoints and `palmup evaluate`."""
  from palmup import evaluate, pretrain_job
  config = configs.load("pretrain_cifar10_stylegan2ada", **{
      "generator": str(imported["const"] / "generator"), "num_envs": 8, "replay.capacity": 8,
      "replay.batch_size": 16, "learner.encoder.width": 4, "learner.head_hidden": 16, "learner.head_out": 8,
      "learner.pair_offset": 1, "agent.hidden": 16, "agent.feature_dim": 8, "agent.seed_steps": 1, "apt.k": 4,
      "train.steps": 2, "train.chunk_steps": 2, "train.checkpoint_every": 1, "log.strip_every": 1})
  assert (config.learner.encoder.name, config.learner.encoder.stem, config.learner.dtype, config.obs_size) == (
      "resnet18", "cifar", "bfloat16", 32)
  run = tmp_path / "run"
  pretrain_job.main(config, run)
  rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
  assert rows[-1]["step"] == 2 and all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
  from PIL import Image
  strip = np.asarray(Image.open(sorted((run / "strips").glob("*.png"))[-1]))
  assert strip.ndim == 3 and strip.shape[2] == 3 and strip.std() > 5  # RGB frames of the world, not blank
  evaluate.main(configs.load("evaluate", **{
      "encoders": str(run), "datasets": "digits", "probe.train_examples": 300, "probe.random_seeds": 1,
      "probe.logistic.steps": 20, "probe.logistic.l2_grid": (1e-3,), "probe.ridge.l2_grid": (10.0,),
      "probe.few_shot.shots": (1,), "probe.few_shot.seeds": 1}), tmp_path / "eval")
  result = json.loads((tmp_path / "eval" / "evaluate.json").read_text())
  assert "digits" in json.dumps(result)


def test_w_space_splits_apply_exactly_and_the_env_plays_in_it():
  """apply = synthesize o map (truncation included); an env with latent_space='w' has w-sized
  latents and actions, and at ema 0 with no action a step decodes the mapping of a fresh z of the
  episode's class, i.e. exactly gen.apply of that z."""
  from palmup.env import EnvParams, make_env
  gen, params = imp.build(*imp.convert(network_pickle.load(reference("cond32.pkl"))["G_ema"]),
                          _config(truncation_psi=0.7))
  z = jax.random.normal(jax.random.PRNGKey(0), (3, gen.latent_dim))
  y = jnp.array([0, 4, 9])
  np.testing.assert_allclose(gen.synthesize(params, gen.map(params, z, y)), gen.apply(params, z, y), atol=1e-5)
  env = make_env(gen, params, 32, "w")
  assert env.latent_dim == gen.w_dim == 64
  key = jax.random.PRNGKey(3)
  obs, state = env.reset(key, EnvParams())
  assert obs.shape == (32, 32, 3) and state.z.shape == (64,)
  fresh = EnvParams(ema=0.0, action_weight=0.0)
  obs2, state2, *_ = env.step(key, state, jnp.zeros(64), fresh)
  z_fresh = jax.random.normal(jax.random.split(key, 3)[0], (gen.latent_dim,))
  from palmup.data import transforms
  expected = transforms.to_uint8(gen.apply(params, z_fresh[None], state.label[None]))[0]
  assert np.abs(np.asarray(obs2, np.int32) - np.asarray(expected, np.int32)).max() <= 1
  centre = env.decode(jnp.zeros(64), state.label)  # latent 0 in W is w_avg: the mean image
  assert not np.array_equal(centre, obs2)


def test_w_space_is_refused_where_there_is_none(tiny_gen):
  from palmup.env import make_env
  with pytest.raises(UserError, match=r"config.latent_space='w' is invalid; valid: 'z' \(the stylegan generator has no W space"):
    make_env(*tiny_gen, 8, "w")
  with pytest.raises(UserError, match=r"config.latent_space='x' is invalid; valid: 'z' or 'w'"):
    make_env(*tiny_gen, 8, "x")


def test_tiny_pretrain_in_w_space_of_the_imported_world(imported, tmp_path):
  from palmup import pretrain_job
  config = configs.load("pretrain_tiny", **{"generator": str(imported["const"] / "generator"), "latent_space": "w",
                                            "log.judge": "", "train.steps": 3})
  pretrain_job.main(config, tmp_path / "run")
  rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert rows[-1]["step"] == 3 and (tmp_path / "run" / "encoder").exists()


def test_a_pickle_without_the_optional_attributes_converts_the_same(monkeypatch, tmp_path):
  """Gains, activations, paddings, block lists and flags that an older networks.py might not store
  are taken from the port's formulas: the same params and outputs as with them."""
  optional = {"padding", "act_gain", "up", "use_noise", "block_resolutions", "in_channels", "weight_gain",
              "bias_gain", "activation", "architecture", "num_layers"}

  def strip(p):
    p.meta["state"] = {k: v for k, v in p.meta["state"].items() if k not in optional}
    for child in p.meta["state"]["_modules"].values():
      strip(child)
    return p

  shape = dict(resolution=8, c_dim=2, channels=(8, 8), conv_clamp=2.0)
  full, bare = tmp_path / "full.pkl", tmp_path / "bare.pkl"
  full.write_bytes(npk.dumps(npk.snapshot(npk.generator_state(**shape)), monkeypatch))
  bare.write_bytes(npk.dumps(npk.snapshot(strip(npk.generator_state(**shape))), monkeypatch))
  assert "padding" not in network_pickle.load(bare)["G_ema"].path("synthesis.b8.conv0").attrs
  (kw_full, p_full), (kw_bare, p_bare) = (imp.convert(network_pickle.load(f)["G_ema"]) for f in (full, bare))
  assert kw_full == kw_bare
  jax.tree.map(np.testing.assert_array_equal, p_full, p_bare)


def test_the_cifar10_dynamics_sweep_runs_two_members_as_one_population_in_the_imported_world(imported, tmp_path):
  """configs/sweep_cifar10_dynamics.py, validated as written but for tiny sizes on the shared
  pickle: its base and one ema setting, 2 steps each, run as one population (its own default for
  a pod is one run at a time)."""
  from palmup import sweep
  tiny = (f"generator={imported['const'] / 'generator'};num_envs=8;replay.capacity=8;replay.batch_size=16;"
          "learner.encoder.width=4;learner.head_hidden=16;learner.head_out=8;learner.pair_offset=1;agent.hidden=16;"
          "agent.feature_dim=8;agent.seed_steps=1;apt.k=4;train.steps=2;train.chunk_steps=2")
  config = configs.load("sweep_cifar10_dynamics", overrides=tiny, axes="env.ema=0.5", seeds=1, data_dir=str(tmp_path),
                        **{"population.enabled": "auto"})
  sweep.validate(config)
  lines = []
  assert sweep.run_all(config, tmp_path, log=lines.append)
  assert "base seed 0, env.ema=0.5 seed 0: pretraining as one population" in lines[0]
  for run in ("base_seed0", "env.ema=0.5_seed0"):
    rows = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2 and np.isfinite(rows[-1]["knn_entropy"]) and (tmp_path / run / "encoder").exists()
