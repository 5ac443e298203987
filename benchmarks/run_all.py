"""Runs every benchmark in one process and writes OUT/bench.json and OUT/bench.md (`make bench`).

    python benchmarks/run_all.py --out runs/bench [--quick] [--only env,loop] [--config CONFIG]
                                 [--set BENCHMARK.SIZE=VALUE ...]

--quick runs every benchmark at its smoke-test sizes (seconds each); --config sets the pretraining
config of every benchmark that has one (a name in configs/ or a path); --set overrides one size,
e.g. --set env.generators=builtin:fashion_mnist_32,runs/eye/generator --set scaling.devices=1,2.
Every figure is a ratio against a limit or a reference measured in the same process (see each
module's docstring); bench.md tabulates them against their targets, bench.json also holds the
absolute measurements they come from.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import jax

from palmup import workdirs

import apt_reward
import benchlib
import compile_time
import env_throughput
import explorer_cost
import learner_budget
import learner_flops
import pretrain_loop
import replay_storage
import scaling
import step_flops
import stylegan2ada_forward

# In run order: compile first, so it times the chunk's first compilation, which loop then reuses.
BENCHMARKS = {"compile": compile_time, "env": env_throughput, "learner": learner_flops, "budget": learner_budget,
              "reward": apt_reward,
              "loop": pretrain_loop, "explorers": explorer_cost, "replay": replay_storage, "stylegan2ada": stylegan2ada_forward,
              "flops": step_flops,
              "scaling": scaling}


def _format(value) -> str:
  return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown(report: dict) -> str:
  meta = report["meta"]
  lines = ["# palmup benchmarks", "",
           f"Command: `{meta['command']}` at commit {meta['commit']}.", "",
           f"jax {meta['jax']}, {meta['devices']}, {meta['cpu_count']} CPU cores, load average "
           f"{meta['load_average']:.1f} at the start; {'quick' if meta['quick'] else 'full'} sizes; "
           f"{meta['seconds']:.0f} s.", "",
           "| benchmark | figure | value | target | met |", "|---|---|---|---|---|"]
  for name, r in report["benchmarks"].items():
    for figure, value in r["figures"].items():
      target = r["targets"].get(figure)
      lines.append(f"| {name} | {figure} | {_format(value)} | {' '.join(map(str, target)) if target else '-'} | "
                   f"{('yes' if r['met'][figure] else '**no**') if target else '-'} |")
  for name, r in report["benchmarks"].items():
    lines += ["", f"## {name}", "", f"sizes: {json.dumps(r['sizes'])}, {r['seconds']:.0f} s", "",
              "```json", json.dumps(r["details"], indent=1), "```"]
  return "\n".join(lines) + "\n"


def run(out: Path, quick: bool, only: list[str], config: str | None, sets: dict[str, dict[str, str]],
        command: str = "make bench") -> dict:
  start = time.perf_counter()
  report = {"meta": {"command": command, "commit": workdirs.commit(), "jax": jax.__version__, "devices": f"{jax.devices()[0].device_kind} x{jax.device_count()}",
                     "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0], "quick": quick,
                     "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
            "benchmarks": {}}
  for name in only:
    module = BENCHMARKS[name]
    overrides = dict(({"config": config} if config and "config" in module.SIZES else {}), **sets.get(name, {}))
    sizes = benchlib.parse_sizes(module, quick, overrides)
    print(f"{name}: {sizes}", flush=True)
    began = time.perf_counter()
    r = module.run(**sizes)
    r.update(sizes=sizes, seconds=time.perf_counter() - began,
             met={f: benchlib.met(v, r["targets"][f]) for f, v in r["figures"].items() if f in r["targets"]})
    report["benchmarks"][name] = r
  report["meta"]["seconds"] = time.perf_counter() - start
  out.mkdir(parents=True, exist_ok=True)
  (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
  (out / "bench.md").write_text(markdown(report))
  return report


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", type=Path, default=Path("runs/bench"))
  parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
  parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {','.join(BENCHMARKS)}")
  parser.add_argument("--config", help="pretraining config of every benchmark that takes one")
  parser.add_argument("--set", action="append", default=[], metavar="BENCHMARK.SIZE=VALUE")
  args = parser.parse_args(argv)
  only = args.only.split(",")
  unknown = sorted(set(only) - set(BENCHMARKS))
  if unknown:
    parser.error(f"unknown benchmarks {unknown}; choose from {','.join(BENCHMARKS)}")
  sets = {}
  for item in args.set:
    key, equals, value = item.partition("=")
    name, _, size = key.partition(".")
    if name not in BENCHMARKS or not size or not equals:
      parser.error(f"--set {item!r}: expected BENCHMARK.SIZE=VALUE with BENCHMARK in {','.join(BENCHMARKS)}")
    sets.setdefault(name, {})[size] = value
  report = run(args.out, args.quick, [n for n in BENCHMARKS if n in only], args.config, sets,
               command="python benchmarks/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:]))
  print(markdown(report).split("\n## ")[0])
  print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")


if __name__ == "__main__":
  sys.exit(main())
