"""docs/threat-model.md lists every bad file the tests try, with what the tests check of it, and
nothing else: the rows of its section "Bad inputs tried: files" are the `TRIED` cases of the test
modules below (input, expected, observed), no more and no fewer."""

from __future__ import annotations

from tests import test_bad_files, test_disk_full, test_hostile_files, test_safety
from tests.bad_inputs import Tried
from tests.conftest import REPO

THREAT_MODEL = REPO / "docs" / "threat-model.md"
HEADING = "### Bad inputs tried: files"
MODULES = (test_safety, test_bad_files, test_hostile_files, test_disk_full)


def table_rows(heading: str) -> list[Tried]:
    """The rows of the table in the section of docs/threat-model.md under `heading` (to the next
    heading), without its header row."""
    lines = THREAT_MODEL.read_text().splitlines()
    assert heading in lines, f"docs/threat-model.md has no heading {heading!r}"
    rows = []
    for line in lines[lines.index(heading) + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append(Tried(*[cell.strip() for cell in line.strip().strip("|").split("|")]))
    return rows[1:]


def as_markdown(rows: list[Tried]) -> str:
    return "\n".join(f"| {row.input} | {row.expected} | {row.observed} |" for row in rows)


def test_the_threat_model_lists_every_bad_file_tried():
    tried = [row for module in MODULES for row in module.TRIED]
    assert len(set(tried)) == len(tried), "two cases are described alike"
    documented = table_rows(HEADING)
    missing = [row for row in tried if row not in documented]
    stale = [row for row in documented if row not in tried]
    assert not missing and not stale, (
        f"under {HEADING!r} in docs/threat-model.md, add:\n{as_markdown(missing)}\nand remove:\n{as_markdown(stale)}")
