"""The benchmark suite (benchmarks/run_all.py) at its smallest sizes on a tiny generator: every
figure is reported, finite and positive, and no chunk recompiles after the first; the compile
counter does see a deliberate recompilation. The scaling benchmark (one process per device
count) is left out for time."""
import json
import math
import sys

import jax
import numpy as np
import pytest

from conftest import tiny_generator
from palmup import configs, generators

sys.path.insert(0, str(configs.ROOT / "benchmarks"))
import benchlib  # noqa: E402
import run_all  # noqa: E402

FIGURES = {
    "compile": {"recompiles_after_first_chunk", "chunk_jit_cache_entries", "compile_over_chunk"},
    "learner": {"learner_over_matmul"},
    "reward": {"reward_over_distance_matmul"},
    "loop": {"loop_over_parts"},
    "explorers": {"apt_over_random", "gradient_over_random", "novelty_over_random"},
    "replay": {"latents_over_pixels_bytes", "pixels_sample_over_gather", "latents_sample_over_decode"},
    "stylegan2ada": {"fused_over_nonfused_seconds[tiny]", "nonfused_over_matmul_flops[tiny]"},
    "budget": {"half_width_over_config", "obs_24_over_config", "half_width_obs_24_over_config"},
    "flops": {"env_step_over_learn_flops[tiny]", "agent_update_over_learn_flops[tiny]",
              "agent_update_over_learn_flops[tiny, nstep_reward=sum]"},
}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("bench")
  generators.save(tmp / "gen", *tiny_generator())
  (tmp / "tiny.py").write_text(
      "from palmup import configs\n\n\ndef get_config():\n"
      f"  return configs.load('pretrain_tiny', generator={str(tmp / 'gen')!r}, **{{'log.judge': ''}})\n")
  run_all.main(["--quick", "--out", str(tmp), "--config", str(tmp / "tiny.py"), "--set", f"env.generators={tmp / 'gen'}",
                "--only", ",".join(n for n in run_all.BENCHMARKS if n != "scaling")])
  return json.loads((tmp / "bench.json").read_text()), (tmp / "bench.md").read_text()


@pytest.mark.slow  # about 60 s: every benchmark at quick sizes; `make test-slow`
def test_every_figure_is_reported_finite_and_positive(report):
  result, md = report
  benchmarks = result["benchmarks"]
  assert set(benchmarks) == set(FIGURES) | {"env"}
  assert list(benchmarks["env"]["figures"]) == [f"env_over_decode[{benchmarks['env']['sizes']['generators']}]"]
  for name, figures in FIGURES.items():
    assert set(benchmarks[name]["figures"]) == figures, name
  for name, r in benchmarks.items():
    for figure, value in r["figures"].items():
      counted = r["targets"].get(figure) == ["==", 0]
      assert math.isfinite(value) and (value >= 0 if counted else value > 0), (name, figure, value)
      assert f"| {name} | {figure} |" in md
    assert set(r["met"]) == set(r["targets"])
  assert set(benchmarks["loop"]["details"]["part_seconds"]) == {
      "act", "env_stats", "add", "env_step", "sample", "learn", "agent_update"}


@pytest.mark.slow  # shares the benchmarks' fixture; `make test-slow`
def test_no_chunk_recompiles_after_the_first(report):
  r = report[0]["benchmarks"]["compile"]
  assert r["figures"]["recompiles_after_first_chunk"] == 0 and r["figures"]["chunk_jit_cache_entries"] == 1
  assert [name for name, _ in r["details"]["first_chunk_compilations"]] == ["jit(chunk)"]
  assert r["met"] == {"recompiles_after_first_chunk": True, "chunk_jit_cache_entries": True}


def test_the_compile_counter_sees_a_changed_shape():
  double = jax.jit(lambda x: 2 * x)
  with benchlib.Compilations() as first:
    double(np.ones(3))
    double(np.ones(3))
  with benchlib.Compilations() as changed:
    double(np.ones(4))
  assert len(first.events) == 1 and len(changed.events) == 1 and double._cache_size() == 2


@pytest.mark.slow  # about 40 s; `make test-slow`
def test_accelerator_check_runs_at_tiny_size_and_writes_its_figures(tmp_path):
  """scripts/accelerator_check.sh's benchmark, at --tiny on this CPU: every figure written, finite."""
  import accelerator_check
  report = accelerator_check.run(tmp_path, True, **accelerator_check.TINY)
  saved = json.loads((tmp_path / "accelerator_check.json").read_text())
  assert saved["sizes"]["tiny"] and "| loop_over_learn |" in (tmp_path / "accelerator_check.md").read_text()
  for key in ("env_frames_per_s", "loop_over_learn", "learner_over_matmul", "learn_gflop_per_step"):
    assert math.isfinite(report[key]) and report[key] > 0, key
  assert report["loop_step_s"] >= report["learn_step_s"] * 0.5  # a loop step contains a learner step
  assert accelerator_check.nominal_peak("NVIDIA H200") == 989.0 and accelerator_check.nominal_peak("cpu") is None
