"""`palmup report`: a small report rendered from fake workdirs, checked for its content."""
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from palmup import evaluate, report, viz
from palmup.evaluators import linear_probe

ROOT = Path(__file__).parents[1]
RESULTS_MD = """# Sweep <small>

Intro with `code` and a <tag>.

| row | probe |
|---|---:|
| A | 80.7% |
| B<1 | 81.3% |

- first item
  continued
- second

    palmup pretrain --workdir runs/x
"""


@pytest.fixture(scope="module")
def probe_result():
  """What palmup.evaluate.compare_with_random returns (so pretrain writes to probe.json), on digits
  with stand-in features: all pixels for the 'pretrained' encoder, every 4th for random inits."""
  mp = pytest.MonkeyPatch()
  mp.setattr(linear_probe, "extract_features",
             lambda fn, params, images, shape: images.reshape(len(images), -1)[:, ::params].astype(np.float32))
  learner = SimpleNamespace(features=None, init=lambda key, shape: SimpleNamespace(params=4))
  cfg = evaluate.probe_config(train_examples=300, random_seeds=1)
  cfg.logistic.update(dict(l2_grid=(1e-3,), steps=5))
  cfg.ridge.l2_grid = (1.0,)
  cfg.few_shot.update(dict(shots=(1,), seeds=1))
  try:
    return evaluate.compare_with_random(cfg, "digits", learner, 1, (8, 8, 1))
  finally:
    mp.undo()


def fake_run(path: Path, metrics: dict[str, list[float]], config=None) -> Path:
  """A workdir with config.json and metrics.jsonl (one row per step 10, 20, ...)."""
  path.mkdir(parents=True)
  (path / "config.json").write_text(json.dumps(config or {"seed": 0}))
  steps = len(next(iter(metrics.values())))
  rows = [dict(step=10 * (i + 1), time=1e9 + i, **{k: v[i] for k, v in metrics.items()}) for i in range(steps)]
  (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  return path


def _images(page: str) -> int:
  return page.count('<img src="data:image/png;base64,')


def test_report_of_one_run(tmp_path, probe_result):
  run = fake_run(tmp_path / "pt<1>", {"ntxent": [3.0, 2.0, 1.5], "probe_acc": [0.1, 0.5, 0.9]},
                 config={"learner": {"note": "a<b & c"}, "seed": 0})
  (run / "probe.json").write_text(json.dumps(probe_result))
  (run / "quality.json").write_text(json.dumps({"frechet_distance": 1.25, "nested": {"ok": True}}))
  (run / "results.md").write_text(RESULTS_MD)
  rng = np.random.default_rng(0)
  for chunk in (4, 8, 12):
    for kind in ("pairs", "trajectories"):
      viz.save_png(run / "strips" / f"chunk_{chunk:05d}_{kind}.png", rng.integers(0, 255, (9, 17, 3), np.uint8))
  page = report.build_report([run])

  assert "<h2>pt&lt;1&gt;</h2>" in page
  assert _images(page) == 2 + 2 * 2  # one plot per metric, the latest 2 of 3 strips of each kind
  latest = base64.b64encode((run / "strips" / "chunk_00012_pairs.png").read_bytes()).decode()
  assert f'<img src="data:image/png;base64,{latest}"' in page
  assert "strips/chunk_00008_trajectories.png" in page and "chunk_00004" not in page
  assert 'alt="ntxent"' in page and 'alt="probe_acc"' in page
  assert "<td>A</td><td>80.7%</td>" in page and "<td>B&lt;1</td><td>81.3%</td>" in page
  assert "<h3>Sweep &lt;small&gt;</h3>" in page and "<code>code</code>" in page
  assert "<li>first item continued</li>" in page and "<pre>palmup pretrain --workdir runs/x</pre>" in page
  assert evaluate.summary(probe_result) in page
  pre, floor = probe_result["pretrained"]["test_accuracy"], probe_result["random_init_mean"]
  assert f"pretrained {100 * pre:.1f}% vs random encoder {100 * floor:.1f}" in page
  assert "<td>frechet_distance</td><td>1.25</td>" in page and "<td>nested/ok</td><td>True</td>" in page
  assert "<td>pretrained/few_shot/1/mean</td>" in page  # probe.json's leaves are tabulated too
  assert "a&lt;b &amp; c" in page and "a<b" not in page and "<tag>" not in page
  assert "3 metrics rows to step 30" in page
  assert "http://" not in page and "https://" not in page


def test_runs_overlay_one_plot_per_metric(tmp_path):
  a = fake_run(tmp_path / "exp" / "a", {"ntxent": [3.0, 2.0], "probe_acc": [0.1, 0.2]})
  b = fake_run(tmp_path / "exp" / "b", {"ntxent": [2.5, 1.0], "d_loss": [0.7, 0.6]})
  (tmp_path / "exp" / "results.md").write_text("| run | probe |\n|---|---|\n| a | 1% |\n")
  viz.save_png(tmp_path / "exp" / "plot.png", np.zeros((4, 4, 3), np.uint8))
  viz.save_gif(tmp_path / "exp" / "trajectories.gif", [np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)])
  assert report.discover(tmp_path / "exp") == [tmp_path / "exp", a, b]
  assert report.pictures(tmp_path / "exp") == [tmp_path / "exp" / n for n in ("plot.png", "trajectories.gif")]

  metrics = {"a": [{"step": 1, "time": 0.0, "ntxent": 3.0}], "b": [{"step": 1, "time": 0.0, "ntxent": 2.0}]}
  series = report.metric_series(metrics)
  assert list(series) == ["ntxent"] and list(series["ntxent"]) == ["a", "b"]
  fig = report.plot_metric("ntxent", series["ntxent"], report.run_styles(["a", "b"]), legend=True)
  assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b"]

  page = report.build_report(report.discover(tmp_path / "exp"))
  metrics_html = page.split("<h2>Metrics</h2>")[1].split("</section>")[0]
  assert _images(metrics_html) == 3  # ntxent (both runs), probe_acc (a), d_loss (b)
  assert "<th>exp/a</th><th>exp/b</th>" in metrics_html  # last values, one column per run
  assert "<td>ntxent</td><td>2</td><td>1</td>" in metrics_html
  for name in ("exp", "exp/a", "exp/b"):
    assert f"<h2>{name}</h2>" in page
  assert _images(page) == 3 + 1 and page.count('<img src="data:image/gif;base64,') == 1


