"""Choosing a reader from an input's content."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from slipsd.inputs import InputError, ZeekInput, known_formats, open_fd, open_path


def zeek_json(path: Path) -> Path:
    record = {"ts": 1.0, "uid": "C1", "id.orig_h": "10.0.0.1", "id.orig_p": 1,
              "id.resp_h": "10.0.0.2", "id.resp_p": 80, "proto": "tcp"}
    path.write_text(json.dumps(record) + "\n")
    return path


def test_zeek_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    renamed = zeek_json(tmp_path / "capture.txt")
    renamed.rename(tmp_path / "conn.log")
    assert isinstance(open_path(str(tmp_path / "conn.log")), ZeekInput)
    packed = tmp_path / "conn.log.gz"
    packed.write_bytes(gzip.compress((tmp_path / "conn.log").read_bytes()))
    assert isinstance(open_path(str(packed)), ZeekInput)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert isinstance(open_fd(fd, "folder"), ZeekInput)
    finally:
        os.close(fd)


def test_unknown_content_names_what_slips_reads(tmp_path: Path) -> None:
    other = tmp_path / "data.json"
    other.write_text('{"hello": "world"}\n')
    with pytest.raises(InputError) as info:
        open_path(str(other))
    message = str(info.value)
    assert str(other) in message and "not an input slips can read" in message
    for name in known_formats():
        assert name in message


def test_devices_are_refused_clearly() -> None:
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        with pytest.raises(InputError, match="neither a folder, a regular file nor a pipe"):
            open_fd(fd, "/dev/null")
    finally:
        os.close(fd)


def test_a_pipe_of_mixed_zeek_json_lines(tmp_path: Path) -> None:
    conn = {"ts": 10.0, "uid": "C1", "id.orig_h": "10.0.0.1", "id.orig_p": 5,
            "id.resp_h": "10.0.0.2", "id.resp_p": 80, "proto": "tcp", "conn_state": "SF",
            "duration": 1.5, "orig_bytes": 10, "resp_bytes": 20}
    dns = {"_path": "dns", "ts": 11.0, "uid": "D1", "id.orig_h": "10.0.0.1", "id.orig_p": 6,
           "id.resp_h": "10.0.0.53", "id.resp_p": 53, "query": "example.org",
           "answers": ["192.0.2.1"]}
    x509 = {"ts": 12.0, "fingerprint": "ab12", "certificate.subject": "CN=a.example",
            "certificate.issuer": "CN=a.example"}  # no fuid: told from files.log by subject
    lines = [json.dumps(conn), "", "{broken", json.dumps({"foo": 1}), json.dumps(dns),
             json.dumps(x509)]
    read_end, write_end = os.pipe()
    os.write(write_end, ("\n".join(lines) + "\n").encode())
    os.close(write_end)
    errors: list[str] = []
    try:
        source = open_fd(read_end, "stdin")
        records = list(source.records(lambda e: errors.append(str(e))))
        source.close()
    finally:
        os.close(read_end)
    assert [(ts, ch) for ts, ch, _ in records] == [(10.0, "new_flow"), (11.0, "new_dns"),
                                                   (12.0, "new_x509")]
    assert records[0][2]["state"] == "SF" and records[0][2]["sbytes"] == 10
    assert records[1][2]["answers"] == ["192.0.2.1"]
    assert errors == ["stdin:3: invalid JSON: Expecting property name enclosed in double quotes",
                      "stdin:4: not a Zeek log record slips reads (no _path, unknown fields)"]
    stats = source.files[0]
    assert (stats.lines, stats.parsed, stats.bad, stats.meta) == (6, 3, 2, 1)
