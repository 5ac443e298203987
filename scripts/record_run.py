"""Record a finished palmup run as a committed results file, which the docs then quote
(scripts/docs.py).

    python scripts/record_run.py --workdir runs/pretrain --out experiments/results/make_pretrain \
        --command "make pretrain" --seconds 347

Writes OUT/results.json: the command, the commit, the wall seconds given (timed by the caller, e.g.
`/usr/bin/time`), the date; the run's config.json and, when present, its probe.json, quality.json
and evaluate.json as they are (with a probe.json, also its top-1 scores per probe: pretrained, the
random inits' mean and std, raw pixels); and from its metrics.jsonl the last row and each metric's
mean over the last quarter of the rows.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path

import numpy as np

from palmup import evaluate, workdirs

COPIED = ("config.json", "probe.json", "quality.json", "evaluate.json")


def record(workdir: Path, command: str, seconds: float) -> dict:
  out = {"command": command, "commit": workdirs.commit(), "seconds": seconds,
         "date": datetime.date.today().isoformat()}
  for name in COPIED:
    if (workdir / name).exists():
      out[name.removesuffix(".json")] = json.loads((workdir / name).read_text())
  if "probe" in out:  # pretrain's end-of-run probe, as palmup.evaluate.scores reports it
    probe = out["probe"]
    floors = [evaluate.scores(r) for r in probe["random_init"]]
    out["probe_scores"] = {"pretrained": evaluate.scores(probe["pretrained"]),
                           "random_init_mean": {k: float(np.mean([f[k] for f in floors])) for k in floors[0]},
                           "random_init_std": {k: float(np.std([f[k] for f in floors])) for k in floors[0]},
                           "pixels": evaluate.scores(probe["pixels"])}
  rows = workdirs.read_metrics(workdir) if (workdir / "metrics.jsonl").exists() else []
  if rows:
    tail = rows[-max(1, math.ceil(len(rows) / 4)):]
    keys = sorted({k for r in tail for k, v in r.items() if isinstance(v, (int, float)) and k not in ("step", "time")})
    out["metrics_last_row"] = rows[-1]
    out["metrics_last_quarter"] = {k: float(np.mean([r[k] for r in tail if k in r])) for k in keys}
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", type=Path, required=True)
  parser.add_argument("--out", type=Path, required=True)
  parser.add_argument("--command", required=True, help="the command that made the run, as a reader would rerun it")
  parser.add_argument("--seconds", type=float, required=True, help="its wall time")
  args = parser.parse_args()
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "results.json").write_text(json.dumps(record(args.workdir, args.command, args.seconds), indent=2) + "\n")


if __name__ == "__main__":
  main()
