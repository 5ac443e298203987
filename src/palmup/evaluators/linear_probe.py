"""Linear probes on frozen encoder features of a real dataset.

Two probes, both on features standardised with the training split's mean and std, with the L2
strength picked on a held-out fraction of the training split and the probe then refit on the whole
split and scored on the test split:
  logistic: multinomial logistic regression, full-batch optax L-BFGS (the reported number);
  ridge:    closed-form ridge regression on +-1 one-hot targets (scikit-learn's RidgeClassifier
            objective), a fast cross-check as big_vision's few-shot evaluator uses.
fit_ridge_cv picks a ridge's L2 by leave-one-out on its own training set (the few-shot probe, which
has no other labels to hold out).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from palmup.data import transforms


def extract_features(features_fn, params, images: np.ndarray, obs_shape, batch_size: int = 1000) -> np.ndarray:
  """uint8 images [N, h, w, c] (any size/channels) -> features [N, D] of features_fn(params, obs)
  where obs are uint8 [B, *obs_shape] (resized, channels converted)."""
  size, channels = obs_shape[0], obs_shape[2]
  fn = jax.jit(lambda p, x: features_fn(p, transforms.to_uint8(transforms.prepare(x, size, channels))))
  return np.concatenate([np.asarray(fn(params, images[i:i + batch_size]))
                         for i in range(0, len(images), batch_size)])


def standardise(train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
  """Each array minus train_x's per-feature mean, over its std (+1e-6)."""
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  return [(x - mean) / std for x in (train_x,) + others]


def fit_logistic(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float, steps: int):
  """Weights (W [D, K], b [K]) minimising mean cross-entropy + l2 * ||W||^2 (L-BFGS, `steps` iterations)."""
  return _fit_logistic(jnp.asarray(x), jnp.asarray(y), jnp.float32(l2), num_classes, steps)


@functools.partial(jax.jit, static_argnums=(3, 4))  # one compile per shape, not one per call
def _fit_logistic(x, y, l2, num_classes: int, steps: int):
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
  (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
  return params


def fit_ridge(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float):
  """Weights (W [D, K], b [K]) minimising ||x W + b - T||^2 + l2 ||W||^2 (sums, not means), where
  T is +1 at the label and -1 elsewhere; the intercept is unpenalised. Closed form, float64."""
  x = np.asarray(x, np.float64)
  targets = 2.0 * np.eye(num_classes)[y] - 1.0
  x_mean, t_mean = x.mean(0), targets.mean(0)
  xc = x - x_mean
  w = np.linalg.solve(xc.T @ xc + l2 * np.eye(x.shape[1]), xc.T @ (targets - t_mean))
  return w, t_mean - x_mean @ w


def fit_ridge_cv(x: np.ndarray, y: np.ndarray, num_classes: int, l2_grid) -> tuple[tuple, float, dict]:
  """fit_ridge at the L2 of l2_grid with the least leave-one-out squared error on (x, y) itself,
  as scikit-learn's RidgeClassifierCV picks its alpha (efficient LOO: one SVD of the centred x; the
  unpenalised intercept makes the hat matrix 1/n + U diag(s^2 / (s^2 + l2)) U^T, and each left-out
  residual is the residual over 1 - H_ii). -> (params, chosen l2, {l2: LOO mean squared error})."""
  x = np.asarray(x, np.float64)
  targets = 2.0 * np.eye(num_classes)[y] - 1.0
  xc, tc = x - x.mean(0), targets - targets.mean(0)
  u, s, _ = np.linalg.svd(xc, full_matrices=False)
  s2, ut = np.square(s), u.T @ tc
  errors = {}
  for l2 in l2_grid:
    shrink = s2 / (s2 + l2)
    leverage = 1.0 / len(x) + np.square(u) @ shrink
    residual = (tc - u @ (shrink[:, None] * ut)) / (1.0 - leverage)[:, None]
    errors[float(l2)] = float(np.mean(np.square(residual)))
  best = min(errors, key=errors.get)
  return fit_ridge(x, y, num_classes, best), best, errors


def accuracy(params, x, y) -> float:
  return float(np.mean(np.argmax(np.asarray(x) @ np.asarray(params[0]) + np.asarray(params[1]), -1) == y))


def probe(train_x, train_y, test_x, test_y, num_classes: int, l2_grid=(1e-5, 1e-4, 1e-3, 1e-2),
          steps: int = 200, val_fraction: float = 0.1, seed: int = 0, method: str = "logistic") -> dict:
  """Test accuracy of a `method` ("logistic" | "ridge") probe whose L2 strength is chosen on a
  held-out split -> {"test_accuracy", "l2", "val_accuracy": {l2: accuracy}}."""
  fit = {"logistic": functools.partial(fit_logistic, steps=steps), "ridge": fit_ridge}[method]
  train_x, test_x = standardise(train_x, test_x)
  order = np.random.default_rng(seed).permutation(len(train_y))
  n_val = max(1, int(val_fraction * len(train_y)))
  val, rest = order[:n_val], order[n_val:]
  scores = {l2: accuracy(fit(train_x[rest], train_y[rest], num_classes, l2), train_x[val], train_y[val])
            for l2 in l2_grid}
  best = max(scores, key=scores.get)
  params = fit(train_x, train_y, num_classes, best)
  return {"test_accuracy": accuracy(params, test_x, test_y), "l2": best,
          "val_accuracy": {str(k): v for k, v in scores.items()}}
