"""The repository stands on its own: no file cites notes that live outside it."""

from __future__ import annotations

import re

from tests.support.common import ROOT

# Split so that this file does not match itself.
_OUTSIDE = re.compile(
    "|".join(
        [
            "shared" + "/reference",
            r"\.\./" + "shared",
            "DESIGN" + r"\.md",
            "reference" + r" A\d",
        ]
    )
)
_PLACES = ["resque_pool", "tests", "docs", "bench", "scripts", "testproject"]


def test_no_file_cites_notes_outside_the_repository():
    files = [ROOT / "README.md"]
    for place in _PLACES:
        files += [p for p in (ROOT / place).rglob("*") if p.is_file() and p.suffix != ".png"]
    cited = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        )
        if _OUTSIDE.search(line)
    ]
    assert cited == []
