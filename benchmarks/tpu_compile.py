"""The accelerator recipes compiled for TPU slices by libtpu's compile-only client (palmup.preflight),
on this machine: whether each compiles and fits, and a scaling table by simulation.

    python benchmarks/tpu_compile.py --out benchmarks/results [--only matrix,scaling] [--parallel 1]

matrix   configs/pretrain_cifar10_stylegan2ada.py and configs/pretrain_accelerator.py on v4-8, v4-32,
         v5litepod-16, v5p-8, v6e-16 at their own sizes, and on a 256-chip v5e pod (v5e:16x16) with
         num_envs and replay.batch_size scaled with the chips: each recipe's own per-chip sizes on
         the 8 devices it was sized for (CIFAR-10: 512 envs, batch 128 per chip; accelerator:
         256 envs, batch 128), held fixed. -> OUT/tpu_matrix.{json,md}
scaling  the CIFAR-10 recipe on v5e slices of 8, 32, 64 and 256 chips at those fixed per-chip sizes:
         memory, FLOPs, collective bytes and the roofline step time per chip, the slice's estimated
         frames/s and its efficiency against 8 chips (frames/s per chip over 8 chips' frames/s per
         chip). -> OUT/tpu_scaling.{json,md}

With --docs, scripts/docs.py then writes the docs from the committed results: docs/scaling.md's
tables and the README's summary (from benchmarks/results, so pass --out benchmarks/results).

Every figure is the TPU compiler's (memory_analysis, cost_analysis, the compiled HLO) or a roofline
estimate from it (palmup.preflight); nothing runs on a TPU. Compiles run one after another unless
--parallel (each compile uses up to about two cores).
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

from palmup import configs, preflight, workdirs

CIFAR, ACCELERATOR = "configs/pretrain_cifar10_stylegan2ada.py", "configs/pretrain_accelerator.py"
PER_CHIP = {CIFAR: (512, 128), ACCELERATOR: (256, 128)}  # (envs, batch) per chip: the recipes' own on 8 devices
OWN_SIZES = ("v4-8", "v4-32", "v5litepod-16", "v5p-8", "v6e-16")
POD = "v5e:16x16"
SCALING = ("v5e:2x4", "v5e:4x8", "v5e:8x8", "v5e:16x16")
GB = 1e9

def check(recipe: str, topologies, parallel: int, per_chip: bool) -> list[dict]:
  envs, batch = PER_CHIP[recipe] if per_chip else (0, 0)
  config = configs.load("preflight", **{"run.config": recipe, "topology": ",".join(topologies), "parallel": parallel,
                                        "envs_per_chip": envs, "batch_per_chip": batch})
  preflight.validate(config)
  return preflight.run(config)

def header(command: str, seconds: float) -> str:
  return (f"Command: `{command}` at commit {workdirs.commit()}, {datetime.date.today()}, {seconds / 60:.0f} min on this "
          "machine's CPU (compile-only: no TPU). GB = 10^9 bytes per chip; the roofline is an estimate, "
          "max(FLOPs / bf16 peak, bytes / HBM bandwidth) of one step, not a measurement.\n")

def matrix(parallel: int) -> tuple[list[dict], str]:
  rows = []
  for recipe in (CIFAR, ACCELERATOR):
    for result in check(recipe, OWN_SIZES, parallel, per_chip=False) + check(recipe, (POD,), parallel, per_chip=True):
      rows.append({"recipe": recipe, **result})
  text = ""
  for recipe in (CIFAR, ACCELERATOR):
    text += f"\n`{recipe}`:\n\n" + preflight.table([r for r in rows if r["recipe"] == recipe], 0.1)
  return rows, text

def scaling(parallel: int) -> tuple[list[dict], str]:
  rows = check(CIFAR, SCALING, parallel, per_chip=True)
  base = next((r for r in rows if "error" not in r and r["devices"] == 8), None)
  lines = ["| chips | envs / batch | memory per chip, GB | GFLOP / step / chip | collective MB / step / chip | "
           "roofline step, ms | est. frames/s | frames/s per chip vs 8 chips |", "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    if "error" in r:
      lines.append(f"| {r['topology']} | | **does not compile**: {r['error']} | | | | | |")
      continue
    per_chip = r["roofline_frames_per_s"] / r["devices"]
    r["efficiency_vs_8"] = per_chip / (base["roofline_frames_per_s"] / 8) if base else None
    lines.append(f"| {r['devices']} ({r['topology']}) | {r['num_envs']:,} / {r['batch_size']:,} | "
                 f"{r['peak_bytes'] / GB:.2f} | {r['step_flops'] / 1e9:,.0f} | {r['step_collective_bytes'] / 1e6:.1f} | "
                 f"{r['roofline_step_seconds'] * 1e3:.1f} ({r['roofline_bound']}) | "
                 f"{r['roofline_frames_per_s']:,.0f} | {r['efficiency_vs_8']:.2f} |")
  return rows, "\n" + "\n".join(lines) + "\n"

def summary(matrix_rows: list[dict], scaling_rows: list[dict]) -> str:
  """A few lines for the README: per recipe, where it compiles and fits and its largest memory per
  chip; and the scaling table's efficiency at its largest slice."""
  lines = []
  for recipe in (CIFAR, ACCELERATOR):
    rows = [r for r in matrix_rows if r["recipe"] == recipe]
    ok = [r for r in rows if "error" not in r and r["fits"]]
    bad = [r["topology"] for r in rows if r not in ok]
    largest = max(ok, key=lambda r: r["peak_bytes"]) if ok else None
    lines.append(f"- `{recipe}`: compiles and fits on {len(ok)} of {len(rows)} slices"
                 + (f" (not on {', '.join(bad)})" if bad else "")
                 + (f"; at most {largest['peak_bytes'] / GB:.1f} GB per chip ({largest['topology']}, "
                    f"{largest['peak_bytes'] / largest['hbm_bytes']:.0%} of its HBM)" if largest else "") + ".")
  done = [r for r in scaling_rows if r.get("efficiency_vs_8") is not None]
  if done:
    last = max(done, key=lambda r: r["devices"])
    lines.append(f"- CIFAR-10 recipe, per-chip sizes fixed: at {last['devices']} v5e chips the roofline estimate is "
                 f"{last['roofline_frames_per_s']:,.0f} frames/s, {last['efficiency_vs_8']:.2f} of 8 chips' "
                 f"frames/s per chip; a roofline does not time the {last['step_collective_bytes'] / 1e6:,.0f} MB of "
                 "collectives per step and chip.")
  return "\n".join(lines) + "\n"


