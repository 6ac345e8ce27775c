"""Zeek log readers, where logs come from: folders, single files, descriptors; the order
records come in, what is ignored and what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slipsd.events import LOG_CHANNELS, NEW_FLOW
from slipsd.inputs import InputError, ZeekInput

import zeekgen
from conftest import _dns_records, assert_accounted, read, read_path


def _small_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "zeek"
    folder.mkdir()
    zeekgen.write_conn_log(str(folder / "conn.log"), zeekgen.make_conn_flows(50, seed=1), "tsv")
    zeekgen.write_log(str(folder / "dns.log"), "dns", _dns_records(), "json")
    return folder


def test_single_file_equals_folder(tmp_path: Path) -> None:
    folder = _small_folder(tmp_path)
    from_folder, _ = read_path(folder)
    conn_only, _ = read_path(folder / "conn.log")
    assert [r for r in from_folder if r[1] == NEW_FLOW] == conn_only
    assert len(conn_only) == 50


def test_type_from_path_header_and_rotated_names(tmp_path: Path) -> None:
    zeekgen.write_log(str(tmp_path / "capture-1.txt"), "dns", _dns_records(), "tsv")
    zeekgen.write_conn_log(str(tmp_path / "conn.00:00:00-01:00:00.log"),
                           zeekgen.make_conn_flows(3, seed=1), "json")  # fmt: skip
    zin = ZeekInput.from_path(str(tmp_path))
    records, errors = read(zin)
    assert errors == []
    assert sorted((Path(f.name).name, f.log_type) for f in zin.files) == [
        ("capture-1.txt", "dns"),
        ("conn.00:00:00-01:00:00.log", "conn"),
    ]
    assert len(records) == 6


def test_ignored_files_are_listed(tmp_path: Path) -> None:
    folder = _small_folder(tmp_path)
    (folder / "pe.log").write_text('{"ts": 1.0, "id": "F1"}\n')
    zeekgen.write_log(str(folder / "packet_filter.log"), "packet_filter",
                      [{"ts": 1.0, "node": "zeek"}], "tsv")  # fmt: skip
    (folder / "loaded_scripts.log").write_text('{"name": "/x.zeek"}\n')
    (folder / "README.txt").write_text("notes\n")
    (folder / "sub").mkdir()
    zin = ZeekInput.from_path(str(folder))
    records, _ = read(zin)
    ignored = sorted(Path(p.rstrip("/")).name for p in zin.ignored)
    assert ignored == ["README.txt", "loaded_scripts.log", "packet_filter.log", "pe.log", "sub"]
    assert sorted(f.log_type for f in zin.files) == ["conn", "dns"]
    assert len(records) == 53


def test_records_are_merged_in_time_order_keeping_each_file_order(tmp_path: Path) -> None:
    conn = zeekgen.make_conn_flows(300, seed=11, start_ts=0.0, span=100.0)
    conn[10], conn[11] = conn[11], conn[10]  # a file that is not perfectly sorted
    dns = [r | {"ts": float(t)} for t, r in zip((5, 50, 99.5), _dns_records(), strict=True)]
    zeekgen.write_conn_log(str(tmp_path / "conn.log"), conn, "json")
    zeekgen.write_log(str(tmp_path / "dns.log"), "dns", dns, "tsv")
    records, errors = read_path(tmp_path)
    assert errors == [] and len(records) == 303
    flow_uids = [ev["uid"] for _, ch, ev in records if ch == NEW_FLOW]
    assert flow_uids == [f["uid"] for f in conn]
    times = [ts for ts, _, _ in records]
    out_of_order = [i for i in range(1, len(times)) if times[i] < times[i - 1]]
    assert len(out_of_order) == 1  # only the swap inside conn.log itself
    assert [ts for ts, ch, _ in records if ch != NEW_FLOW] == [5.0, 50.0, 99.5]


def test_from_fd_on_a_directory(tmp_path: Path) -> None:
    folder = _small_folder(tmp_path)
    (folder / "pe.log").write_text('{"ts": 1.0}\n')
    expected, _ = read_path(folder)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    open_before = len(os.listdir("/proc/self/fd"))
    try:
        with ZeekInput.from_fd(fd, "sensor-1") as zin:
            records, errors = read(zin)
            assert errors == []
            assert records == expected
            assert sorted(f.name for f in zin.files) == ["sensor-1/conn.log", "sensor-1/dns.log"]
            assert zin.ignored == ["sensor-1/pe.log"]
            again, _ = read(zin)
            assert again == expected
            assert_accounted(zin.files)
        os.fstat(fd)  # the caller's descriptor is still open
        assert len(os.listdir("/proc/self/fd")) == open_before  # and nothing leaked
    finally:
        os.close(fd)


def test_from_fd_on_a_file(tmp_path: Path) -> None:
    folder = _small_folder(tmp_path)
    expected, _ = read_path(folder / "conn.log")
    fd = os.open(folder / "conn.log", os.O_RDONLY)
    try:
        os.lseek(fd, 100, os.SEEK_SET)  # wherever the sender left it, the whole file is read
        zin = ZeekInput.from_fd(fd, "conn.log")
        assert read(zin)[0] == expected
        assert read(zin)[0] == expected
        assert zin.files[0].name == "conn.log" and zin.files[0].parsed == 50
        zin.close()
        os.fstat(fd)
        with pytest.raises(InputError, match="closed"):
            read(zin)
    finally:
        os.close(fd)


def test_from_fd_on_a_pipe_is_refused() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(InputError, match="neither a directory nor a regular file"):
            ZeekInput.from_fd(r, "pipe")
        os.fstat(r)
    finally:
        os.close(r)
        os.close(w)


PCAP_HEADER = b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(200)


@pytest.mark.parametrize(
    ("files", "target", "message"),
    [
        ({}, "missing", "no such file"),
        ({}, ".", "no Zeek logs in this folder"),
        ({"pe.log": b'{"ts": 1}\n'}, ".", "found only"),
        ({"conn.log": b"a,b,c\n1,2,3\n"}, ".", "not a Zeek log"),
        ({"f": b"hello\n"}, "f", "not a Zeek log"),
        ({"f": PCAP_HEADER}, "f", "not a Zeek log"),
        ({"f.log": b"# title\nplain text\n"}, "f.log", "not a Zeek log"),
        ({"pe.log": b'{"ts": 1}\n'}, "pe.log", "'pe' \\(from its file name"),
        ({"conn.log.gz": b"\x1f\x8bnope"}, ".", "cannot read"),
    ],
)
def test_input_errors(tmp_path: Path, files: dict[str, bytes], target: str, message: str) -> None:
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        ZeekInput.from_path(str(tmp_path / target))
    assert str(tmp_path) in str(info.value)


def test_tsv_single_file_of_an_unread_type_is_named(tmp_path: Path) -> None:
    zeekgen.write_log(str(tmp_path / "foo.log"), "pe", [{"ts": 1.0, "id": "F"}], "tsv")
    with pytest.raises(InputError, match=r"'pe' \(from its #path header"):
        ZeekInput.from_path(str(tmp_path / "foo.log"))


def test_a_single_log_offers_only_its_own_type(tmp_path: Path) -> None:
    from slipsd.ingest import input_info

    zeekgen.write_conn_log(str(tmp_path / "conn.log"), zeekgen.make_conn_flows(5, seed=1),
                           "json")
    alone = ZeekInput.from_path(str(tmp_path / "conn.log"))
    # Only a conn log: no module may take a missing DNS lookup as evidence.
    assert input_info(alone)["log_types"] == ["conn"]
    # A folder: Zeek writes a log for what it saw, so no http.log means no HTTP was seen.
    folder = ZeekInput.from_path(str(tmp_path))
    assert input_info(folder)["log_types"] == sorted(LOG_CHANNELS)
