"""The Markdown of the docs: every code fence closes on a line of its own. A closing fence
with text after it is not a closing fence (CommonMark), so everything after it, up to the
next fence, was shown as code (docs/jobs.md had one)."""

from __future__ import annotations

import re

from tests.support.common import ROOT

FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def unclosed_fences(text: str) -> list[str]:
    """Lines where a fence opened inside a code block is taken for a closing one but is
    not (text after it), and a fence left open at the end of the file."""
    problems = []
    open_fence: str | None = None
    opened_at = 0
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if not match:
            continue
        _, fence, rest = match.groups()
        if open_fence is None:
            open_fence, opened_at = fence, number
        elif fence[0] == open_fence[0] and len(fence) >= len(open_fence):
            if rest.strip():
                problems.append(f"line {number}: text after a closing fence: {line!r}")
            else:
                open_fence = None
    if open_fence is not None:
        problems.append(f"line {opened_at}: a fence that never closes")
    return problems


def test_the_checker_finds_the_mistake_it_is_for():
    assert unclosed_fences("```console\n$ x\n``` When Redis\n") == [
        "line 3: text after a closing fence: '``` When Redis'",
        "line 1: a fence that never closes",
    ]
    assert unclosed_fences("```python\nx = 1\n```\ntext\n") == []


def test_every_fence_in_the_docs_closes_on_a_line_of_its_own():
    pages = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    assert len(pages) > 5
    problems = {
        page.name: found
        for page in pages
        if (found := unclosed_fences(page.read_text(encoding="utf-8")))
    }
    assert problems == {}
