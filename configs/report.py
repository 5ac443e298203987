"""One HTML page of runs: DIR and its sub-workdirs, overlaid with config.runs (see palmup.report).

    palmup report --workdir runs/sweep                      # --config is optional for report
    palmup report --config configs/report.py --workdir runs/pretrain --config.runs=runs/pt1,runs/sweep
"""
import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.runs = ""  # comma-separated extra workdirs (each with its sub-workdirs) to report with DIR
  return c
