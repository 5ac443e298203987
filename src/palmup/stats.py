"""Statistics over seeds: the mean with a 95% interval, and Welch's test between two settings."""
from __future__ import annotations

import math

import numpy as np


def mean_ci95(values) -> tuple[float, float]:
  """(mean, half-width of the two-sided 95% t-interval of the mean) of per-seed values; the
  half-width is nan with fewer than 2 values."""
  import scipy.stats
  v = np.asarray(values, float)
  if len(v) < 2:
    return (float(v.mean()) if len(v) else math.nan), math.nan
  return float(v.mean()), float(scipy.stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def welch_p(a, b) -> float:
  """Two-sided p of Welch's t-test between per-seed values a and b; against a constant (b of one
  value, e.g. the deterministic raw-pixel probe) a one-sample t-test; nan with fewer than 2 of a."""
  import scipy.stats
  a, b = np.asarray(a, float), np.asarray(b, float)
  if len(a) < 2 or len(b) < 1:
    return float("nan")
  if len(b) == 1:
    return float(scipy.stats.ttest_1samp(a, b[0]).pvalue)
  return float(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue)
