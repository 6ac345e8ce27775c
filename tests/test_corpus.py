"""Real Zeek logs from ../shared/datasets through a real slipsd (skipped when absent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import dataset

pytestmark = pytest.mark.corpus


def lines_in(folder: Path, names: list[str]) -> int:
    return sum(len((folder / Path(n).name).read_bytes().splitlines()) for n in names)


@pytest.mark.parametrize(("name", "min_profiles", "known_bad"), [
    ("test9-mixed-zeek-dir", 5, []),
    # One line of this capture's notice.log is damaged (a space instead of a tab,
    # 23 of 26 fields): it must be reported, with its place, and nothing else lost.
    ("test10-mixed-zeek-dir", 6, ["notice.log:21: expected 26 fields, got 23"]),
])
def test_corpus_zeek_folder(
    corpus: Any, name: str, min_profiles: int, known_bad: list[str]
) -> None:
    folder = dataset(name)
    result = corpus(name)
    summary = result.summary
    assert summary["profiles"] >= min_profiles
    errors = summary["input_errors"]
    assert len(errors) == len(known_bad) == summary["bad_lines"]
    for expected, got in zip(known_bad, errors, strict=True):
        assert got.endswith(expected)
    files = summary["files"]
    for stats in files:
        assert stats["lines"] == stats["parsed"] + stats["bad"] + stats["meta"], stats["name"]
    assert sum(f["lines"] for f in files) == lines_in(folder, [f["name"] for f in files])
    assert summary["lines"] == sum(f["lines"] for f in files)
    assert summary["events"] == sum(f["parsed"] for f in files)
    assert "Traceback" not in result.log
