"""palmup preflight: the pretraining program compiled for TPU slices by libtpu's compile-only
client (no TPU), the compiler's memory, cost, collectives and constants read from it, and the
launch stopped by a program that does not compile or fit."""
import json
import resource
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from concurrent import futures
from pathlib import Path

import pytest

from conftest import load_config
from palmup import launch, preflight
from palmup.config_checks import ConfigError
from palmup.errors import UserError

TINY = "--config.log.judge=''"  # the tiny config at its own sizes (8 envs, 8x8 frames), no judge


def tiny_preflight(**overrides):
  return load_config("preflight", **{"run.config": "configs/pretrain_tiny.py", "run.overrides": TINY,
                                     "topology": "v5e:2x2", **overrides})


def compile_tiny(capacity: int, chunk_steps: int = 0, envs: int = 64, members: int = 0) -> dict:
  """The tiny config's chunk at `envs` envs, batch 32 and replay.capacity (members > 0: a population
  of that many runs) compiled for a 4-chip v5e slice (about 15 s): one record of preflight.run."""
  sizes = f"--config.num_envs={envs} --config.replay.batch_size=32 --config.replay.capacity={capacity}"
  return preflight.run(tiny_preflight(programs="chunk", chunk_steps=chunk_steps, members=members,
                                      **{"run.overrides": f"{TINY} {sizes}"}))[0]


def tiny_gradient_bytes() -> int:
  """Bytes of the parameters the tiny config's step differentiates: the learner's, actor's and critic's."""
  import jax
  import numpy as np
  from palmup import configs, pretrain
  config = configs.load("pretrain_tiny", **{"log.judge": "", "num_envs": 64, "replay.batch_size": 32,
                                            "replay.capacity": 128})
  world, _ = preflight.abstract_world(config)
  state = jax.eval_shape(pretrain.make_pretrain(config)[0], world, jax.ShapeDtypeStruct((2,), np.uint32))
  nbytes = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))
  return nbytes(state.learner.params) + nbytes(state.agent.actor) + nbytes(state.agent.critic)


@pytest.fixture(scope="module")
def compiled():
  """Four compiles at once (each in its own process): capacities 128 and 4,096, capacity 128 with
  6 steps a chunk instead of the tiny config's 3, and 1,024 envs x 2^18 steps a chip (over 100 GB)."""
  runs = {"small": (128,), "big": (4096,), "long_chunk": (128, 6), "huge": (262144, 0, 4096)}
  with futures.ThreadPoolExecutor(len(runs)) as pool:
    done = {name: pool.submit(compile_tiny, *args) for name, args in runs.items()}
    return {name: d.result() for name, d in done.items()}


@pytest.mark.slow  # the four TPU compiles of `compiled` (about 150 s); CI's `make preflight` compiles both recipes
def test_the_tiny_config_compiles_for_a_v5e_slice_and_its_figures_are_the_compilers(compiled):
  result = compiled["small"]
  assert "error" not in result, result.get("error")
  assert result["devices"] == 4 and result["device_kind"] == "TPU v5 lite"
  assert (result["num_envs"], result["batch_size"]) == (64, 32)
  chunk = result["programs"]["chunk"]
  # the state is an argument and is donated: its bytes are both argument and output, counted once
  assert chunk["argument_bytes"] > result["replay_bytes_per_chip"] > 0
  assert chunk["alias_bytes"] > 0 and chunk["total_bytes"] == (
      chunk["argument_bytes"] + chunk["output_bytes"] - chunk["alias_bytes"] + chunk["temp_bytes"])
  assert chunk["flops"] > 1e6 and chunk["bytes_accessed"] > 0 and chunk["compile_seconds"] > 0
  # the world (generator params) is an argument: no more than a few KB of constants are baked in
  assert result["world_bytes"] > 100_000 > chunk["constant_bytes"]
  # data parallelism: gradients all-reduced every step; the replay is sampled where it lies
  step = chunk["collectives"]["per_step"]
  assert step["all-reduce"]["count"] >= 1 and step["all-reduce"]["bytes"] > 0
  # counted once per channel: the all-reduces carry the gradients of the learner, actor and critic
  # (and a few scalars), so their bytes are those parameters' bytes and not a multiple of them
  grads = tiny_gradient_bytes()
  assert grads <= step["all-reduce"]["bytes"] < 1.3 * grads, (step["all-reduce"]["bytes"], grads)
  assert step["all-gather"]["appearances"] > step["all-gather"]["count"]  # the compiler's repeats, not counted
  assert step.get("all-gather", {}).get("largest_bytes", 0) < result["replay_bytes_per_chip"]
  assert result["fits"] and result["peak_bytes"] < 0.9 * 16e9
  assert result["roofline_step_seconds"] == max(chunk["flops"] / 197e12, chunk["bytes_accessed"] / 819e9)
  assert result["roofline_frames_per_s"] == pytest.approx(64 / result["roofline_step_seconds"])


