"""The transfer evaluators (logistic and ridge probes against scikit-learn, few-shot, fine-tuning)
and `palmup evaluate` end to end on a tiny encoder."""
import json

import jax
import ml_collections
import numpy as np
import pytest

from conftest import load_config
from palmup import evaluate
from palmup.config_checks import ConfigError
from palmup.data import datasets
from palmup.evaluators import few_shot, fine_tune, linear_probe
from palmup.learner import Learner, load_encoder, save_encoder

TINY_LEARNER = dict(encoder=dict(name="conv", widths=(8, 16), features=16, conv_grad="auto", stem="cifar", width=8), head_hidden=16,
                    head_out=8, temperature=0.1, lr=1e-3, weight_decay=0.0, pair_offset=1, augment="none", dtype="float32")


def _digits():
  train, test = datasets.load("digits", "train"), datasets.load("digits", "test")
  flat = lambda ds: ds.images.reshape(len(ds), -1).astype(np.float32) / 255.0
  return flat(train), train.labels, flat(test), test.labels


def _learner(num_classes=10):
  return Learner(ml_collections.ConfigDict(TINY_LEARNER), num_classes)


def test_logistic_probe_agrees_with_scikit_learn_on_digits_pixels():
  from sklearn.linear_model import LogisticRegression
  train_x, train_y, test_x, test_y = _digits()
  ours = linear_probe.probe(train_x, train_y, test_x, test_y, 10, steps=300)
  train_s, test_s = linear_probe.standardise(train_x, test_x)
  sk = LogisticRegression(C=1.0 / (2 * ours["l2"] * len(train_y)), max_iter=5000).fit(train_s, train_y)
  assert ours["test_accuracy"] > 0.9
  assert abs(ours["test_accuracy"] - sk.score(test_s, test_y)) <= 0.01, (ours, sk.score(test_s, test_y))


@pytest.mark.parametrize("l2", [1.0, 100.0])
def test_ridge_probe_equals_scikit_learns_ridge_classifier(l2):
  from sklearn.linear_model import RidgeClassifier
  train_x, train_y, test_x, test_y = _digits()
  train_s, test_s = linear_probe.standardise(train_x, test_x)
  w, b = linear_probe.fit_ridge(train_s, train_y, 10, l2)
  sk = RidgeClassifier(alpha=l2).fit(train_s.astype(np.float64), train_y)  # sklearn solves in the input dtype
  np.testing.assert_allclose(w, sk.coef_.T, atol=1e-6)
  np.testing.assert_allclose(b, sk.intercept_, atol=1e-6)
  assert linear_probe.accuracy((w, b), test_s, test_y) == sk.score(test_s, test_y) > 0.9


