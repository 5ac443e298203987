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

With --docs, the tables are also written into the marked regions of docs/scaling.md
(<!-- tpu_matrix --> ... <!-- /tpu_matrix -->, and tpu_scaling likewise), so the docs quote
exactly the committed results.

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

from palmup import configs, preflight

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
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
  return (f"Command: `{command}` at commit {commit}, {datetime.date.today()}, {seconds / 60:.0f} min on this "
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

def write_region(path: Path, name: str, text: str):
  """Replaces what lies between <!-- name --> and <!-- /name --> in the file at path."""
  doc = path.read_text()
  start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
  if start not in doc or end not in doc:
    raise SystemExit(f"{path} has no region {start} ... {end}")
  head, rest = doc.split(start, 1)
  path.write_text(f"{head}{start}\n{text.strip()}\n{end}{rest.split(end, 1)[1]}")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", type=Path, required=True)
  parser.add_argument("--only", default="matrix,scaling")
  parser.add_argument("--parallel", type=int, default=1)
  parser.add_argument("--docs", action="store_true", help="also write the tables into docs/scaling.md")
  args = parser.parse_args()
  args.out.mkdir(parents=True, exist_ok=True)
  command = "python benchmarks/tpu_compile.py " + " ".join(sys.argv[1:])
  for name, fn in (("matrix", matrix), ("scaling", scaling)):
    if name not in args.only.split(","):
      continue
    start = time.perf_counter()
    rows, text = fn(args.parallel)
    seconds = time.perf_counter() - start
    title = {"matrix": "Accelerator recipes x TPU topologies", "scaling": "CIFAR-10 recipe on v5e, per-chip sizes fixed"}
    (args.out / f"tpu_{name}.json").write_text(json.dumps({"command": command, "seconds": seconds, "rows": rows},
                                                          indent=2) + "\n")
    (args.out / f"tpu_{name}.md").write_text(f"# {title[name]}\n\n{header(command, seconds)}{text}")
    if args.docs:
      write_region(Path(__file__).parents[1] / "docs" / "scaling.md", f"tpu_{name}", header(command, seconds) + text)
    print(text, flush=True)

if __name__ == "__main__":
  main()
