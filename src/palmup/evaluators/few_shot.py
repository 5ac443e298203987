"""Few-shot linear evaluation: k labelled training images per class, a closed-form ridge probe.

Features are standardised with the mean and std of the whole (unlabelled) training pool; for each
seed, k images per class are drawn from the pool, a ridge probe with a fixed L2 strength is fit on
them (no labels are left for choosing it) and scored on the test split.
"""
from __future__ import annotations

import numpy as np

from palmup.evaluators.linear_probe import accuracy, fit_ridge, standardise


def draw_shots(labels: np.ndarray, shots: int, num_classes: int, seed: int) -> np.ndarray:
  """Indices of `shots` examples of each class (without replacement), class by class."""
  rng = np.random.default_rng(seed)
  counts = np.bincount(labels, minlength=num_classes)
  if counts.min() < shots:
    raise ValueError(f"{shots}-shot needs {shots} examples of every class; class {counts.argmin()} has {counts.min()}")
  return np.concatenate([rng.choice(np.flatnonzero(labels == c), shots, replace=False) for c in range(num_classes)])


def few_shot(train_x, train_y, test_x, test_y, num_classes: int, shots=(1, 5, 10, 25), seeds: int = 5,
             l2: float = 1.0) -> dict:
  """-> {str(k): {"mean", "std", "per_seed"}} test accuracies over `seeds` draws of k shots per class."""
  train_x, test_x = standardise(train_x, test_x)
  out = {}
  for k in shots:
    accs = []
    for seed in range(seeds):
      idx = draw_shots(train_y, k, num_classes, seed)
      accs.append(accuracy(fit_ridge(train_x[idx], train_y[idx], num_classes, l2), test_x, test_y))
    out[str(k)] = {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "per_seed": accs}
  return out
