"""scripts/zeekgen.py writes real Zeek logs; scripts/make_demo_sample.py is reproducible."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from slipsd.inputs import LineError, ZeekInput  # noqa: E402

import zeekgen  # noqa: E402

DEMO = REPO / "samples" / "demo-zeek"


def test_flows_are_deterministic_for_a_seed() -> None:
    assert zeekgen.make_conn_flows(300, seed=5) == zeekgen.make_conn_flows(300, seed=5)
    assert zeekgen.make_conn_flows(300, seed=5) != zeekgen.make_conn_flows(300, seed=6)


def test_flows_are_plausible() -> None:
    hosts = ["10.1.1.1", "10.1.1.2"]
    servers = ["198.51.100.9"]
    flows = zeekgen.make_conn_flows(
        2000, seed=2, start_ts=1000.0, span=50.0, hosts=hosts, servers=servers
    )
    assert len(flows) == 2000
    times = [f["ts"] for f in flows]
    assert times == sorted(times)
    assert all(1000.0 <= t < 1050.0 for t in times)
    assert {f["id.orig_h"] for f in flows} == set(hosts)
    assert {f["id.resp_h"] for f in flows} == set(servers)
    uids = [f["uid"] for f in flows]
    assert all(re.fullmatch(r"C[A-Za-z0-9]{17}", u) for u in uids)
    assert len(set(uids)) == len(uids)
    assert {f["proto"] for f in flows} == {"tcp", "udp", "icmp"}
    for f in flows:
        assert list(f) == [name for name, _ in zeekgen.FIELDS["conn"]]
        if f["conn_state"] == "S0":
            assert f["duration"] is None and f["orig_bytes"] is None
        else:
            assert f["duration"] >= 0 and f["orig_ip_bytes"] >= f["orig_bytes"]


def test_tsv_header_and_value_formats(tmp_path: Path) -> None:
    rec = zeekgen.conn_record(
        1700000000.5, "CabcdefghijklmnopQ", "192.168.1.2", 5555, "198.51.100.1", 80,
        service="", duration=None, orig_bytes=10, resp_bytes=0, conn_state="-",
        history="a\tb\\c", local_orig=True, local_resp=False, tunnel_parents=[],
    )  # fmt: skip
    path = tmp_path / "conn.log"
    assert zeekgen.write_conn_log(str(path), [rec], fmt="tsv") == 1
    lines = path.read_text().splitlines()
    assert lines[:5] == [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
    ]
    assert lines[5] == "#open\t2023-11-14-22-13-20"
    assert lines[6].split("\t")[1:] == [n for n, _ in zeekgen.FIELDS["conn"]]
    assert lines[7].split("\t")[1:] == [t for _, t in zeekgen.FIELDS["conn"]]
    assert lines[-1].startswith("#close\t")
    cells = dict(zip(lines[6].split("\t")[1:], lines[8].split("\t"), strict=True))
    assert cells["ts"] == "1700000000.500000"
    assert cells["service"] == "(empty)"  # empty string
    assert cells["duration"] == "-"  # unset
    assert cells["conn_state"] == "\\x2d"  # a real "-" must not read as unset
    assert cells["history"] == "a\\x09b\\x5cc"
    assert (cells["local_orig"], cells["local_resp"]) == ("T", "F")
    assert cells["tunnel_parents"] == "(empty)"


def test_tsv_set_elements_escape_the_set_separator(tmp_path: Path) -> None:
    path = tmp_path / "dns.log"
    rec = {"ts": 1.0, "uid": "C1", "answers": ["a,b", "c"], "TTLs": [1.5, 2.0]}
    zeekgen.write_log(str(path), "dns", [rec], "tsv")
    header = next(ln for ln in path.read_text().splitlines() if ln.startswith("#fields"))
    data = path.read_text().splitlines()[8].split("\t")
    cells = dict(zip(header.split("\t")[1:], data, strict=True))
    assert cells["answers"] == "a\\x2cb,c"
    assert cells["TTLs"] == "1.500000,2.000000"


def test_tsv_rejects_fields_outside_the_header(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nonsense"):
        zeekgen.write_log(str(tmp_path / "conn.log"), "conn", [{"ts": 1.0, "nonsense": 1}], "tsv")


def test_json_leaves_out_unset_fields_and_can_write_iso_times(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    rec = zeekgen.conn_record(1700000000.25, "C1", "10.0.0.1", 1, "10.0.0.2", 2, service=None)
    zeekgen.write_conn_log(str(path), [rec])
    obj = json.loads(path.read_text())
    assert "service" not in obj and "tunnel_parents" not in obj
    assert obj["id.orig_h"] == "10.0.0.1" and obj["ts"] == 1700000000.25
    zeekgen.write_log(str(path), "conn", [rec], "json", iso_ts=True)
    assert json.loads(path.read_text())["ts"] == "2023-11-14T22:13:20.250000Z"


def test_unknown_log_type_gets_inferred_tsv_types(tmp_path: Path) -> None:
    path = tmp_path / "custom.log"
    recs: list[dict[str, Any]] = [
        {"ts": 1.0, "n": 3, "ok": True, "tags": ["a"], "x": None},
        {"x": "s"},
    ]
    zeekgen.write_log(str(path), "custom", recs, "tsv")
    lines = path.read_text().splitlines()
    assert lines[6] == "#fields\tts\tn\tok\ttags\tx"
    assert lines[7] == "#types\ttime\tcount\tbool\tvector[string]\tstring"
    assert lines[8:10] == ["1.000000\t3\tT\ta\t-", "-\t-\t-\t-\ts"]


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(200, seed=4)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        zeekgen.write_conn_log(str(tmp_path / sub / "conn.log.gz"), flows, "tsv")
    zeekgen.write_conn_log(str(tmp_path / "plain.log"), flows, "tsv")
    a = (tmp_path / "a" / "conn.log.gz").read_bytes()
    assert a == (tmp_path / "b" / "conn.log.gz").read_bytes()
    assert gzip.decompress(a) == (tmp_path / "plain.log").read_bytes()


@pytest.mark.parametrize("fmt", ["json", "tsv"])
def test_a_100k_flow_conn_log_is_quick_to_write(tmp_path: Path, fmt: str) -> None:
    started = time.perf_counter()
    flows = zeekgen.make_conn_flows(100_000, seed=9)
    path = tmp_path / "conn.log"
    assert zeekgen.write_conn_log(str(path), flows, fmt) == 100_000
    elapsed = time.perf_counter() - started
    with path.open() as f:
        data_lines = sum(1 for line in f if not line.startswith("#"))
    assert data_lines == 100_000
    assert elapsed < 30, f"writing 100k flows took {elapsed:.1f}s"


def _demo_events() -> list[dict[str, object]]:
    errors: list[LineError] = []
    events = [ev for _, _, ev in ZeekInput.from_path(str(DEMO)).records(errors.append)]
    assert errors == []
    return events


def test_demo_sample_is_reproducible(tmp_path: Path) -> None:
    script = REPO / "scripts" / "make_demo_sample.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["conn.log", "dns.log", "http.log", "ssl.log"]
    for name in written:
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name


def test_demo_sample_content() -> None:
    assert sum(p.stat().st_size for p in DEMO.iterdir()) < 250_000
    events = _demo_events()
    flows = [e for e in events if "state" in e]
    assert 200 <= len(flows) <= 600
    long_ones = [e for e in flows if float(e["duration"]) > 1500]  # type: ignore[arg-type]
    by_host: dict[object, set[object]] = {}
    for e in long_ones:
        assert e["state"] == "SF"
        by_host.setdefault(e["saddr"], set()).add(e["daddr"])
    assert len(by_host["192.168.56.101"]) >= 6
    assert len(by_host["192.168.56.102"]) == 1
    assert set(by_host) == {"192.168.56.101", "192.168.56.102"}
    sweep = {e["daddr"] for e in flows if e["saddr"] == "192.168.56.103" and e["dport"] == 23}
    assert len(sweep) == 150 and all(str(d).startswith("10.0.5.") for d in sweep)
    times = [float(e["ts"]) for e in events]  # type: ignore[arg-type]
    assert 1.5 * 3600 < max(times) - min(times) <= 2 * 3600


def test_demo_pcap_is_reproducible(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_demo_pcap.py"
    subprocess.run([sys.executable, str(script), str(tmp_path / "demo.pcap")], check=True,
                   capture_output=True, timeout=60)
    committed = Path(__file__).resolve().parents[1] / "samples" / "demo.pcap"
    assert (tmp_path / "demo.pcap").read_bytes() == committed.read_bytes()
