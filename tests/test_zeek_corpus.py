"""Zeek log readers over the real corpus in ../shared/datasets (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipsd.events import LOG_CHANNELS, NEW_FLOW
from slipsd.inputs import LineError, ZeekInput

from conftest import DATASETS, Event, assert_accounted, read


def _corpus(name: str) -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"corpus folder {DATASETS} is absent (only the project's own tests run)")
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"corpus entry {path} is absent")
    return path


def _count_lines(path: str) -> int:
    data = Path(path).read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _conn_sources(records: list[tuple[float, str, Event]]) -> set[str]:
    return {ev["saddr"] for _, ch, ev in records if ch == NEW_FLOW}


def _read_corpus(name: str) -> tuple[ZeekInput, list[tuple[float, str, Event]], list[LineError]]:
    zin = ZeekInput.from_path(str(_corpus(name)))
    records, errors = read(zin)
    # Every line of every file read is accounted for, against an independent count.
    assert sum(f.lines for f in zin.files) == sum(_count_lines(f.name) for f in zin.files)
    assert_accounted(zin.files)
    assert len(records) == sum(f.parsed for f in zin.files)
    return zin, records, errors


@pytest.mark.corpus
def test_corpus_json_folder_test9() -> None:
    zin, records, errors = _read_corpus("test9-mixed-zeek-dir")
    assert errors == []
    assert len(_conn_sources(records)) > 4
    assert {Path(p).name for p in zin.ignored} >= {"pe.log", "loaded_scripts.log"}
    assert {f.log_type for f in zin.files} >= {"conn", "dns", "http", "ssl", "arp", "dhcp", "x509"}


@pytest.mark.corpus
def test_corpus_tsv_folder_test10() -> None:
    zin, records, errors = _read_corpus("test10-mixed-zeek-dir")
    # One line of this notice.log is really malformed (a space where a tab belongs and
    # two fields missing: 23 of 26); it must be reported, not silently misread.
    assert [(Path(e.file).name, e.line, e.reason) for e in errors] == [
        ("notice.log", 21, "expected 26 fields, got 23")
    ]
    assert len(_conn_sources(records)) > 5
    dns = [ev for _, ch, ev in records if ch == LOG_CHANNELS["dns"]]
    assert any(len(ev["answers"]) > 1 and type(ev["TTLs"][0]) is float for ev in dns)
    assert {Path(p).name for p in zin.ignored} >= {"capture_loss.log", "reporter.log"}
    assert "x509" in {f.log_type for f in zin.files}


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name",
    [
        "test13-malicious-dhcpscan-zeek-dir",
        "test14-malicious-zeek-dir",
        "test15-malicious-zeek-dir",
        "test16-malicious-zeek-dir",
    ],
)
def test_corpus_other_zeek_folders(name: str) -> None:
    zin, records, errors = _read_corpus(name)
    assert errors == []
    assert records and all(ev["saddr"] for _, _, ev in records)
    assert zin.ignored == []
