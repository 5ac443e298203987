"""The docs a newcomer reads: a short README, and every relative link in the project's markdown
(README, docs/, experiments/ and benchmarks/ READMEs, committed results) pointing at a file that
exists and, with a #fragment, at one of its headings."""
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "experiments" / "README.md",
                ROOT / "benchmarks" / "README.md", *(ROOT / "benchmarks" / "results").glob("*.md"),
                *(ROOT / "experiments" / "results").rglob("*.md")])
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCED = re.compile(r"```.*?```", re.S)
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def slug(heading: str) -> str:
  """GitHub's anchor of a heading: lower case, punctuation but hyphens and underscores dropped,
  spaces to hyphens."""
  text = re.sub(r"[`*]", "", heading.strip().lower())
  return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
  text = _FENCED.sub("", page.read_text())
  seen, out = {}, set()
  for heading in re.findall(r"^#+\s+(.+)$", text, re.M):
    base = slug(heading)
    n = seen.get(base, 0)
    out.add(base if n == 0 else f"{base}-{n}")
    seen[base] = n + 1
  return out


def links(page: Path) -> list[str]:
  return [target for target in _LINK.findall(_CODE.sub("", page.read_text()))
          if not re.match(r"^[a-z]+:", target)]  # http:, https:, mailto:


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_a_heading(page):
  broken = []
  for target in links(page):
    path, _, fragment = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    if not file.exists():
      broken.append(f"{target} (no file {file.relative_to(ROOT) if ROOT in file.parents else file})")
    elif fragment and file.suffix == ".md" and fragment not in anchors(file):
      broken.append(f"{target} (no heading #{fragment} in {file.relative_to(ROOT)})")
  assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readme_is_short_and_opens_with_the_two_commands():
  text = (ROOT / "README.md").read_text()
  assert len(text.splitlines()) <= 200
  first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
  assert [line.split("#")[0].strip() for line in first_block] == ["make pretrain", "make test"]


sys.path.insert(0, str(ROOT / "scripts"))
import docs  # noqa: E402 (scripts/ is not a package)


@pytest.mark.parametrize("page", docs.pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_figure_is_the_committed_results(page):
  """Each marked table and figure in the docs is what scripts/docs.py writes from the committed
  results (rewrite them with `python scripts/docs.py`)."""
  text = page.read_text()
  assert docs.render(text) == text, f"{page.relative_to(ROOT)} differs from the committed results"


def test_the_docs_script_reads_cells_figures_and_tables_and_names_what_is_missing():
  t1 = "experiments/results/t1_factorial/results.md"
  table = docs.tables((ROOT / t1).read_text())[1]
  row, column = table[2][0], table[0][3]  # some row and column of the "palm vs" table
  doc = (f'a <!-- = t1_factorial "palm vs" {row} "{column}" -->stale<!-- / --> b '
         '<!-- = bench.json benchmarks.learner.figures.learner_over_matmul .3f -->0<!-- / -->\n'
         '<!-- table t1_factorial "palm vs" -->\nold\n<!-- /table -->\n')
  out = docs.render(doc)
  learner = json.loads((ROOT / "benchmarks/results/bench.json").read_text())["benchmarks"]["learner"]
  assert f"-->{table[2][3]}<!-- / --> b" in out
  assert f"-->{learner['figures']['learner_over_matmul']:.3f}<!-- / -->" in out
  assert "\n| palm vs |" in out and "old" not in out and docs.render(out) == out
  for marker, words in [('<!-- = t1_factorial "palm vs" nobody "digits linear" -->x<!-- / -->', "no row 'nobody'"),
                        ('<!-- = t1_factorial "palm vs" palm_aug "nothing" -->x<!-- / -->', "no column 'nothing'"),
                        ('<!-- = t1_factorial "who" palm_aug "digits linear" -->x<!-- / -->', "no table"),
                        ("<!-- = bench.json benchmarks.nothing -->x<!-- / -->", "no key 'benchmarks.nothing'"),
                        ("<!-- = nowhere.json a -->x<!-- / -->", "no results file 'nowhere.json'")]:
    with pytest.raises(docs.DocsError, match=re.escape(words)):
      docs.render(marker)
