"""`palmup report`: runs' metrics, tables, results and pictures as one self-contained HTML page.

    palmup report --workdir DIR
    palmup report --workdir DIR --config configs/report.py --config.runs=runs/a,runs/b

Reports DIR and its sub-workdirs (immediate subdirectories holding config.json, metrics.jsonl or
results.md: an experiment's runs), then each of config.runs (comma-separated workdirs) likewise, and
writes DIR/report.html. DIR itself is reported when it holds results of its own or has no
sub-workdirs. The page plots every metrics.jsonl field against step, one small plot per metric with
all runs overlaid (a run keeps its colour across plots), tabulates the last logged values, then per
run shows the config (collapsed), a summary line, its markdown files (pipe tables become HTML
tables), every other JSON file as a table of its scalar leaves, and its PNG/GIF pictures (of a
numbered series such as strips/chunk_00024_pairs.png, only the latest 2). Pictures and plots are
inlined as data URIs: the page needs no other file and no network.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import re

from etils import epath

from palmup import workdirs
from palmup.config_checks import ConfigError

KEEP_PER_SERIES = 2
LEGEND_MAX_RUNS = 4  # more runs than this share one key above the plots instead of a legend in each
_RUN_MARKERS = ("config.json", "metrics.jsonl", "results.md")
_RESULT_SUFFIXES = (".json", ".jsonl", ".md", ".png", ".gif")
_MIME = {".png": "image/png", ".gif": "image/gif"}
_COUNTER = re.compile(r"(?<![\d.])\d{4,}")  # the zero-padded step or chunk number of a picture series
_ITEM = re.compile(r"\s*([-*]|\d+\.)\s+")
_DASHES = {"-": "solid", "--": "dashed", ":": "dotted"}  # matplotlib line style -> CSS border style
_OPEN_ROWS = 40  # JSON tables up to this many rows start unfolded
_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 80em; padding: 0 1em; color: #222; }
section { border-top: 1px solid #ccc; margin-top: 2em; }
.grid { display: flex; flex-wrap: wrap; gap: 0.5em; align-items: flex-start; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
figure { margin: 0.5em 0; }
figure img { image-rendering: pixelated; max-width: 100%; }
figcaption, .path { font-size: 0.8em; color: #666; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
"""


def is_run(path: epath.Path) -> bool:
  return any((path / m).exists() for m in _RUN_MARKERS)


def discover(workdir) -> list[epath.Path]:
  """workdir (when it holds results itself or has no sub-workdirs) and its sub-workdirs."""
  workdir = workdirs.path(workdir)
  if not workdir.is_dir():
    raise ConfigError(f"no such workdir: {workdir}")
  subs = sorted(p for p in workdir.iterdir() if p.is_dir() and is_run(p))
  own = any(p.is_file() and p.suffix in _RESULT_SUFFIXES for p in workdir.iterdir())
  return ([workdir] if own or not subs else []) + subs


def run_names(runs: list[epath.Path]) -> list[str]:
  """Each run's path relative to the closest common parent of the runs' parents (unique, short)."""
  common = os.path.commonpath([str(r.parent) for r in runs])
  return [str(r.relative_to(common)) for r in runs]


def _files(directory: epath.Path):
  """Files under directory, not descending into sub-workdirs (they are runs of their own)."""
  for p in sorted(directory.iterdir()):
    if p.is_dir():
      if not is_run(p):
        yield from _files(p)
    else:
      yield p


def pictures(run: epath.Path, keep: int = KEEP_PER_SERIES) -> list[epath.Path]:
  """The run's PNG/GIF files; of a numbered series (same name up to its counter), the latest `keep`."""
  series = {}
  for p in _files(run):
    if p.suffix.lower() in _MIME:
      series.setdefault((p.parent, _COUNTER.sub("#", p.name)), []).append(p)
  latest = [sorted(paths, key=lambda p: [int(n) for n in _COUNTER.findall(p.name)])[-keep:]
            for paths in series.values()]
  return sorted(p for paths in latest for p in paths)


def metric_series(metrics: dict[str, list[dict]]) -> dict[str, dict[str, tuple[list, list]]]:
  """{run: metrics rows} -> {metric: {run: (steps, values)}}, every numeric field but step and time."""
  out = {}
  for name, rows in metrics.items():
    for row in rows:
      for key, value in row.items():
        if key not in ("step", "time") and isinstance(value, (int, float)):
          steps, values = out.setdefault(key, {}).setdefault(name, ([], []))
          steps.append(row["step"])
          values.append(value)
  return out


