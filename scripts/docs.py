r"""Write the figures of the project's markdown from the committed results, so the docs cannot drift.

    python scripts/docs.py           # rewrite every marked region of the docs
    python scripts/docs.py --check   # exit 1, naming each region that differs (the default test suite runs this)

A doc marks what it quotes with HTML comments, which markdown renders as nothing:

    <!-- = SOURCE KEY [FORMAT] -->0.45<!-- / -->                one figure, inline
    <!-- table SOURCE "FIRST HEADER CELL" -->...<!-- /table -->  a whole table of a results .md
    <!-- body SOURCE -->...<!-- /body -->                       a results .md below its title
    <!-- tpu_summary -->...<!-- /tpu_summary -->                the README's TPU lines (benchmarks/tpu_compile.py)

SOURCE is a committed results file: a path from the repository root, or a short name looked up as
benchmarks/results/SOURCE, experiments/results/SOURCE, then experiments/results/SOURCE/results.md.
In a .json, KEY is a dotted path (`benchmarks.learner.figures.learner_over_matmul`, list items by
index) and FORMAT a Python format spec (`.2f`, `.0%`, `,.0f`; default `g`), optionally with a
divisor (`.0f/1e9`: in billions). In a .md, KEY is three
quoted words, the table's first header cell, a cell of the row (its first row that has it; several
cells joined by " & " when one does not single the row out) and the column's header, and the figure
is that row's cell in that column as the table has it, or, given a fourth word, a regular expression,
its first group's match in the cell (`"^(\S+)"`: the cell's first word). Arguments are split as a shell would (shlex).
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/*.md", "experiments/README.md", "benchmarks/README.md")
_INLINE = re.compile(r"<!-- = (.+?) -->(.*?)<!-- / -->", re.S)
_BLOCK = re.compile(r"<!-- (table|body) (.+?) -->\n(.*?)<!-- /\1 -->", re.S)
_SUMMARY = re.compile(r"<!-- tpu_summary -->\n(.*?)<!-- /tpu_summary -->", re.S)


class DocsError(ValueError):
  """A marker that names a missing file, key, table, row or column."""


def source(name: str) -> Path:
  """The results file a marker names (see the module docstring)."""
  for path in (ROOT / name, ROOT / "benchmarks/results" / name, ROOT / "experiments/results" / name,
               ROOT / "experiments/results" / name / "results.md"):
    if path.is_file():
      return path
  raise DocsError(f"no results file {name!r} (a path from the repository root, or a name under "
                  "benchmarks/results/ or experiments/results/)")


def tables(markdown: str) -> list[list[list[str]]]:
  """Every table of a markdown text as rows of cells, the header row first (the --- row dropped)."""
  found, rows = [], []
  for line in markdown.splitlines() + [""]:
    if line.startswith("|"):
      cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
      if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
        rows.append(cells)
    elif rows:
      found.append(rows)
      rows = []
  return found


def no_table(path: Path, first: str, firsts: list[str]) -> DocsError:
  return DocsError(f"{path.relative_to(ROOT)}: no table whose first header cell is {first!r} (there are: {firsts})")


def table_text(markdown: str, first: str, path: Path) -> str:
  """The lines of the table in `markdown` whose first header cell is `first`."""
  blocks = re.findall(r"(?:^\|.*\n?)+", markdown, re.M)
  for block in blocks:
    if block.split("|")[1].strip() == first:
      return block.rstrip("\n")
  raise no_table(path, first, [b.split("|")[1].strip() for b in blocks])


def cell(path: Path, first: str, row: str, column: str) -> str:
  """The cell of a results table: the table whose first header cell is `first`, its first row that has
  a cell equal to `row` (or to each of `row.split(" & ")`), its column headed `column`."""
  found = tables(path.read_text())
  table = next((t for t in found if t[0][0] == first), None)
  if table is None:
    raise no_table(path, first, [t[0][0] for t in found])
  where = f"{path.relative_to(ROOT)}, table {first!r}"
  if column not in table[0]:
    raise DocsError(f"{where}: no column {column!r} (there are: {table[0][1:]})")
  rows = [r for r in table[1:] if all(part in r for part in row.split(" & "))]
  if not rows:
    raise DocsError(f"{where}: no row {row!r} (there are: {[r[0] for r in table[1:]]})")
  return rows[0][table[0].index(column)]


def figure(path: Path, key: str, spec: str) -> str:
  """A .json results file's value at the dotted `key`, formatted by `spec`."""
  value = json.loads(path.read_text())
  for part in key.split("."):
    try:
      value = value[int(part)] if isinstance(value, list) else value[part]
    except (KeyError, IndexError, ValueError, TypeError):
      raise DocsError(f"{path.relative_to(ROOT)}: no key {key!r} (stopped at {part!r})") from None
  spec, _, divisor = spec.partition("/")
  return format(value / float(divisor) if divisor else value, spec)


