"""The docs a newcomer reads: a short README, and every relative link in the project's markdown
(README, docs/, experiments/ and benchmarks/ READMEs, committed results) pointing at a file that
exists and, with a #fragment, at one of its headings."""
import re
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
