"""Following a live sensor's logs: growth, half-written lines, rotation, resuming."""

from __future__ import annotations

import json
import os
from pathlib import Path

from slipsd.inputs.follow import FollowInput


def conn(i: int) -> bytes:
    record = {"ts": 1000.0 + i, "uid": f"C{i}", "id.orig_h": "10.0.0.1", "id.orig_p": 40000 + i,
              "id.resp_h": "198.51.100.7", "id.resp_p": 443, "proto": "tcp", "conn_state": "SF"}
    return json.dumps(record).encode() + b"\n"


def uids(records: list[tuple[float, str, dict[str, object]]]) -> list[object]:
    return [event["uid"] for _, _, event in records]


def test_growth_partial_lines_and_rotation(tmp_path: Path) -> None:
    errors: list[str] = []
    follow = FollowInput([tmp_path / "eth0"])
    assert follow.poll(errors.append) == []  # the sensor has not started yet
    (tmp_path / "eth0").mkdir()
    log = tmp_path / "eth0" / "conn.log"
    with open(log, "ab") as out:
        out.write(conn(1) + conn(2)[:20])
        out.flush()
        assert uids(follow.poll(errors.append)) == ["C1"]  # the half line waits
        out.write(conn(2)[20:] + b"{broken\n")
        out.flush()
        assert uids(follow.poll(errors.append)) == ["C2"]
    assert [str(e) for e in errors] == [f"{log}:3: invalid JSON: Expecting property name "
                                        "enclosed in double quotes"]
    # Zeek rotates: the file is renamed and a new one starts under the old name.
    with open(log, "ab") as out:
        out.write(conn(3))
    os.rename(log, tmp_path / "eth0" / "conn.2024-01-01-10-00-00.log")
    log.write_bytes(conn(4))
    assert sorted(uids(follow.poll(errors.append))) == ["C3", "C4"]
    assert follow.poll(errors.append) == []
    follow.close()


def test_a_restarted_reader_resumes_where_it_stopped(tmp_path: Path) -> None:
    (tmp_path / "eth0").mkdir()
    log = tmp_path / "eth0" / "conn.log"
    log.write_bytes(conn(1) + conn(2))
    first = FollowInput([tmp_path / "eth0"])
    assert uids(first.poll(lambda e: None)) == ["C1", "C2"]
    positions = dict(first.positions)
    first.close()
    with open(log, "ab") as out:
        out.write(conn(3))
    again = FollowInput([tmp_path / "eth0"], positions=positions)
    assert uids(again.poll(lambda e: None)) == ["C3"]
    again.close()


def test_a_log_truncated_in_place_is_read_again(tmp_path: Path) -> None:
    (tmp_path / "eth0").mkdir()
    log = tmp_path / "eth0" / "conn.log"
    log.write_bytes(conn(1) + conn(2))
    follow = FollowInput([tmp_path / "eth0"])
    assert uids(follow.poll(lambda e: None)) == ["C1", "C2"]
    with open(log, "r+b") as out:  # a restarted zeek overwrites its log
        out.truncate(0)
        out.write(conn(3))
    assert uids(follow.poll(lambda e: None)) == ["C3"]
    follow.close()


def test_a_backlog_is_read_a_few_megabytes_at_a_time(tmp_path: Path) -> None:
    from slipsd.inputs import follow as follow_module

    (tmp_path / "eth0").mkdir()
    log = tmp_path / "eth0" / "conn.log"
    lines = [conn(i) for i in range(60_000)]  # about 12 MB: three polls' worth
    log.write_bytes(b"".join(lines))
    follow = FollowInput([tmp_path / "eth0"])
    first = follow.poll(lambda e: None)
    assert 0 < len(first) < len(lines) / 2
    assert sum(len(line) for line in lines[:len(first)]) <= follow_module.POLL_BYTES
    # Gone (rotated, compressed, removed) with most of it unread: the rest is still read
    # from the open file, and only then is the file dropped.
    log.unlink()
    seen = uids(first)
    while batch := follow.poll(lambda e: None):
        seen += uids(batch)
    assert seen == [f"C{i}" for i in range(60_000)]
    assert follow._tracked == {}
    follow.close()
