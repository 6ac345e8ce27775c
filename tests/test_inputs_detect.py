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


def test_pipes_and_devices_are_refused_clearly() -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(InputError, match="neither a folder nor a regular file"):
            open_fd(read_end, "stdin")
    finally:
        os.close(read_end)
        os.close(write_end)