@pytest.mark.slow  # the four TPU compiles of `compiled` (about 150 s); CI's `make preflight` compiles both recipes
def test_the_replay_is_written_in_place_on_tpu_whatever_its_size(compiled):
  """The TPU compiler's temporaries do not grow with the replay: its per-step write and its gather
  use one layout, so no step copies the buffer (with flashbax's scatter add and 64-wide vectors
  they grew by 3.5x the buffer's size)."""
  (small, big) = (compiled[c]["replay_bytes_per_chip"] for c in ("small", "big"))
  (small_temp, big_temp) = (compiled[c]["programs"]["chunk"]["temp_bytes"] for c in ("small", "big"))
  assert big - small > 30e6 and big_temp - small_temp < 0.05 * (big - small)


@pytest.mark.slow  # the four TPU compiles of `compiled` (about 150 s); CI's `make preflight` compiles both recipes
def test_the_step_cost_does_not_depend_on_chunk_steps_since_a_loop_body_counts_once(compiled):
  """XLA's cost analysis counts a while body once: the chunk's FLOPs are one step's (plus its
  epilogue) whatever train.chunk_steps is; this is how preflight reads per-step figures."""
  short, long = (compiled[c]["programs"]["chunk"]["flops"] for c in ("small", "long_chunk"))
  assert compiled["long_chunk"]["chunk_steps"] == 2 * compiled["small"]["chunk_steps"] == 6
  assert long == pytest.approx(short, rel=1e-3)


@pytest.mark.slow  # about 40 s: a second compile of the tiny config; `make test-slow`
def test_a_population_compiles_with_whole_members_per_chip_and_all_their_frames(compiled):
  """A population of 4 runs in one program (as `palmup sweep` runs them) on v5e:2x2: the mesh is 4
  groups of 1 chip, so each chip holds one whole member: its per-env state whole (4 times one run's
  per-chip share) and its networks once, so under 4 times one run's per-chip state, which is what an
  unsplit member axis costs. A chip does at most one whole run's FLOPs (one run split over 4 chips
  repeats its replicated parts on each, so its per-chip FLOPs are over a quarter of its whole); with
  the member axis unsplit, XLA ran every member's whole batch on every chip (pretrain.jit_pretrain).
  A step makes 4 runs' frames."""
  one, four = compiled["small"], compile_tiny(128, members=4)
  assert "error" not in four, four.get("error")
  assert four["members"] == 4 and four["num_envs"] == one["num_envs"]
  state = lambda r: r["programs"]["chunk"]["output_bytes"]  # the state the chunk returns
  assert four["replay_bytes_per_chip"] == 4 * one["replay_bytes_per_chip"]
  assert state(one) + 3 * one["replay_bytes_per_chip"] <= state(four) < 4 * state(one), (state(one), state(four))
  assert 2 * one["programs"]["chunk"]["flops"] < four["programs"]["chunk"]["flops"] <= 4 * one["programs"]["chunk"]["flops"]
  assert four["roofline_frames_per_s"] == pytest.approx(4 * 64 / four["roofline_step_seconds"])
  assert "64 / 32 x 4 runs" in preflight.table([four], 0.1)


def test_accelerator_types_map_to_topologies_and_bad_names_are_named():
  assert [preflight.topology_name(t) for t in ("v4-8", "v4-32", "v5litepod-16", "v5p-8", "v6e-256", "v5e:4x4")] == [
      "v4:2x2x1", "v4:2x2x4", "v5e:4x4", "v5p:2x2x1", "v6e:16x16", "v5e:4x4"]
  with pytest.raises(UserError, match=r"TPU topology 'v5litepod-12' is not known; valid: .*v4-32"):
    preflight.topology_name("v5litepod-12")
  with pytest.raises(ConfigError, match=r"config.topology='v9:2x2' is invalid"):
    preflight.validate(tiny_preflight(topology="v9:2x2"))
  with pytest.raises(UserError, match=r"unknown config key 'nope' in pretrain_tiny.py"):
    preflight.validate(tiny_preflight(**{"run.overrides": "--config.nope=1"}))


