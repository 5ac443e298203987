"""Linear probe: multinomial logistic regression on frozen encoder features of a real dataset.

Features are standardised with the training split's mean and std; the L2 strength is picked on a
held-out fraction of the training split, then the probe is refit on the whole split and scored on
the test split. Optimised full-batch with optax's L-BFGS.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from palmup.data import datasets, transforms


def extract_features(features_fn, params, images: np.ndarray, obs_shape, batch_size: int = 1000) -> np.ndarray:
  """uint8 images [N, h, w, c] (any size/channels) -> features [N, D] of features_fn(params, obs)
  where obs are uint8 [B, *obs_shape] (resized, channels converted)."""
  size, channels = obs_shape[0], obs_shape[2]
  fn = jax.jit(lambda p, x: features_fn(p, transforms.to_uint8(transforms.prepare(x, size, channels))))
  return np.concatenate([np.asarray(fn(params, images[i:i + batch_size]))
                         for i in range(0, len(images), batch_size)])


def fit_logistic(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float, steps: int):
  """Weights (W [D, K], b [K]) minimising mean cross-entropy + l2 * ||W||^2 (L-BFGS, `steps` iterations)."""
  x, y = jnp.asarray(x), jnp.asarray(y)

  def loss(p):
    logits = x @ p[0] + p[1]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean() + l2 * jnp.sum(jnp.square(p[0]))

  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(carry, _):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=loss)
    return (optax.apply_updates(params, updates), state), None

  params = (jnp.zeros((x.shape[1], num_classes)), jnp.zeros(num_classes))
  (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps))((params, opt.init(params)))
  return params


def accuracy(params, x, y) -> float:
  return float(np.mean(np.asarray(jnp.argmax(jnp.asarray(x) @ params[0] + params[1], -1)) == y))


def probe(train_x, train_y, test_x, test_y, num_classes: int, l2_grid=(1e-5, 1e-4, 1e-3, 1e-2),
          steps: int = 200, val_fraction: float = 0.1, seed: int = 0) -> dict:
  """Test accuracy of a logistic probe whose L2 strength is chosen on a held-out split."""
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
  order = np.random.default_rng(seed).permutation(len(train_y))
  n_val = max(1, int(val_fraction * len(train_y)))
  val, fit = order[:n_val], order[n_val:]
  scores = {l2: accuracy(fit_logistic(train_x[fit], train_y[fit], num_classes, l2, steps), train_x[val], train_y[val])
            for l2 in l2_grid}
  best = max(scores, key=scores.get)
  params = fit_logistic(train_x, train_y, num_classes, best, steps)
  return {"test_accuracy": accuracy(params, test_x, test_y), "l2": best,
          "val_accuracy": {str(k): v for k, v in scores.items()}}


def evaluate_encoder(features_fn, params, obs_shape, cfg) -> dict:
  """Probe on cfg.dataset (train subsampled to cfg.train_examples if > 0)."""
  train, test = (datasets.load(cfg.dataset, s) for s in ("train", "test"))
  idx = np.arange(len(train))
  if 0 < cfg.train_examples < len(train):
    idx = np.random.default_rng(cfg.seed).choice(len(train), cfg.train_examples, replace=False)
  train_x = extract_features(features_fn, params, train.images[idx], obs_shape)
  test_x = extract_features(features_fn, params, test.images, obs_shape)
  return probe(train_x, train.labels[idx], test_x, test.labels, train.num_classes, tuple(cfg.l2_grid),
               cfg.steps, seed=cfg.seed)


def compare_with_random(config, learner, params, obs_shape) -> dict:
  """The probe on a trained learner's encoder and on the same encoder at random initialisation,
  for cfg.random_seeds initialisations (the floor varies by about a point between seeds)."""
  cfg = config.eval
  floors = [evaluate_encoder(learner.features, learner.init(jax.random.PRNGKey(seed), obs_shape).params,
                             obs_shape, cfg) for seed in range(1000, 1000 + cfg.random_seeds)]
  accs = [f["test_accuracy"] for f in floors]
  return {"dataset": cfg.dataset, "train_examples": cfg.train_examples,
          "pretrained": evaluate_encoder(learner.features, params, obs_shape, cfg),
          "random_init": floors, "random_init_mean": float(np.mean(accs)), "random_init_std": float(np.std(accs))}


def summary(result: dict) -> str:
  n = len(result["random_init"])
  return (f"linear probe on {result['dataset']} (top-1, test split): pretrained "
          f"{100 * result['pretrained']['test_accuracy']:.1f}% vs random encoder "
          f"{100 * result['random_init_mean']:.1f} +- {100 * result['random_init_std']:.1f}% ({n} inits)")
