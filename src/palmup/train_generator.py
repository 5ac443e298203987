"""`palmup train-generator`: a class-conditional StyleGAN2-style GAN on a labelled dataset.

Objective: non-saturating logistic loss with a lazy R1 penalty on real images (every
`r1_every` steps, scaled by r1_every as in StyleGAN2), Adam(beta1=0, beta2=0.99), and an
exponential moving average of the generator weights (half-life `ema_kimg` thousand images,
ramped up over the first steps). The EMA generator is what gets exported.

Workdir: checkpoints/ (orbax, resumable), samples/step_*.png (a class x sample grid),
metrics.jsonl, generator/ (the exported EMA generator, loadable by palmup.generators.load),
quality.json (from the quality evaluator, when config.eval.enabled).
"""
from __future__ import annotations

import itertools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from palmup import config_checks
from palmup import data as data_lib
from palmup import checkpoints, generators, viz, workdirs
from palmup.data import transforms
from palmup.generators.stylegan import ProjectionDiscriminator


@flax.struct.dataclass
class GANState:
  step: jax.Array
  g_params: dict
  d_params: dict
  g_ema: dict
  g_opt: optax.OptState
  d_opt: optax.OptState
  key: jax.Array


def validate(config):
  config_checks.require(config.data.name in data_lib.BUILTIN or config.data.data_dir is not None, "data.name",
             config.data.name, f"a built-in dataset ({', '.join(data_lib.BUILTIN)}) or a tfds name with data.data_dir set")
  config_checks.one_of(config, "data.channels", [1, 3])
  config_checks.one_of(config, "model.resolution", [8, 16, 32, 64, 128, 256])
  config_checks.require(len(config.model.channels) == config.model.resolution.bit_length() - 2, "model.channels",
             config.model.channels, f"{config.model.resolution.bit_length() - 2} widths (4x4 up to the resolution)")
  config_checks.require(len(config.model.d_channels) == len(config.model.channels), "model.d_channels",
             config.model.d_channels, f"{len(config.model.channels)} widths, like model.channels")
  for key in ("model.latent_dim", "model.w_dim", "train.batch_size", "train.steps", "train.lr",
              "train.r1_every", "train.ema_kimg", "log_every", "checkpoint_every", "sample_every"):
    config_checks.positive(config, key)
  config_checks.positive(config, "train.r1_gamma", allow_zero=True)
  config_checks.in_range(config, "train.beta1", 0.0, 0.999)


def build(config, num_classes: int, class_names=()):
  """(Generator, discriminator module) from config.model."""
  m = config.model
  gen = generators.make("stylegan", m.latent_dim, dict(
      num_classes=num_classes, resolution=m.resolution, out_channels=config.data.channels,
      channels=tuple(m.channels), w_dim=m.w_dim, mapping_layers=m.mapping_layers,
      fast_weight_grad=m.fast_weight_grad), class_names)
  disc = ProjectionDiscriminator(num_classes, tuple(m.d_channels), fast_weight_grad=m.fast_weight_grad)
  return gen, disc


def init_state(config, gen, disc, key) -> GANState:
  kg, kd, key = jax.random.split(key, 3)
  g_params = gen.init(kg)
  x = jnp.zeros((1,) + gen.image_shape)
  d_params = disc.init(kd, x, jnp.zeros((1,), jnp.int32))["params"]
  opt = _optimizer(config)
  g_ema = jax.tree.map(jnp.copy, g_params)  # distinct buffers: the step donates its state
  return GANState(jnp.zeros((), jnp.int32), g_params, d_params, g_ema, opt.init(g_params),
                  opt.init(d_params), key)


def _optimizer(config):
  t = config.train
  return optax.adam(t.lr, b1=t.beta1, b2=0.99, eps=1e-8)


