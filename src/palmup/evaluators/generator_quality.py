"""Quality of a class-conditional generator, judged by a classifier trained on real data.

1. Train a small CNN classifier on the real training split (at the generator's resolution and
   channels); report its accuracy on the real test split as the reference.
2. Conditional accuracy: the classifier's accuracy at recognising the conditioned class of
   generated samples (balanced over classes).
3. Frechet distance between Gaussians fitted to the classifier's penultimate features of
   generated samples and of the real test split (an FID computed in this classifier's feature
   space, so comparable only with numbers from the same classifier recipe). As a floor, the same
   distance between an equal number of real *training* images and the test split.
4. Train on generated, test on real: the same classifier recipe trained on the generated samples
   alone, scored on the real test split. It bounds what a model that only sees the generator's
   images can transfer to real data (compare with the reference of 1).

`palmup eval-generator --config configs/eval_generator_fashion_mnist.py --workdir DIR` writes
quality.json into DIR.
"""
from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg

from palmup import data as data_lib
from palmup import generators, workdirs
from palmup.data import transforms
from palmup.nn.layers import Conv


class Classifier(nn.Module):
  """images [B, R, R, C] in [-1, 1] -> (logits [B, num_classes], features [B, feature_dim])."""
  num_classes: int
  widths: tuple[int, ...] = (32, 64, 128)
  feature_dim: int = 128

  @nn.compact
  def __call__(self, x):
    for w in self.widths:
      x = nn.relu(Conv(w, kernel_size=3, stride=2, grad="taps")(x))
    features = nn.relu(nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes)(features), features


def train_classifier(ds: data_lib.ArrayDataset, size: int, channels: int, steps: int, batch_size: int,
                     seed: int):
  """Returns (module, params), trained with Adam(1e-3) on real images resized to `size`."""
  model = Classifier(ds.num_classes)
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, size, size, channels)))["params"]
  opt = optax.adam(1e-3)

  @jax.jit
  def step(params, opt_state, images, labels):
    def loss(p):
      logits, _ = model.apply({"params": p}, transforms.prepare(images, size, channels))
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    grads = jax.grad(loss)(params)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state

  opt_state = opt.init(params)
  stream = data_lib.batches(ds, batch_size, seed, epochs=None)
  for _ in range(steps):
    params, opt_state = step(params, opt_state, *next(stream))
  return model, params


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
  """Frechet distance between Gaussians fitted to feature sets a[N, D] and b[M, D]."""
  mu_a, mu_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * covmean))


def evaluate(gen_path: str, dataset: str, num_samples: int, classifier_steps: int, batch_size: int,
             seed: int, data_dir: str | None = None) -> dict:
  gen, gen_params = generators.load(gen_path)
  size, channels = gen.image_shape[0], gen.image_shape[2]
  train, test = (data_lib.load(dataset, s, data_dir) for s in ("train", "test"))
  if train.num_classes != gen.num_classes:
    raise ValueError(f"generator has {gen.num_classes} classes but {dataset} has {train.num_classes}")
  model, params = train_classifier(train, size, channels, classifier_steps, batch_size, seed)
  classify = jax.jit(lambda x: model.apply({"params": params}, transforms.prepare(x, size, channels)))
  generate = jax.jit(lambda z, y: transforms.to_uint8(gen.apply(gen_params, z, y)))

  def run(images):
    out = [jax.device_get(classify(images[i:i + batch_size])) for i in range(0, len(images), batch_size)]
    return np.concatenate([o[0] for o in out]).argmax(-1), np.concatenate([o[1] for o in out])

  test_pred, test_feat = run(test.images)
  labels = np.arange(num_samples) % gen.num_classes
  z = np.asarray(jax.random.normal(jax.random.PRNGKey(seed + 1), (num_samples, gen.latent_dim)))
  fake = np.concatenate([np.asarray(generate(z[i:i + batch_size], labels[i:i + batch_size]))
                         for i in range(0, num_samples, batch_size)])
  fake_pred, fake_feat = run(fake)
  generated = data_lib.ArrayDataset("generated", "train", fake, labels.astype(np.int32), gen.num_classes)
  g_model, g_params = train_classifier(generated, size, channels, classifier_steps, batch_size, seed + 2)
  classify_g = jax.jit(lambda x: g_model.apply({"params": g_params}, transforms.prepare(x, size, channels))[0])
  g_pred = np.concatenate([np.asarray(classify_g(test.images[i:i + batch_size])).argmax(-1)
                           for i in range(0, len(test), batch_size)])
  subset = np.random.default_rng(seed).choice(len(train), min(num_samples, len(train)), replace=False)
  _, train_feat = run(train.images[subset])
  return {
      "generator": gen_path, "dataset": dataset, "num_samples": num_samples,
      "classifier_test_accuracy": float(np.mean(test_pred == test.labels)),
      "conditional_accuracy": float(np.mean(fake_pred == labels)),
      "train_generated_test_real_accuracy": float(np.mean(g_pred == test.labels)),
      "frechet_distance": frechet_distance(fake_feat, test_feat),
      "frechet_distance_real_train_vs_test": frechet_distance(train_feat, test_feat),
  }


def evaluate_and_write(gen_path: str, dataset: str, cfg, workdir, data_dir=None) -> dict:
  result = evaluate(gen_path, dataset, cfg.num_samples, cfg.classifier_steps, cfg.batch_size, cfg.seed,
                    data_dir)
  (workdirs.path(workdir) / "quality.json").write_text(json.dumps(result, indent=2) + "\n")
  print(json.dumps(result, indent=2))
  return result


def main(config, workdir):
  """`palmup eval-generator`."""
  from palmup import config_checks
  for key in ("eval.num_samples", "eval.classifier_steps", "eval.batch_size"):
    config_checks.positive(config, key)
  generators.resolve(config.generator.path)
  workdir = workdirs.prepare(workdir, config)
  evaluate_and_write(config.generator.path, config.data.name, config.eval, workdir, config.data.data_dir)