@pytest.mark.parametrize("shots", [3, 25])  # 30 < 64 features < 250 images
def test_ridge_cv_equals_scikit_learns_ridge_classifier_cv(shots):
  """The few-shot ridge's leave-one-out choice of L2 is RidgeClassifierCV's: the same per-L2 LOO
  squared errors, the same L2, the same weights."""
  from sklearn.linear_model import RidgeClassifierCV
  train_x, train_y, test_x, test_y = _digits()
  train_s, test_s = linear_probe.standardise(train_x, test_x)
  idx = few_shot.draw_shots(train_y, shots, 10, seed=0)
  x, y, grid = train_s[idx].astype(np.float64), train_y[idx], (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
  (w, b), l2, errors = linear_probe.fit_ridge_cv(x, y, 10, grid)
  sk = RidgeClassifierCV(alphas=grid, store_cv_results=True).fit(x, y)
  np.testing.assert_allclose(list(errors.values()), sk.cv_results_.mean(axis=(0, 1)), rtol=1e-8)
  assert l2 == sk.alpha_ and len(set(np.round(list(errors.values()), 3))) == len(grid)
  np.testing.assert_allclose(w, sk.coef_.T, atol=1e-6)
  np.testing.assert_allclose(b, sk.intercept_, atol=1e-6)
  assert linear_probe.accuracy((w, b), test_s, test_y) == sk.score(test_s, test_y)


def test_few_shot_ridge_with_chosen_l2_has_no_dip_where_shots_near_the_dimension():
  """On the 64 digit pixels, 6 shots x 10 classes = 60 images: a fixed L2 of 1 dips below the 5-shot
  score of the chosen L2 (the double-descent signature); leave-one-out's choice does not."""
  train_x, train_y, test_x, test_y = _digits()
  chosen = few_shot.few_shot(train_x, train_y, test_x, test_y, 10, shots=(5, 6), seeds=3)
  fixed = few_shot.few_shot(train_x, train_y, test_x, test_y, 10, shots=(6,), seeds=3, l2_grid=(1.0,))
  assert fixed["6"]["mean"] < chosen["5"]["mean"] < chosen["6"]["mean"]
  assert chosen["6"]["mean"] > fixed["6"]["mean"] + 0.05 and set(fixed["6"]["l2"]) == {1.0}
  assert all(l2 > 1.0 for l2 in chosen["6"]["l2"])


def test_ridge_probe_picks_l2_on_held_out_data():
  train_x, train_y, test_x, test_y = _digits()
  result = linear_probe.probe(train_x, train_y, test_x, test_y, 10, (1.0, 1e6), method="ridge")
  assert result["l2"] == 1.0 and result["val_accuracy"]["1.0"] > result["val_accuracy"]["1000000.0"]
  assert result["test_accuracy"] > 0.9


def test_few_shot_draws_k_per_class_and_improves_with_k():
  train_x, train_y, test_x, test_y = _digits()
  idx = few_shot.draw_shots(train_y, 5, 10, seed=3)
  assert np.array_equal(np.bincount(train_y[idx], minlength=10), np.full(10, 5))
  assert np.array_equal(idx, few_shot.draw_shots(train_y, 5, 10, seed=3))
  assert not np.array_equal(idx, few_shot.draw_shots(train_y, 5, 10, seed=4))
  result = few_shot.few_shot(train_x, train_y, test_x, test_y, 10, shots=(1, 25), seeds=3)
  assert len(result["1"]["per_seed"]) == 3 and result["1"]["std"] > 0
  assert 0.3 < result["1"]["mean"] < result["25"]["mean"] and result["25"]["mean"] > 0.85
  with pytest.raises(ValueError, match="class"):
    few_shot.draw_shots(train_y, 1000, 10, seed=0)


def test_fine_tuning_trains_encoder_and_head():
  train, test = datasets.load("digits", "train"), datasets.load("digits", "test")
  learner = _learner()
  params = learner.init(jax.random.PRNGKey(0), (8, 8, 1)).params
  cfg = ml_collections.ConfigDict(dict(steps=150, batch_size=128, lr=1e-2, weight_decay=0.0))
  result = fine_tune.fine_tune(learner, params, (8, 8, 1), train.images, train.labels, test.images, test.labels,
                               10, cfg)
  assert result["test_accuracy"] > 0.6 and result["final_loss"] < 1.0  # an untrained (zero) head scores 0.1


def _encoder_dir(tmp_path):
  learner = _learner()
  save_encoder(tmp_path / "run" / "encoder", learner, learner.init(jax.random.PRNGKey(0), (8, 8, 1)).params,
               (8, 8, 1))
  return tmp_path / "run"


def test_an_encoders_spec_is_written_after_its_params(tmp_path, monkeypatch):
  """learner.json marks a whole encoder (a sweep counts a run with one as finished): a save killed
  while writing the params leaves none."""
  from palmup import checkpoints
  write = checkpoints.write_params

  def write_then_check(path, params):
    assert not (path.parent / "learner.json").exists()
    write(path, params)
  monkeypatch.setattr(checkpoints, "write_params", write_then_check)
  run = _encoder_dir(tmp_path)
  assert (run / "encoder" / "learner.json").exists() and load_encoder(run / "encoder")[1]


def _tiny_eval_config(encoders, **overrides):
  return load_config("evaluate", **{
      "encoders": str(encoders), "datasets": "digits", "probe.train_examples": 600, "probe.random_seeds": 2, "probe.logistic.steps": 30,
      "probe.logistic.l2_grid": (1e-3,), "probe.ridge.l2_grid": (10.0,), "probe.few_shot.shots": (1, 5),
      "probe.few_shot.seeds": 2, **overrides})


def test_evaluate_command_writes_table_and_json(tmp_path):
  run = _encoder_dir(tmp_path)
  config = _tiny_eval_config(run, **{"fine_tune.enabled": True, "fine_tune.steps": 5})
  evaluate.main(config, tmp_path / "eval")
  results = json.loads((tmp_path / "eval" / "evaluate.json").read_text())["digits"]["run"]
  assert len(results["random_init"]) == 2 and set(results["pretrained"]["few_shot"]) == {"1", "5"}
  pixels, pre = results["pixels"], results["pretrained"]  # the raw-pixel floor: the same probes, no encoder
  assert set(pixels) == set(pre) and set(pixels["ridge"]) == set(pre["ridge"])
  assert set(pixels["few_shot"]) == set(pre["few_shot"]) and set(pixels["few_shot"]["5"]) == set(pre["few_shot"]["5"])
  assert pixels["test_accuracy"] > 0.8 and pixels["ridge"]["test_accuracy"] > 0.8
  assert pixels["few_shot"]["5"]["mean"] > 0.5
  assert len(results["fine_tune"]) == 1 and len(results["random_init_fine_tune"]) == 1
  for r in [results["pretrained"]] + results["random_init"]:
    assert 0.1 < r["test_accuracy"] <= 1 and 0.1 < r["ridge"]["test_accuracy"] <= 1
  table = (tmp_path / "eval" / "results.md").read_text()
  assert "| digits | run |" in table and "| digits | random init, 2 inits |" in table and "fine-tune" in table
  assert f"{100 * results['pretrained']['test_accuracy']:.1f}" in table
  pixel_row = next(line for line in table.splitlines() if line.startswith("| digits | raw pixels |"))
  assert pixel_row.endswith(" | - |") and f"| {100 * pixels['test_accuracy']:.1f} |" in pixel_row  # not fine-tuned
  beaten = pre["test_accuracy"] <= pixels["test_accuracy"]
  assert ("run on digits does not beat raw pixels on logistic" in table) == beaten
  # the same encoder through its encoder/ directory gives the same numbers
  again = evaluate.compare_with_random(config.probe, "digits", *evaluate_load(run / "encoder"), random_seeds=0,
                                       pixels=False)
  assert again["pixels"] is None
  assert again["pretrained"]["test_accuracy"] == results["pretrained"]["test_accuracy"]


def evaluate_load(path):
  return load_encoder(evaluate.encoder_dir(str(path)))


def test_summary_names_both_probes(tmp_path):
  run = _encoder_dir(tmp_path)
  config = _tiny_eval_config(run)
  result = evaluate.compare_with_random(config.probe, "digits", *evaluate_load(run))
  line = evaluate.summary(result)
  assert "random encoder" in line and "(2 inits)" in line and "5-shot" in line
  assert f"vs raw pixels {100 * result['pixels']['test_accuracy']:.1f}%" in line
  assert f"vs pixels {100 * result['pixels']['few_shot']['5']['mean']:.1f}%" in line


def test_pixel_features_are_the_resized_image_flattened():
  images = datasets.load("digits", "test").images[:50]
  x = linear_probe.extract_features(evaluate.pixel_features, None, images, (8, 8, 1))
  np.testing.assert_allclose(x, images.reshape(50, -1) / 127.5 - 1.0, atol=1e-6)
  assert linear_probe.extract_features(evaluate.pixel_features, None, images, (16, 16, 3)).shape == (50, 16 * 16 * 3)


def _fake_result(pre: float, pix: float) -> dict:
  probe = lambda acc: {"test_accuracy": acc, "ridge": {"test_accuracy": acc}, "few_shot": {"10": {"mean": acc / 2}}}
  return {"dataset": "fashion_mnist", "random_init": [], "pretrained": probe(pre), "pixels": probe(pix)}


def test_summary_says_when_the_encoder_does_not_beat_raw_pixels():
  below = evaluate.summary(_fake_result(0.80, 0.84))
  assert "vs raw pixels 84.0%" in below and "10-shot 40.0% vs pixels 42.0%" in below
  assert ("the pretrained encoder does not beat raw pixels on logistic (80.0% vs 84.0%), ridge (80.0% vs 84.0%), "
          "10-shot (40.0% vs 42.0%)") in below and "learned nothing useful beyond pixels" in below
  above = evaluate.summary(_fake_result(0.90, 0.84))
  assert "vs raw pixels 84.0%" in above and "does not beat" not in above and "nothing useful" not in above
  old = _fake_result(0.90, 0.84)
  del old["pixels"]  # probe.json of runs before the pixel floor
  assert "pixels" not in evaluate.summary(old)


@pytest.mark.parametrize("overrides, match", [
    ({"datasets": " , "}, "config.datasets"),
    ({"probe.few_shot.shots": ()}, "config.probe.few_shot.shots"),
    ({"probe.logistic.steps": 0}, "config.probe.logistic.steps"),
])
def test_bad_evaluate_configs_are_named(tmp_path, overrides, match):
  with pytest.raises(ConfigError, match=match):
    evaluate.validate(_tiny_eval_config(tmp_path, **overrides))


def test_missing_encoder_is_named(tmp_path):
  with pytest.raises(ConfigError, match="neither a palmup encoder directory"):
    evaluate.main(_tiny_eval_config(tmp_path / "nowhere"), tmp_path / "eval")