def inline(arguments: str) -> str:
  """The text of one `<!-- = ... -->` marker."""
  words = shlex.split(arguments)
  path = source(words[0])
  if path.suffix == ".json" and len(words) in (2, 3):
    return figure(path, words[1], words[2] if len(words) == 3 else "g")
  if path.suffix == ".md" and len(words) in (4, 5):
    text = cell(path, *words[1:4])
    if len(words) == 4:
      return text
    match = re.search(words[4], text)
    if not match:
      raise DocsError(f"marker '= {arguments}': {words[4]!r} does not match the cell {text!r}")
    return match.group(1)
  raise DocsError(f"marker '= {arguments}': a .json takes KEY [FORMAT], a .md three quoted words "
                  "(table, row, column) and an optional regular expression")


def block(kind: str, arguments: str) -> str:
  """The text of one `<!-- table ... -->` or `<!-- body ... -->` region."""
  words = shlex.split(arguments)
  path = source(words[0])
  text = path.read_text()
  if kind == "table":
    if len(words) != 2:
      raise DocsError(f"marker 'table {arguments}': takes SOURCE \"FIRST HEADER CELL\"")
    return table_text(text, words[1], path)
  return text.split("\n", 1)[1].strip() if text.startswith("# ") else text.strip()


def tpu_summary() -> str:
  sys.path.insert(0, str(ROOT / "benchmarks"))
  import tpu_compile  # noqa: E402 (benchmarks/ is not a package)
  return tpu_compile.summary_from(ROOT / "benchmarks" / "results").strip()


def render(text: str) -> str:
  """`text` with every marked region rewritten from the results it names."""
  text = _BLOCK.sub(lambda m: f"<!-- {m[1]} {m[2]} -->\n{block(m[1], m[2])}\n<!-- /{m[1]} -->", text)
  text = _INLINE.sub(lambda m: f"<!-- = {m[1]} -->{inline(m[1])}<!-- / -->", text)
  if _SUMMARY.search(text):
    text = _SUMMARY.sub(lambda m: f"<!-- tpu_summary -->\n{tpu_summary()}\n<!-- /tpu_summary -->", text)
  return text


def pages() -> list[Path]:
  return sorted(path for pattern in PAGES for path in ROOT.glob(pattern))


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a doc differs")
  args = parser.parse_args()
  stale = []
  for page in pages():
    text = page.read_text()
    try:
      new = render(text)
    except DocsError as error:
      print(f"{page.relative_to(ROOT)}: {error}", file=sys.stderr)
      return 1
    if new != text:
      stale.append(str(page.relative_to(ROOT)))
      if not args.check:
        page.write_text(new)
  verb = "differ from the committed results" if args.check else "rewritten"
  print(f"{len(stale)} page(s) {verb}" + (f": {', '.join(stale)}" if stale else ""))
  return 1 if args.check and stale else 0


if __name__ == "__main__":
  sys.exit(main())