@pytest.mark.slow  # the four TPU compiles of `compiled` (about 150 s); CI's `make preflight` compiles both recipes
def test_a_config_that_does_not_compile_or_fit_exits_nonzero_with_one_line(compiled, tmp_path):
  command = [sys.executable, "-m", "palmup", "preflight", "--config", "configs/preflight.py", "--workdir",
             str(tmp_path / "odd"), "--config.run.config=configs/pretrain_tiny.py", "--config.topology=v5e:2x2",
             f"--config.run.overrides={TINY} --config.num_envs=6"]  # not a multiple of the 4 chips
  odd = subprocess.run(command, capture_output=True, text=True, timeout=600)
  assert odd.returncode == 1
  assert odd.stderr.strip().splitlines()[-1] == (
      "palmup preflight: configs/pretrain_tiny.py does not compile on v5e:2x2: config.num_envs=6 is invalid; "
      "valid: a multiple of the device count 4 (data parallelism)")
  # the compiler's own refusal, quoted in one line: over 100 GB of replay for a v5e chip's HBM
  assert compiled["huge"]["error"].startswith("JaxRuntimeError: RESOURCE_EXHAUSTED: Ran out of memory on HBM")
  assert "\n" not in compiled["huge"]["error"]
  # 4,096 steps of 16 envs a chip (about 50 MB) compile, but do not fit in 0.1% of a v5e chip's 16 GB
  config = tiny_preflight(headroom=0.999)
  result = {**compiled["big"], **preflight.estimate(compiled["big"], 0.999)}
  with pytest.raises(UserError, match=r"^configs/pretrain_tiny.py does not fit on v5e:2x2: needs 0.0\d GB per "
                                      r"chip, over 0.02 GB \(0.1% of the chip's 16.0 GB\)$"):
    preflight.report(config, [result], tmp_path, 1.0)
  assert json.loads((tmp_path / "preflight.json").read_text())["results"][0]["fits"] is False
  assert "| v5e:2x2 | 4 | 64 / 32 | yes |" in (tmp_path / "preflight.md").read_text()


def test_libtpu_missing_is_one_line_naming_the_fix(tmp_path, monkeypatch):
  request, result = tmp_path / "request.json", tmp_path / "result.json"
  request.write_text(json.dumps({"config": "configs/pretrain_tiny.py", "overrides": "", "topology": "v5e:2x2",
                                 "chips": 4, "sizes": [0, 0, 0], "programs": ["chunk"]}))
  monkeypatch.setitem(sys.modules, "libtpu", None)  # makes `import libtpu` fail
  monkeypatch.setattr(sys, "argv", ["child", str(request), str(result)])
  preflight._child_main()
  assert json.loads(result.read_text()) == {"error": f"libtpu is not installed: {preflight.LIBTPU_HINT}"}


@pytest.mark.slow  # about 30 s; `make test-slow` (tests/test_launch.py keeps the launch commands in the default suite)
def test_a_tpu_launch_compiles_the_run_for_its_accelerator_type_first_and_a_failure_stops_it(tmp_path, capsys):
  def launch_config(overrides):
    return load_config("launch", **{"dry_run": True, "tpu.accelerator_type": "v5litepod-4",
                                    "run.config": "configs/pretrain_tiny.py", "run.overrides": f"{TINY} {overrides}"})
  launch.main(launch_config(""), tmp_path / "ok")
  out = capsys.readouterr().out
  assert "compiling configs/pretrain_tiny.py for v5litepod-4 (v5e:2x2) before creating it" in out
  assert (tmp_path / "ok" / "commands.sh").exists() and (tmp_path / "ok" / "preflight" / "preflight.json").exists()
  with pytest.raises(UserError, match="does not compile on v5e:2x2: config.num_envs=6 is invalid"):
    launch.main(launch_config("--config.num_envs=6"), tmp_path / "bad")
  assert not (tmp_path / "bad" / "commands.sh").exists()  # nothing created, nothing run
  assert shlex.split(launch.palmup_command(launch_config("")))[:2] == [".venv/bin/palmup", "pretrain"]


def _children(pid: int) -> list[int]:
  found = []
  for stat in Path("/proc").glob("[0-9]*/stat"):
    try:
      if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
        found.append(int(stat.parent.name))
    except OSError:
      continue
  return found


def _running(pid: int) -> bool:
  try:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="the compile's death with its parent uses Linux's prctl")