def run_styles(names: list[str]) -> dict[str, dict]:
  """A colour (and after 10 runs a dash pattern) per run, the same in every plot."""
  from matplotlib.colors import to_hex
  return {n: dict(color=to_hex(f"C{i % 10}"), linestyle=list(_DASHES)[i // 10 % 3]) for i, n in enumerate(names)}


def plot_metric(metric: str, series: dict[str, tuple[list, list]], styles: dict[str, dict], legend: bool):
  """A small matplotlib Figure (Agg) of one metric against step, one line per run."""
  from matplotlib.figure import Figure
  fig = Figure(figsize=(3.4, 2.4), dpi=90, layout="constrained")
  ax = fig.add_subplot()
  for name, (steps, values) in series.items():
    ax.plot(steps, values, label=name, lw=1.2, marker="." if len(steps) == 1 else None, **styles[name])
  ax.set_title(metric, fontsize=9)
  ax.set_xlabel("step", fontsize=8)
  ax.tick_params(labelsize=7)
  if legend:
    ax.legend(fontsize=6)
  return fig


def scalar_leaves(tree, prefix: str = "") -> list[tuple[str, object]]:
  """(path, value) of every non-container leaf of parsed JSON, paths joined with '/'."""
  if isinstance(tree, dict):
    items = tree.items()
  elif isinstance(tree, list):
    items = enumerate(tree)
  else:
    return [(prefix, tree)]
  return [leaf for k, v in items for leaf in scalar_leaves(v, f"{prefix}/{k}" if prefix else str(k))]


def probe_summary(result: dict) -> str:
  """The line `palmup pretrain` prints for its probe.json (palmup.evaluate.summary)."""
  from palmup import evaluate
  return evaluate.summary(result)


def _esc(value) -> str:
  return html.escape(str(value))


def _fmt(value) -> str:
  return f"{value:.4g}" if isinstance(value, float) else str(value)


def _inline(text: str) -> str:
  return re.sub(r"`([^`]+)`", r"<code>\1</code>", _esc(text))


def _table(header: list[str], rows: list[list[str]]) -> str:
  """A table from cells that are already HTML."""
  head = "".join(f"<th>{h}</th>" for h in header)
  body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
  return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _pipe_table(lines: list[str]) -> str:
  rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
  rows = [r for r in rows if not all(re.fullmatch(r":?-+:?", c) for c in r)]  # the alignment row
  return _table([_inline(c) for c in rows[0]], [[_inline(c) for c in r] for r in rows[1:]])


def markdown_html(text: str) -> str:
  """Markdown's headings, pipe tables, lists, code blocks and paragraphs as HTML (text escaped)."""
  lines, out, i = text.splitlines(), [], 0

  def take(keep) -> list[str]:
    nonlocal i
    start = i
    while i < len(lines) and keep(lines[i]):
      i += 1
    return lines[start:i]

  while i < len(lines):
    line = lines[i]
    if not line.strip():
      i += 1
    elif line.startswith("```"):
      i += 1
      code = take(lambda s: not s.startswith("```"))
      i += 1
      out.append(f"<pre>{_esc(chr(10).join(code))}</pre>")
    elif line.lstrip().startswith("|"):
      out.append(_pipe_table(take(lambda s: s.lstrip().startswith("|"))))
    elif m := re.match(r"(#{1,6})\s+(.*)", line):
      i += 1
      level = min(len(m[1]) + 2, 6)  # below the page's and the run's headings
      out.append(f"<h{level}>{_inline(m[2])}</h{level}>")
    elif line.startswith(("    ", "\t")):
      code = take(lambda s: s.startswith(("    ", "\t")) or not s.strip())
      out.append(f"<pre>{_esc(chr(10).join(s[4:] if s.startswith('    ') else s[1:] for s in code).rstrip())}</pre>")
    elif _ITEM.match(line):
      items = []
      for s in take(lambda s: bool(_ITEM.match(s) or (s.startswith(" ") and s.strip()))):
        if _ITEM.match(s):
          items.append(s[_ITEM.match(s).end():])
        else:
          items[-1] += " " + s.strip()
      out.append("<ul>" + "".join(f"<li>{_inline(s)}</li>" for s in items) + "</ul>")
    else:
      i += 1
      para = [line] + take(lambda s: bool(s.strip()) and not s.lstrip().startswith(("|", "#", "```"))
                           and not _ITEM.match(s))
      out.append(f"<p>{_inline(' '.join(s.strip() for s in para))}</p>")
  return "\n".join(out)


def _data_uri(data: bytes, mime: str) -> str:
  return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _figure_uri(fig) -> str:
  buf = io.BytesIO()
  fig.savefig(buf, format="png")
  return _data_uri(buf.getvalue(), "image/png")


def _img(uri: str, alt: str) -> str:
  return f'<img src="{uri}" alt="{_esc(alt)}">'


def _key(styles: dict[str, dict]) -> str:
  """The runs' line styles as an HTML legend (one for all plots)."""
  return "<p>" + " ".join(
      f'<span style="display:inline-block;width:2em;border-top:2px {_DASHES[st["linestyle"]]} {st["color"]}">'
      f"</span> {_esc(n)}" for n, st in styles.items()) + "</p>"


def metrics_section(metrics: dict[str, list[dict]]) -> str:
  """Overlaid plots of every metric and a table of each run's last logged values."""
  series = metric_series(metrics)
  if not series:
    return ""
  names = [n for n in metrics if metrics[n]]
  styles, legend = run_styles(names), len(names) <= LEGEND_MAX_RUNS
  plots = "".join(_img(_figure_uri(plot_metric(k, s, styles, legend and len(names) > 1)), k)
                  for k, s in series.items())
  last = [[_esc(k)] + [_esc(_fmt(s[n][1][-1])) if n in s else "" for n in names] for k, s in series.items()]
  last.insert(0, ["step"] + [_esc(metrics[n][-1]["step"]) for n in names])
  return (f'<section><h2>Metrics</h2>{"" if legend else _key(styles)}<div class="grid">{plots}</div>'
          f'<h3>Last logged values</h3>{_table(["metric"] + [_esc(n) for n in names], last)}</section>')


def run_section(run: epath.Path, name: str, index: int, rows: list[dict]) -> str:
  """One run: config, summary, markdown files, JSON results, pictures."""
  parts = [f'<section id="run-{index}"><h2>{_esc(name)}</h2><div class="path">{_esc(run)}</div>']
  config = run / "config.json"
  if config.exists():
    text = json.dumps(json.loads(config.read_text()), indent=2, sort_keys=True)
    parts.append(f"<details><summary>config</summary><pre>{_esc(text)}</pre></details>")
  summary = [f"{len(rows)} metrics rows to step {rows[-1]['step']}"] if rows else []
  if (run / "probe.json").exists():
    try:
      summary.append(probe_summary(json.loads((run / "probe.json").read_text())))
    except (KeyError, TypeError, ZeroDivisionError):
      pass  # a probe.json of another shape: its leaves are still tabulated below
  if summary:
    parts.append(f"<p><b>{_esc('; '.join(summary))}</b></p>")
  for md in sorted(run.glob("*.md")):
    parts.append(f"<h3>{_esc(md.name)}</h3>{markdown_html(md.read_text())}")
  for result in sorted(p for p in run.glob("*.json") if p.name != "config.json"):
    leaves = scalar_leaves(json.loads(result.read_text()))
    table = _table(["field", "value"], [[_esc(k), _esc(_fmt(v))] for k, v in leaves])
    unfold = " open" if len(leaves) <= _OPEN_ROWS else ""
    parts.append(f"<details{unfold}><summary>{_esc(result.name)}</summary>{table}</details>")
  figures = "".join(f"<figure>{_img(_data_uri(p.read_bytes(), _MIME[p.suffix.lower()]), p.name)}"
                    f"<figcaption>{_esc(p.relative_to(run))}</figcaption></figure>" for p in pictures(run))
  if figures:
    parts.append(f'<h3>Pictures</h3><div class="grid">{figures}</div>')
  return "\n".join(parts) + "</section>"


def build_report(run_dirs: list[epath.Path], title: str = "palmup report") -> str:
  """The HTML page for these run directories (in this order; plots overlay them)."""
  runs = [workdirs.path(w) for w in run_dirs]
  names = run_names(runs)
  metrics = {n: workdirs.read_metrics(r) for n, r in zip(names, runs)}
  toc = " ".join(f'<a href="#run-{i}">{_esc(n)}</a>' for i, n in enumerate(names))
  body = "\n".join(run_section(r, n, i, metrics[n]) for i, (r, n) in enumerate(zip(runs, names)))
  return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{_esc(title)}</title>'
          f"<style>{_STYLE}</style></head><body>\n<h1>{_esc(title)}</h1><p>runs: {toc}</p>\n"
          f"{metrics_section(metrics)}\n{body}\n</body></html>\n")


def main(config, workdir):
  """Writes workdir/report.html for workdir's runs and config.runs' (config may be None: no extras)."""
  extra = [r.strip() for r in config.runs.split(",") if r.strip()] if config is not None else []
  runs = list(dict.fromkeys(run for w in [workdir, *extra] for run in discover(w)))
  path = workdirs.path(workdir) / "report.html"
  path.write_text(build_report(runs, f"palmup report: {path.parent.name}"))
  print(path)
