"""palmup.stats against scipy on random data: intervals, the three t-tests, Holm's correction and
the detectable difference (checked by simulating the test it describes)."""
import math

import numpy as np
import pytest
import scipy.stats

from palmup import stats


def samples(seed, n):
  rng = np.random.default_rng(seed)
  return rng.normal(rng.normal(), rng.uniform(0.1, 3), n), rng.normal(rng.normal(), rng.uniform(0.1, 3), n)


@pytest.mark.parametrize("seed,n", [(0, 2), (1, 3), (2, 5), (3, 12)])
def test_interval_and_t_tests_match_scipy(seed, n):
  a, b = samples(seed, n)
  mean, half = stats.mean_ci95(a)
  lo, hi = scipy.stats.t.interval(0.95, n - 1, loc=a.mean(), scale=scipy.stats.sem(a))
  assert mean == pytest.approx(a.mean()) and half == pytest.approx((hi - lo) / 2, rel=1e-10)
  assert stats.welch_p(a, b) == pytest.approx(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
  assert stats.paired_p(a, b) == pytest.approx(scipy.stats.ttest_rel(a, b).pvalue, rel=1e-9)
  assert stats.one_sample_p(a, 0.3) == pytest.approx(scipy.stats.ttest_1samp(a, 0.3).pvalue, rel=1e-9)


def test_a_paired_test_sees_a_shift_that_seeds_hide_from_welch():
  """Seed effects shared by both settings (the sweep's design) hide a small shift from Welch's test;
  the paired test removes them."""
  rng = np.random.default_rng(0)
  seed_effect = rng.normal(0, 1.0, 5)
  a = seed_effect + rng.normal(0, 0.01, 5)
  b = seed_effect + 0.05 + rng.normal(0, 0.01, 5)
  assert stats.paired_p(a, b) < 0.01 < 0.5 < stats.welch_p(a, b)


def test_too_few_values_give_nan_and_mismatched_pairs_are_refused():
  assert math.isnan(stats.mean_ci95([1.0])[1]) and math.isnan(stats.welch_p([1.0], [1.0, 2.0]))
  assert math.isnan(stats.paired_p([1.0], [2.0])) and math.isnan(stats.one_sample_p([1.0], 0.0))
  assert math.isnan(stats.paired_p([1.0, 2.0], [0.0, 1.0]))  # identical differences: no spread
  with pytest.raises(ValueError, match="as many values in a as in b, got 2 and 3"):
    stats.paired_p([1.0, 2.0], [1.0, 2.0, 3.0])
  with pytest.raises(ValueError, match="unknown t-test 'student'"):
    stats.detectable_difference([1.0, 2.0], [1.0, 3.0], "student")


def holm_by_definition(p, alpha):
  """The step-down procedure as Holm (1979) states it: which hypotheses it rejects at alpha."""
  order, m, rejected = np.argsort(p, kind="stable"), len(p), np.zeros(len(p), bool)
  for i, idx in enumerate(order):
    if p[idx] > alpha / (m - i):
      break
    rejected[idx] = True
  return rejected


@pytest.mark.parametrize("seed", range(5))
def test_holm_rejects_what_the_step_down_procedure_rejects(seed):
  rng = np.random.default_rng(seed)
  p = np.concatenate([rng.uniform(0, 0.02, 4), rng.uniform(0, 1, 20)])
  adjusted = stats.holm(p)
  for alpha in (0.01, 0.05, 0.1, 0.2):
    np.testing.assert_array_equal(adjusted <= alpha, holm_by_definition(p, alpha))
  assert np.all(adjusted >= p) and np.all(adjusted <= 1)
  # never more lenient than Bonferroni's bound for the smallest p, and never below the raw p
  assert adjusted[np.argmin(p)] == pytest.approx(min(1, len(p) * p.min()))


def test_holm_skips_tests_that_could_not_run():
  adjusted = stats.holm([0.01, math.nan, 0.04])
  assert math.isnan(adjusted[1]) and adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04)


@pytest.mark.parametrize("kind,n", [("paired", 3), ("paired", 6), ("one_sample", 4)])
def test_the_detectable_difference_is_detected_with_the_stated_power(kind, n):
  """Normal data with the observed spread and a true shift of the detectable difference: the scipy
  test rejects at alpha in 80% of 20,000 simulated experiments (exact for these tests)."""
  a, b = samples(10 + n, n)
  alpha = 0.05 / 6
  delta = stats.detectable_difference(a, b if kind == "paired" else [0.0], kind, alpha=alpha)
  sd = np.std(a - b, ddof=1) if kind == "paired" else np.std(a, ddof=1)
  x = np.random.default_rng(n).normal(delta, sd, (20000, n))
  pvalues = scipy.stats.ttest_1samp(x, 0.0, axis=1).pvalue  # a paired test is this one on the differences
  assert np.mean(pvalues < alpha) == pytest.approx(0.8, abs=0.015)


def test_welchs_detectable_difference_has_about_the_stated_power():
  """Welch's degrees of freedom are themselves estimated, so the noncentral-t power is approximate."""
  a, b = samples(7, 5)
  delta = stats.detectable_difference(a, b, "welch")
  rng = np.random.default_rng(1)
  x = rng.normal(delta, np.std(a, ddof=1), (20000, 5))
  y = rng.normal(0.0, np.std(b, ddof=1), (20000, 5))
  power = np.mean(scipy.stats.ttest_ind(x, y, axis=1, equal_var=False).pvalue < 0.05)
  assert power == pytest.approx(0.8, abs=0.05)


def test_a_claim_is_yes_only_below_alpha_and_otherwise_names_what_could_have_been_seen():
  assert stats.claim(0.049, 0.3) == "yes"
  assert stats.claim(0.05, 0.031, unit=" points") == "not detected (detectable: 0.031 points)"
  assert stats.claim(math.nan, math.nan) == "not testable"