def test_a_killed_preflight_leaves_no_compile_running(tmp_path):
  """The compile runs in a child process; killing the preflight (SIGKILL: no handler runs) kills it."""
  parent = subprocess.Popen([sys.executable, "-m", "palmup", "preflight", "--config", "configs/preflight.py",
                             "--workdir", str(tmp_path), "--config.run.config=configs/pretrain_tiny.py",
                             f"--config.run.overrides={TINY}", "--config.topology=v5e:2x2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + 120
  while not (children := _children(parent.pid)) and time.monotonic() < deadline:
    time.sleep(0.2)
  assert children, "the preflight started no compile"
  time.sleep(3)  # the compile under way
  assert all(map(_running, children))
  parent.send_signal(signal.SIGKILL)
  parent.wait()
  deadline = time.monotonic() + 10
  while any(map(_running, children)) and time.monotonic() < deadline:
    time.sleep(0.2)
  assert not [c for c in children if _running(c)], "a compile outlived its preflight"


def test_the_compile_childs_threads_get_its_large_finite_stack():
  """Under preflight.LARGE_STACK the stack limit is finite (1 GiB, or the hard limit if lower) and a
  new thread's stack is that size, not glibc's 2 MiB for an unlimited limit."""
  probe = textwrap.dedent("""
      import ctypes, resource, threading
      libc = ctypes.CDLL(None)
      libc.pthread_self.restype = ctypes.c_ulong
      def stack_size(out):
        attr = ctypes.create_string_buffer(256)
        size = ctypes.c_size_t()
        libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr)
        libc.pthread_attr_getstacksize(attr, ctypes.byref(size))
        out.append(size.value)
      out = []
      t = threading.Thread(target=stack_size, args=(out,))
      t.start(); t.join()
      print(resource.getrlimit(resource.RLIMIT_STACK)[0], out[0])
  """)
  soft, thread = map(int, subprocess.run([*preflight.LARGE_STACK, sys.executable, "-c", probe], capture_output=True,
                                         text=True, check=True).stdout.split())
  hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
  want = preflight.STACK_KIB * 1024 if hard == resource.RLIM_INFINITY else min(hard, preflight.STACK_KIB * 1024)
  assert soft == want
  assert thread == soft  # a new thread's stack is the finite limit (unlimited would give it 2 MiB)


SYNTHETIC_HLO = """HloModule m

%fused_a (p: f32[4,16]) -> f32[64,16] {
  %p = f32[4,16]{1,0} parameter(0)
  ROOT %all-gather.1 = f32[64,16]{1,0} all-gather(%p), channel_id=7, replica_groups={}, dimensions={0}
}

%fused_b (p: f32[4,16]) -> f32[64,16] {
  %p = f32[4,16]{1,0} parameter(0)
  ROOT %all-gather.2 = f32[64,16]{1,0} all-gather(%p), channel_id=7, replica_groups={}, dimensions={0}
}

%body (s: f32[8]) -> f32[8] {
  %s = f32[8]{0} parameter(0)
  %f1 = f32[64,16]{1,0} fusion(%s), kind=kCustom, calls=%fused_a
  %f2 = f32[64,16]{1,0} fusion(%s), kind=kCustom, calls=%fused_b
  %ar-start = f32[1024]{0} all-reduce-start(%s), channel_id=9, to_apply=%add
  %ar-done = f32[1024]{0} all-reduce-done(%ar-start)
  %cp.1 = f32[8]{0} collective-permute(%s), source_target_pairs={{0,1}}
  ROOT %cp.2 = f32[8]{0} collective-permute(%s), source_target_pairs={{1,0}}
}

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %sum = f32[] add(%a, %b)
}

ENTRY %main (x: f32[8]) -> f32[8] {
  %x = f32[8]{0} parameter(0)
  ROOT %loop = f32[8]{0} while(%x), condition=%cond, body=%body
}
"""


def test_a_collective_repeated_across_fusions_counts_once_per_channel():
  """One all-gather (channel 7) in two fusions is one all-gather of 4 KB; an async all-reduce counts
  at its -done through its -start's channel; collectives without a channel count each."""
  step = preflight.hlo_summary(SYNTHETIC_HLO)["collectives"]["per_step"]
  assert step["all-gather"] == {"count": 1, "bytes": 64 * 16 * 4, "appearances": 2, "largest_bytes": 4096,
                                "largest": "f32[64,16]"}
  assert (step["all-reduce"]["count"], step["all-reduce"]["bytes"]) == (1, 4096)
  assert (step["collective-permute"]["count"], step["collective-permute"]["bytes"]) == (2, 64)
