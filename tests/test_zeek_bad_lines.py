"""Zeek log readers, bad lines: reported with file and line, skipped, the rest read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slipsd.inputs import ZeekInput

import zeekgen
from conftest import assert_accounted, read, read_path


def test_bad_json_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(10, seed=2)
    good = [json.dumps({k: v for k, v in f.items() if v is not None}) for f in flows]
    lines = [
        good[0], good[1], "{not json", good[2], "[1, 2]", "", good[3],
        json.dumps({"uid": "Cnots", "proto": "tcp"}),
        json.dumps({"ts": 5.0, "duration": "abc"}),
        json.dumps({"ts": 5.0, "id.orig_p": True}),
        '{"ts": 1.0, "uid": "Ctrunc", "id.orig_h": "10.0.0', good[4], *good[5:],
    ]  # fmt: skip
    (tmp_path / "conn.log").write_text("\n".join(lines) + "\n")
    zin = ZeekInput.from_path(str(tmp_path))
    records, errors = read(zin)
    name = str(tmp_path / "conn.log")
    assert [(e.file, e.line) for e in errors] == [(name, n) for n in (3, 5, 8, 9, 10, 11)]
    assert errors[0].reason.startswith("invalid JSON: ")
    assert errors[1].reason == "not a JSON object"
    assert errors[2].reason == "missing ts"
    assert errors[3].reason == "field 'duration': not a number: 'abc'"
    assert errors[4].reason == "field 'id.orig_p': not an integer: True"
    assert str(errors[0]) == f"{name}:3: {errors[0].reason}"
    assert [ev["uid"] for _, _, ev in records] == [f["uid"] for f in flows]
    stats = zin.files[0]
    assert (stats.lines, stats.parsed, stats.bad, stats.meta) == (17, 10, 6, 1)
    assert_accounted(zin.files)


def test_bad_tsv_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(12, seed=4)
    zeekgen.write_conn_log(str(tmp_path / "src.log"), flows, "tsv")
    lines = (tmp_path / "src.log").read_text().splitlines()
    fields = lines[6].split("\t")[1:]
    cells = lines[9].split("\t")
    bad_duration = cells.copy()
    bad_duration[fields.index("duration")] = "abc"
    bad_bool = cells.copy()
    bad_bool[fields.index("local_orig")] = "yes"
    bad_count = cells.copy()
    bad_count[fields.index("orig_pkts")] = "1.5"
    no_ts = cells.copy()
    no_ts[0] = "-"
    inserted = [
        "\t".join(cells[:-2]), "\t".join(bad_duration), "\t".join(bad_bool),
        "\t".join(bad_count), "\t".join(no_ts), "   ",
    ]  # fmt: skip
    text = lines[:10] + inserted + lines[10:]
    (tmp_path / "src.log").unlink()
    (tmp_path / "conn.log").write_text("\n".join(text) + "\n")
    zin = ZeekInput.from_path(str(tmp_path / "conn.log"))
    records, errors = read(zin)
    name = str(tmp_path / "conn.log")
    assert [str(e) for e in errors] == [
        f"{name}:11: expected 21 fields, got 19",
        f"{name}:12: field 'duration': not a number: 'abc'",
        f"{name}:13: field 'local_orig': not a bool (T/F): 'yes'",
        f"{name}:14: field 'orig_pkts': not an integer: '1.5'",
        f"{name}:15: missing ts",
    ]
    assert [ev["uid"] for _, _, ev in records] == [f["uid"] for f in flows]
    stats = zin.files[0]
    assert (stats.parsed, stats.bad, stats.meta, stats.lines) == (12, 5, 10, 27)
    assert_accounted(zin.files)


def test_tsv_data_before_fields_header(tmp_path: Path) -> None:
    (tmp_path / "conn.log").write_text(
        "#separator \\x09\n#fields\tts\tuid\n1.0\tCa\n#types\ttime\tstring\tcount\n2.0\tCb\n"
    )
    records, errors = read_path(tmp_path)
    # Without #types every field is a string (ts is still made a number); #types that
    # do not match #fields make the data lines under them bad.
    assert [ev["uid"] for _, _, ev in records] == ["Ca"]
    assert [(e.line, e.reason) for e in errors] == [(5, "header has 2 '#fields' but 3 '#types'")]


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(3000, seed=5)
    zeekgen.write_conn_log(str(tmp_path / "full.gz"), flows, "json")
    data = (tmp_path / "full.gz").read_bytes()
    (tmp_path / "full.gz").unlink()
    (tmp_path / "conn.log.gz").write_bytes(data[: len(data) // 2])
    zin = ZeekInput.from_path(str(tmp_path))
    records, errors = read(zin)
    assert 0 < len(records) < 3000
    assert len(errors) >= 1 and "cannot read further" in errors[-1].reason
    assert_accounted(zin.files)


def test_json_lines_are_read_as_json_loads_reads_them(tmp_path: Path) -> None:
    # The reader scans each line with json's C scanner and leaves anything but one value
    # followed by the line end to json.loads: the same records and the same errors.
    flows = zeekgen.make_conn_flows(6, seed=3)
    good = [json.dumps({k: v for k, v in f.items() if v is not None}) for f in flows]
    lines = ["  " + good[0], good[1] + " \t\r", good[2] + " x", good[3] + good[3],
             good[4] + "\x0c", "\t", good[5]]
    (tmp_path / "conn.log").write_text("\n".join(lines))  # the last line has no end
    records, errors = read_path(tmp_path)
    assert [ev["uid"] for _, _, ev in records] == [flows[i]["uid"] for i in (0, 1, 5)]
    expected = []
    for line in lines[2:5]:
        with pytest.raises(json.JSONDecodeError) as caught:
            json.loads(line)
        expected.append(f"invalid JSON: {caught.value.msg}")
    assert [(e.line, e.reason) for e in errors] == list(zip((3, 4, 5), expected, strict=True))