def make_train_step(config, gen, disc, with_r1: bool):
  """Returns step(state, images uint8 [B, h, w, c], labels [B]) -> (state, metrics): one D update
  (with the R1 penalty if `with_r1`) and one G update. Images are resized to the generator's
  resolution inside (transforms.prepare). The R1 and plain steps are separate functions because a
  lax.cond around the double backward runs about 35x slower on XLA:CPU (measured: 38 s vs 1.1 s)."""
  t = config.train
  opt = _optimizer(config)
  res, ch = gen.image_shape[0], gen.image_shape[2]
  d_apply = lambda p, x, y: disc.apply({"params": p}, x, y)

  def d_loss(d_params, g_params, real, labels, z, with_r1):
    fake = gen.apply(g_params, z, labels)
    logits_fake = d_apply(d_params, fake, labels)
    if with_r1:
      logits_real, vjp = jax.vjp(lambda x: d_apply(d_params, x, labels), real)
      (grad_x,) = vjp(jnp.ones_like(logits_real))
      r1 = jnp.sum(jnp.square(grad_x), axis=(1, 2, 3)).mean()
    else:
      logits_real, r1 = d_apply(d_params, real, labels), jnp.zeros(())
    adv = jax.nn.softplus(logits_fake).mean() + jax.nn.softplus(-logits_real).mean()
    total = adv + (0.5 * t.r1_gamma * t.r1_every) * r1
    return total, dict(d_loss=adv, r1=r1, d_real=logits_real.mean(), d_fake=logits_fake.mean())

  def g_loss(g_params, d_params, labels, z):
    return jax.nn.softplus(-d_apply(d_params, gen.apply(g_params, z, labels), labels)).mean()

  def step(state: GANState, images, labels):
    key, kz1, kz2 = jax.random.split(state.key, 3)
    real = transforms.prepare(images, res, ch)
    b = real.shape[0]
    d_grads, d_metrics = jax.grad(d_loss, has_aux=True)(
        state.d_params, state.g_params, real, labels, jax.random.normal(kz1, (b, gen.latent_dim)), with_r1)
    d_updates, d_opt = opt.update(d_grads, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)

    g_value, g_grads = jax.value_and_grad(g_loss)(
        state.g_params, d_params, labels, jax.random.normal(kz2, (b, gen.latent_dim)))
    g_updates, g_opt = opt.update(g_grads, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)

    images_seen = (state.step + 1).astype(jnp.float32) * b
    half_life = jnp.minimum(t.ema_kimg * 1000.0, images_seen * t.ema_rampup)
    beta = 0.5 ** (b / jnp.maximum(half_life, 1e-8))
    g_ema = jax.tree.map(lambda e, p: beta * e + (1 - beta) * p, state.g_ema, g_params)
    new = GANState(state.step + 1, g_params, d_params, g_ema, g_opt, d_opt, key)
    return new, dict(d_metrics, g_loss=g_value)

  return step


def main(config, workdir):
  validate(config)
  workdir = workdirs.create(workdir)
  ds = data_lib.load(config.data.name, "train", config.data.data_dir)
  gen, disc = build(config, ds.num_classes, tuple(config.data.class_names))
  state = init_state(config, gen, disc, jax.random.PRNGKey(config.seed))
  ckpt = checkpoints.Checkpoints(workdir, keep=2, interval=config.checkpoint_every)
  restored, start = ckpt.restore(state)
  if restored is not None:
    state = restored
    print(f"resumed from step {start}")
  workdirs.write_config(workdir, config)
  plain_step, r1_step = (jax.jit(make_train_step(config, gen, disc, r1), donate_argnums=0)
                         for r1 in (False, True))
  per_epoch = len(ds) // config.train.batch_size
  stream = itertools.islice(
      data_lib.batches(ds, config.train.batch_size, config.seed, epochs=None, start_epoch=start // per_epoch),
      start % per_epoch, None)
  writer = workdirs.MetricWriter(workdir, resume_step=start)
  bar = workdirs.progress(config.train.steps, "train-generator", initial=start)
  last_r1 = jnp.zeros(())
  for step in range(start + 1, config.train.steps + 1):
    images, labels = next(stream)
    use_r1 = config.train.r1_gamma > 0 and (step - 1) % config.train.r1_every == 0
    state, metrics = (r1_step if use_r1 else plain_step)(state, images, labels)
    last_r1 = metrics["r1"] if use_r1 else last_r1  # plain steps report r1 = 0
    if step % config.log_every == 0:
      metrics = jax.device_get(dict(metrics, r1=last_r1))
      if not all(np.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"non-finite GAN loss at step {step}: {metrics}; last good checkpoint "
                                 f"is step {ckpt.last_good} in {ckpt.directory}")
      writer.write(step, metrics)
      bar.set_postfix({k: f"{float(v):.3f}" for k, v in metrics.items() if k in ("d_loss", "g_loss")})
    if step % config.sample_every == 0 or step == config.train.steps:
      viz.save_png(workdir / "samples" / f"step_{step:07d}.png", generators.class_grid(gen, state.g_ema, 8), scale=2)
    ckpt.save(step, state)
    bar.update(1)
  bar.close()
  ckpt.close()
  writer.close()
  generators.save(workdir / "generator", gen, state.g_ema,
                  {"trained_with": {"dataset": config.data.name, "steps": int(config.train.steps),
                                    "batch_size": int(config.train.batch_size)}})
  print(f"exported generator to {workdir / 'generator'}")
  if config.eval.enabled:
    from palmup.evaluators import generator_quality
    generator_quality.evaluate_and_write(str(workdir / "generator"), config.data.name, config.eval, workdir,
                                         config.data.data_dir)
