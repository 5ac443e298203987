"""The CIFAR-10 recipe on one accelerator: env frames/s, loop step vs learner step, learner FLOP/s
over the chip's, peak memory. Run by scripts/accelerator_check.sh on a bare GPU/TPU machine.

    python benchmarks/accelerator_check.py --out DIR [--tiny] [--num_envs 4096] [--batch_size 1024]
                                           [--chunk_steps 5] [--repeats 3]

The world is a StyleGAN2-ADA generator of cifar10.pkl's shape (z = w = 512, 512 channels, 32x32,
random weights: no pickle needed), imported with dtype bfloat16 as the recipe advises; the config is
configs/pretrain_cifar10_stylegan2ada.py at full size unless overridden. Timed alternately, medians:
one chunk of the fused loop (per step), and the loop's env step and learner update compiled alone
(benchlib.compiled_parts). Learner FLOPs are XLA's cost analysis. The chip's rate is measured with
a large bfloat16 matmul in the same process (and compared with the nominal dense bf16 peak where
the device kind is known). Writes DIR/accelerator_check.json and .md. --tiny shrinks everything so
the same code runs in seconds on a CPU (the default test suite runs it so, with the small CNN in place
of the ResNet-18, whose compilation tests/test_stylegan2ada.py covers).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import benchlib
import stylegan2ada_forward

# Nominal dense bfloat16 peaks, TFLOP/s (vendor data sheets; SXM parts).
NOMINAL_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "TPU v4": 275.0, "TPU v5 lite": 197.0,
                       "TPU v5": 459.0, "TPU v6 lite": 918.0}
TINY = dict(num_envs=8, batch_size=16, chunk_steps=2, repeats=2, matmul=256)
TINY_CONFIG = {"replay.capacity": 8, "learner.encoder.name": "conv", "learner.encoder.widths": (8, 16),
               "learner.encoder.features": 16, "learner.head_hidden": 16, "learner.head_out": 8,
               "learner.pair_offset": 1, "agent.hidden": 16, "agent.feature_dim": 8, "agent.seed_steps": 1, "apt.k": 4}


def nominal_peak(kind: str) -> float | None:
  """The nominal bf16 TFLOP/s of a device kind (the longest matching name), or None."""
  hits = [k for k in NOMINAL_BF16_TFLOPS if k.lower() in kind.lower()]
  return NOMINAL_BF16_TFLOPS[max(hits, key=len)] if hits else None


def bf16_matmul(n: int) -> benchlib.Compiled:
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.bfloat16)
  return benchlib.compile_for(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32), a)


def run(out: Path, tiny: bool, num_envs: int, batch_size: int, chunk_steps: int, repeats: int, matmul: int) -> dict:
  from palmup import generators
  start = time.perf_counter()
  shape = stylegan2ada_forward.SHAPES["tiny" if tiny else "cifar10"]
  gen = generators.make("stylegan2_ada", shape["z_dim"], {**shape, "dtype": "bfloat16"})
  gen_dir = Path(tempfile.mkdtemp(prefix="palmup_world_")) / "generator"
  generators.save(gen_dir, gen, gen.init(jax.random.PRNGKey(0)))
  overrides = {"generator": str(gen_dir), "num_envs": num_envs, "replay.batch_size": batch_size,
               "train.chunk_steps": chunk_steps, **(TINY_CONFIG if tiny else {})}
  setup = benchlib.pretrain_setup("pretrain_cifar10_stylegan2ada", tuple(sorted(overrides.items())))
  part = benchlib.compiled_parts(setup)
  env_step, learn, reference = part("env_step"), part("learn"), bf16_matmul(matmul)
  seconds = benchlib.median_seconds({"chunk": benchlib.chunk_call(setup), "env_step": env_step, "learn": learn,
                                     "matmul": reference}, repeats)
  loop = seconds["chunk"] / chunk_steps
  device = jax.devices()[0]
  stats = device.memory_stats() or {}
  chip = reference.flops / seconds["matmul"] / 1e12
  learner = learn.flops / seconds["learn"] / 1e12
  nominal = nominal_peak(device.device_kind)
  report = {
      "device": f"{jax.device_count()} x {device.device_kind} ({device.platform})", "jax": jax.__version__,
      "sizes": {"num_envs": num_envs, "batch_size": batch_size, "chunk_steps": chunk_steps, "tiny": tiny,
                "generator": {k: list(v) if isinstance(v, tuple) else v for k, v in shape.items()},
                "encoder": setup.config.learner.encoder.name, "learner_dtype": setup.config.learner.dtype},
      "env_frames_per_s": num_envs / seconds["env_step"],
      "loop_frames_per_s": num_envs / loop,
      "loop_step_s": loop, "learn_step_s": seconds["learn"], "env_step_s": seconds["env_step"],
      "loop_over_learn": loop / seconds["learn"],
      "learner_tflops": learner, "bf16_matmul_tflops": chip, "learner_over_matmul": learner / chip,
      "nominal_bf16_tflops": nominal, "learner_over_nominal": None if nominal is None else learner / nominal,
      "learn_gflop_per_step": learn.flops / 1e9, "env_gflop_per_step": env_step.flops / 1e9,
      "peak_memory_gib": stats.get("peak_bytes_in_use", 0) / 2 ** 30 if stats else None,
      "seconds": time.perf_counter() - start,
  }
  out.mkdir(parents=True, exist_ok=True)
  (out / "accelerator_check.json").write_text(json.dumps(report, indent=2) + "\n")
  rows = [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in report.items() if k != "sizes"]
  (out / "accelerator_check.md").write_text(
      "# accelerator check: the CIFAR-10 StyleGAN2-ADA recipe\n\n"
      f"sizes: `{json.dumps(report['sizes'])}`\n\n| figure | value |\n|---|---|\n" + "\n".join(rows) + "\n")
  return report


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", type=Path, required=True)
  parser.add_argument("--tiny", action="store_true", help="tiny sizes: seconds on a CPU")
  for key, value in dict(num_envs=4096, batch_size=1024, chunk_steps=5, repeats=3, matmul=8192).items():
    parser.add_argument(f"--{key}", type=int, default=None, help=f"default {value} (tiny: {TINY[key]})")
  args = vars(parser.parse_args(argv))
  defaults = TINY if args["tiny"] else dict(num_envs=4096, batch_size=1024, chunk_steps=5, repeats=3, matmul=8192)
  sizes = {k: defaults[k] if args[k] is None else args[k] for k in defaults}
  print(json.dumps(run(args["out"], args["tiny"], **sizes), indent=2))


if __name__ == "__main__":
  main(sys.argv[1:])
