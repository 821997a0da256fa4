"""The documentation stands alone: every relative link in README.md and docs/*.md points at a file
of this repository (and, with an anchor into a Markdown file, at one of its headings)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
# [text](target) and [text](target "title"); images too. Code is skipped before matching.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = ("http://", "https://", "mailto:")


def _prose(text: str) -> str:
    """The text without code blocks and code spans, where a bracket is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links_in(text: str) -> list[str]:
    return LINK.findall(_prose(text))


def anchor_of(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {anchor_of(heading) for heading in HEADING.findall(text)}


def link_problems(document: Path, root: Path) -> list[str]:
    """Each relative link of ``document`` that leaves ``root``, names no file, or names a heading
    its Markdown file does not have."""
    problems = []
    for target in links_in(document.read_text(encoding="utf-8")):
        if target.startswith(EXTERNAL):
            continue
        location, _, anchor = target.partition("#")
        resolved = (document.parent / location).resolve() if location else document
        if not resolved.is_relative_to(root):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors_of(resolved):
            problems.append(f"{target}: no heading #{anchor}")
    return problems


def test_the_documents_are_there_and_linked_from_the_readme() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", "docs/api.md", "docs/auction.md", "docs/market.md"} <= names
    readme = links_in((ROOT / "README.md").read_text(encoding="utf-8"))
    assert {"docs/api.md", "docs/auction.md", "docs/market.md", "docs/decisions.md"} <= set(readme)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_stay_in_the_repository_and_resolve(document: Path) -> None:
    assert link_problems(document, ROOT) == []


def test_the_check_finds_each_kind_of_bad_link(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (tmp_path / "DESIGN.md").write_text("# Design\n")
    (root / "docs" / "api.md").write_text("# API\n\n## Who may bid: status and hold\n\n```\n# not a heading\n```\n")
    readme = root / "README.md"
    readme.write_text(
        "[out](../DESIGN.md) [missing](docs/nope.md) [bad anchor](docs/api.md#nope)\n"
        "[fine](docs/api.md#who-may-bid-status-and-hold) [self](#title) [web](https://example.com/x)\n"
        "`[code](docs/nope.md)` [in code block below]\n```\n[x](docs/nope.md)\n```\n# Title\n"
    )
    assert link_problems(readme, root) == [
        "../DESIGN.md: outside the repository",
        "docs/nope.md: no such file",
        "docs/api.md#nope: no heading #nope",
    ]
    assert anchors_of(root / "docs" / "api.md") == {"api", "who-may-bid-status-and-hold"}
