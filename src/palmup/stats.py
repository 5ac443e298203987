"""Statistics over seeds, one convention for every table and verdict of palmup.

- `+-` is the half-width of the two-sided 95% t-interval of the mean over seeds (`mean_ci95`).
- Two settings are compared by a two-sided t-test on their per-seed values: paired (`paired_p`) when
  they share seeds by design (a sweep's members and its base run seeds 0..S-1 each, so seed i of both
  starts from the same keys), Welch's (`welch_p`) when they do not, and one-sample (`one_sample_p`)
  against a deterministic single value such as the raw-pixel probe.
- A family of tests (a sweep's probes, an experiment's table) is corrected by Holm's step-down method
  (`holm`). It controls the family-wise error rate (the chance of any false "yes") under any
  dependence between the tests, and the probes of one encoder are dependent (the same features on
  three datasets). Benjamini-Hochberg would control only the expected share of false "yes" among the
  "yes" answers; a "yes" here changes a default or a finding, so one false "yes" is the error to bound.
- A claim is "yes" when its corrected p is below alpha, and otherwise "not detected", stated with the
  smallest difference the design could have detected (`detectable_difference`: 80% power at the
  observed spread, at the level a lone true effect in the family must reach under Holm, alpha / m).

The t statistics, standard errors and degrees of freedom are written out here (`_t_test`) rather than
taken from scipy, because `detectable_difference` needs the same standard error and degrees of
freedom; tests/test_stats.py checks every p value and interval against scipy on random data.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import scipy.stats

ALPHA = 0.05
POWER = 0.8


def _values(x) -> np.ndarray:
  return np.asarray(x, float).ravel()


def mean_ci95(values) -> tuple[float, float]:
  """(mean, half-width of the two-sided 95% t-interval of the mean) of per-seed values; the
  half-width is nan with fewer than 2 values."""
  v = _values(values)
  if len(v) < 2:
    return (float(v.mean()) if len(v) else math.nan), math.nan
  return float(v.mean()), float(scipy.stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def _t_test(a, b, kind: str) -> tuple[float, float, float]:
  """(mean difference a - b, its standard error, degrees of freedom) of a paired, Welch or
  one-sample (b: one value) t-test; nan where the data cannot give them."""
  a, b = _values(a), _values(b)
  nan = (math.nan,) * 3
  if kind == "paired":
    if len(a) != len(b):
      raise ValueError(f"a paired test needs as many values in a as in b, got {len(a)} and {len(b)}")
    if len(a) < 2:
      return nan
    d = a - b
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), float(len(d) - 1)
  if kind == "one_sample":
    if len(a) < 2 or len(b) != 1:
      return nan
    return float(a.mean() - b[0]), float(a.std(ddof=1) / math.sqrt(len(a))), float(len(a) - 1)
  if kind == "welch":
    if len(a) < 2 or len(b) < 2:
      return nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se2 = va + vb
    df = se2 ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se2 > 0 else math.nan
    return float(a.mean() - b.mean()), float(math.sqrt(se2)), float(df)
  raise ValueError(f"unknown t-test {kind!r}; valid: 'paired', 'welch', 'one_sample'")


def _p(diff: float, se: float, df: float) -> float:
  if not (math.isfinite(se) and math.isfinite(df)) or se == 0:
    return math.nan
  return float(2 * scipy.stats.t.sf(abs(diff) / se, df))


def welch_p(a, b) -> float:
  """Two-sided p of Welch's t-test between per-seed values a and b (no shared seeds); nan with fewer
  than 2 values on either side."""
  return _p(*_t_test(a, b, "welch"))


def paired_p(a, b) -> float:
  """Two-sided p of the paired t-test between a[i] and b[i] (the same seed i); nan with fewer than 2
  pairs or identical differences."""
  return _p(*_t_test(a, b, "paired"))


def one_sample_p(a, value: float) -> float:
  """Two-sided p of the one-sample t-test of per-seed values a against one deterministic value."""
  return _p(*_t_test(a, [value], "one_sample"))


def holm(pvalues) -> np.ndarray:
  """Holm's step-down adjusted p values of one family, in the input's order: the i-th smallest p
  times (m - i + 1), made non-decreasing and capped at 1; m counts the finite p values, and a nan
  (a test that could not run) stays nan and is not counted."""
  p = _values(pvalues)
  out = np.full_like(p, np.nan)
  finite = np.flatnonzero(np.isfinite(p))
  m = len(finite)
  order = finite[np.argsort(p[finite], kind="stable")]
  running = 0.0
  for i, idx in enumerate(order):
    running = max(running, min(1.0, (m - i) * p[idx]))
    out[idx] = running
  return out


def detectable_difference(a, b, kind: str, alpha: float = ALPHA, power: float = POWER) -> float:
  """The smallest |mean difference| that the two-sided `kind` t-test ("paired", "welch",
  "one_sample") at level alpha detects with probability `power`, if the seeds' spread were the one
  observed in a and b: the noncentral-t solution of power(delta / se; df) = power. For a claim in a
  Holm-corrected family of m tests pass alpha / m. nan where the test cannot run (fewer than 2
  values) or the spread is 0."""
  _, se, df = _t_test(a, b, kind)
  if not (math.isfinite(se) and math.isfinite(df)) or se == 0:
    return math.nan
  crit = scipy.stats.t.isf(alpha / 2, df)

  def shortfall(nc):  # scipy's nct.cdf far in the lower tail can be nan; it is below 1e-15 there
    lower = float(np.nan_to_num(scipy.stats.nct.cdf(-crit, df, nc), nan=0.0))
    return scipy.stats.nct.sf(crit, df, nc) + lower - power

  hi = crit + 1.0
  while shortfall(hi) < 0:
    hi *= 2
  return float(scipy.optimize.brentq(shortfall, 0.0, hi, xtol=1e-10) * se)


def claim(p_corrected: float, detectable: float, alpha: float = ALPHA, unit: str = "") -> str:
  """A verdict's words: "yes" when the corrected p is below alpha; otherwise "not detected" with the
  smallest difference the design could have detected ("not testable" when it cannot run)."""
  if math.isfinite(p_corrected) and p_corrected < alpha:
    return "yes"
  if not math.isfinite(detectable):
    return "not testable"
  return f"not detected (detectable: {detectable:.3g}{unit})"