def test_many_runs_share_one_key(tmp_path):
  runs = [fake_run(tmp_path / f"r{i}", {"loss": [1.0, 0.5]}) for i in range(report.LEGEND_MAX_RUNS + 1)]
  page = report.build_report(runs)
  assert page.count("border-top:2px solid") == len(runs) and "r4</p>" in page


def _cli(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "palmup", *args], capture_output=True, text=True, env=env,
                        cwd=ROOT, timeout=120)


def test_cli_report_needs_no_config(tmp_path):
  fake_run(tmp_path / "exp" / "a", {"loss": [1.0, 0.5]})
  fake_run(tmp_path / "other", {"loss": [2.0, 0.1]})
  out = _cli("report", "--workdir", str(tmp_path / "exp"), "--config", "configs/report.py",
             f"--config.runs={tmp_path / 'other'}")
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip() == str(tmp_path / "exp" / "report.html")
  page = (tmp_path / "exp" / "report.html").read_text()
  assert "<h2>exp/a</h2>" in page and "<h2>other</h2>" in page and _images(page) == 1
  assert not (tmp_path / "exp" / "config.json").exists()  # report writes report.html only
  out = _cli("report", "--workdir", str(tmp_path / "exp"))
  assert out.returncode == 0, out.stderr
  out = _cli("report", "--workdir", str(tmp_path / "missing"))
  assert out.returncode != 0 and "no such workdir" in out.stderr
  out = _cli("render", "--workdir", str(tmp_path / "r"))
  assert out.returncode != 0 and "--config is required for render" in out.stderr