def summary_from(out: Path) -> str:
  """The README's tpu_summary lines from the results in `out` (scripts/docs.py writes them)."""
  read = lambda name: json.loads((out / f"tpu_{name}.json").read_text())["rows"] if (
      out / f"tpu_{name}.json").exists() else []
  return summary(read("matrix"), read("scaling"))


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", type=Path, required=True)
  parser.add_argument("--only", default="matrix,scaling", help="comma-separated; empty: compile nothing")
  parser.add_argument("--parallel", type=int, default=1)
  parser.add_argument("--docs", action="store_true", help="then rewrite the docs (scripts/docs.py)")
  args = parser.parse_args()
  args.out.mkdir(parents=True, exist_ok=True)
  command = "python benchmarks/tpu_compile.py " + " ".join(sys.argv[1:])
  titles = {"matrix": "Accelerator recipes x TPU topologies", "scaling": "CIFAR-10 recipe on v5e, per-chip sizes fixed"}
  for name, fn in (("matrix", matrix), ("scaling", scaling)):
    if name not in args.only.split(","):
      continue
    start = time.perf_counter()
    rows, text = fn(args.parallel)
    seconds = time.perf_counter() - start
    (args.out / f"tpu_{name}.json").write_text(json.dumps({"command": command, "seconds": seconds, "rows": rows},
                                                          indent=2) + "\n")
    (args.out / f"tpu_{name}.md").write_text(f"# {titles[name]}\n\n{header(command, seconds)}{text}")
    print(text, flush=True)
  if args.docs:
    subprocess.run([sys.executable, str(Path(__file__).parents[1] / "scripts" / "docs.py")], check=True)


if __name__ == "__main__":
  main()
