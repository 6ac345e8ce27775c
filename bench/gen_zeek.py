"""Deterministic, realistic Zeek logs at any size, for benchmarks and false-positive checks.

    .venv/bin/python bench/gen_zeek.py OUT --flows 1000000 [--span 86400] [--hosts 200]
        [--servers 5000] [--format json|tsv] [--seed 1]

Writes OUT/conn.log, dns.log, http.log and ssl.log in time order, one record per line
(records are produced and written one at a time, so 5M flows need little memory),
plus OUT/truth.json (what was mixed in, and where) and OUT/feed.csv (a local threat
feed, docs/feeds.md format, listing the blacklisted addresses and domains).

The background is ordinary traffic: HTTPS with an ssl record, HTTP with an http
record, NTP, or now and then a connection that got no answer, each preceded by a
DNS lookup at the local resolver when the host has not resolved that server's name
in the last 5 minutes; hosts and servers are picked with a skewed (Zipf-like)
popularity, as in real networks. Mixed in at known places:
- a horizontal scan of 445/tcp (300 addresses) at 25 % of the span;
- a vertical scan of 1000 ports of one server at 50 %;
- a beacon every 60 s (10 % jitter) from one host to one server for the whole span;
- contacts with blacklisted addresses and domains (listed in feed.csv) at 75 %.
Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import zlib
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import zeekgen

START = 1_700_000_000.0
RESOLVER = "192.168.1.1"
TTL = 300.0  # seconds a host keeps a name it resolved
# Public /8s that real traffic is full of; generated servers are spread over them.
SERVER_NETS = (23, 34, 35, 52, 54, 104, 142, 151, 157, 185)
WORDS = ("cdn", "api", "static", "img", "www", "mail", "edge", "media", "update", "login")
BLACKLISTED_IPS = [f"185.220.{i}.{j}" for i, j in ((100, 240), (101, 4), (102, 8))]
BLACKLISTED_DOMAINS = ["malware-drop.example-bad.com", "c2.evil-updates.net"]
USER_AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0",
               "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0")


class Network:
    """Hosts, servers and their names, with skewed popularity."""

    def __init__(self, rng: random.Random, hosts: int, servers: int) -> None:
        self.rng = rng
        self.hosts = [f"192.168.{1 + i // 240}.{10 + i % 240}" for i in range(hosts)]
        self.servers = [f"{SERVER_NETS[i % len(SERVER_NETS)]}.{(i * 37) % 250 + 1}."
                        f"{(i * 101) % 250 + 1}.{i % 200 + 20}" for i in range(servers)]
        self.names = [f"{WORDS[i % len(WORDS)]}{i}.site{i % 997}.com" for i in range(servers)]
        self.host_weights = list(accumulate(1 / (i + 1) for i in range(hosts)))
        self.server_weights = list(accumulate(1 / (i + 1) ** 0.8 for i in range(servers)))

    def host(self) -> str:
        return self.rng.choices(self.hosts, cum_weights=self.host_weights)[0]

    def server(self) -> int:
        return self.rng.choices(range(len(self.servers)), cum_weights=self.server_weights)[0]


Item = tuple[float, int, str, dict[str, Any]]  # (ts, tie-break, log type, record)


def background(net: Network, n: int, span: float) -> Iterator[Item]:
    """Ordinary traffic: each connection to a server is preceded by a DNS lookup of its
    name when the host has not resolved it in the last TTL, as a stub resolver does."""
    rng = net.rng
    step = span / max(n, 1)
    resolved: dict[tuple[str, int], float] = {}
    for i in range(n):
        ts = round(START + i * step + rng.random() * step * 0.9, 6)
        later = round(ts + min(0.0005, step * 0.05), 6)  # the connection after its lookup
        host = net.host()
        kind = rng.random()
        # Now and then one of the few servers that are down, tried again and again.
        index = net.server() if kind < 0.99 else len(net.servers) - 1 - i % 3
        server, name = net.servers[index], net.names[index]
        if ts - resolved.get((host, index), -TTL) >= TTL:
            resolved[(host, index)] = ts
            uid = zeekgen.make_uid(rng)
            yield ts, i, "conn", _conn(ts, uid, host, RESOLVER, 53, "udp", "dns", 0.02, 40, 90)
            yield ts, i, "dns", _dns(ts, uid, host, name, [server])
        uid = zeekgen.make_uid(rng)
        if kind < 0.75:
            sent, got = rng.randint(500, 3000), rng.randint(1000, 80000)
            yield later, i, "conn", _conn(later, uid, host, server, 443, "tcp", "ssl",
                                          rng.expovariate(1 / 8), sent, got)
            yield later, i, "ssl", _ssl(later, uid, host, server, name)
        elif kind < 0.93:
            got = rng.randint(200, 200000)
            yield later, i, "conn", _conn(later, uid, host, server, 80, "tcp", "http",
                                          rng.expovariate(1 / 2), 400, got)
            yield later, i, "http", _http(later, uid, host, server, name, "/", got,
                                          USER_AGENTS[_stable(host) % 2])
        elif kind < 0.99:
            yield later, i, "conn", _conn(later, uid, host, server, 123, "udp", "ntp", 0.05,
                                          48, 48)
        else:
            yield later, i, "conn", _conn(later, uid, host, server, 443, "tcp", None, None,
                                          None, None, state="S0", history="S")


def injected(net: Network, span: float, truth: dict[str, Any]) -> Iterator[Item]:
    rng = random.Random(7)
    scanner, beaconer, victim = net.hosts[-1], net.hosts[-2], net.hosts[-3]
    ts = START + span * 0.25
    truth["horizontal_scan"] = {"attacker": scanner, "port": 445, "targets": 300, "ts": ts}
    for j in range(300):
        target = f"52.{200 + j // 250}.{j % 250}.{7 + j % 3}"
        yield _scan(ts + j * 0.01, rng, scanner, target, 445)
    ts = START + span * 0.5
    target = net.servers[1]
    truth["vertical_scan"] = {"attacker": scanner, "victim": target, "ports": 1000, "ts": ts}
    for port in range(1, 1001):
        yield _scan(ts + port * 0.005, rng, scanner, target, port)
    c2 = "45.155.205.7"
    truth["beacon"] = {"attacker": beaconer, "victim": c2, "port": 8443, "period": 60,
                       "jitter": 0.1}
    beat = START + 30.0
    while beat < START + span:
        uid = zeekgen.make_uid(rng)
        yield beat, -1, "conn", _conn(beat, uid, beaconer, c2, 8443, "tcp", None, 0.4,
                                      310 + rng.randint(0, 20), 1200)
        beat = round(beat + 60 * (1 + rng.uniform(-0.1, 0.1)), 6)
    ts = START + span * 0.75
    truth["blacklisted"] = {"attacker": victim, "ips": BLACKLISTED_IPS,
                            "domains": BLACKLISTED_DOMAINS, "ts": ts}
    for k, ip in enumerate(BLACKLISTED_IPS):
        uid = zeekgen.make_uid(rng)
        yield ts + k, -1, "conn", _conn(ts + k, uid, victim, ip, 443, "tcp", "ssl", 3.0,
                                        900, 5000)
    for k, domain in enumerate(BLACKLISTED_DOMAINS):
        uid = zeekgen.make_uid(rng)
        yield ts + 10 + k, -1, "dns", _dns(ts + 10 + k, uid, victim, domain, ["45.155.205.9"])


def _stable(text: str) -> int:
    """A hash that is the same in every process (str hashes are salted)."""
    return zlib.crc32(text.encode())


def _scan(ts: float, rng: random.Random, src: str, dst: str, port: int) -> Item:
    return ts, -1, "conn", _conn(ts, zeekgen.make_uid(rng), src, dst, port, "tcp", None, None,
                                 None, None, state="S0", history="S")


def _conn(ts: float, uid: str, src: str, dst: str, port: int, proto: str,
          service: str | None, duration: float | None, sent: int | None, got: int | None,
          state: str = "SF", history: str = "ShADadFf") -> dict[str, Any]:
    sport = 1024 + (_stable(uid) % 60000)
    return zeekgen.conn_record(
        ts, uid, src, sport, dst, port, proto=proto, service=service,
        duration=None if duration is None else round(duration, 6), orig_bytes=sent,
        resp_bytes=got, conn_state=state, local_orig=True, local_resp=False,
        history=history if proto == "tcp" else "Dd",
        orig_pkts=1 + (sent or 0) // 500, resp_pkts=(1 + (got or 0) // 1200) if got else 0)


def _id(ts: float, uid: str, src: str, dst: str, port: int) -> dict[str, Any]:
    return {"ts": ts, "uid": uid, "id.orig_h": src, "id.orig_p": 1024 + _stable(uid) % 60000,
            "id.resp_h": dst, "id.resp_p": port}


def _dns(ts: float, uid: str, src: str, query: str, answers: list[str]) -> dict[str, Any]:
    return {**_id(ts, uid, src, RESOLVER, 53), "proto": "udp", "trans_id": _stable(uid) % 65536,
            "query": query, "qclass": 1, "qclass_name": "C_INTERNET", "qtype": 1,
            "qtype_name": "A", "rcode": 0, "rcode_name": "NOERROR", "AA": False, "TC": False,
            "RD": True, "RA": True, "Z": 0, "answers": answers, "TTLs": [300.0] * len(answers),
            "rejected": False}


def _ssl(ts: float, uid: str, src: str, dst: str, name: str) -> dict[str, Any]:
    return {**_id(ts, uid, src, dst, 443), "version": "TLSv13",
            "cipher": "TLS_AES_128_GCM_SHA256", "curve": "x25519", "server_name": name,
            "resumed": False, "established": True, "ja3": "773906b0efdefa24a7f2b8eb6985bf37",
            "ja3s": "eb1d94daa7e0344597e756a1fb6e7054"}


def _http(ts: float, uid: str, src: str, dst: str, host: str, uri: str, got: int,
          agent: str) -> dict[str, Any]:
    return {**_id(ts, uid, src, dst, 80), "trans_depth": 1, "method": "GET", "host": host,
            "uri": uri, "version": "1.1", "user_agent": agent, "request_body_len": 0,
            "response_body_len": got, "status_code": 200, "status_msg": "OK",
            "resp_mime_types": ["text/html"]}


def generate(out: Path, flows: int, span: float, hosts: int, servers: int, fmt: str,
             seed: int) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    net = Network(random.Random(seed), hosts, servers)
    truth: dict[str, Any] = {"flows": flows, "span": span, "start": START, "seed": seed}
    writers = {t: zeekgen.LogWriter(str(out / f"{t}.log"), t, fmt)
               for t in ("conn", "dns", "http", "ssl")}
    merged = heapq.merge(background(net, flows, span), injected(net, span, truth),
                         key=lambda item: item[0])
    try:
        for _, _, log_type, record in merged:
            writers[log_type].write(record)
    finally:
        for writer in writers.values():
            writer.close()
    truth["records"] = {t: w.count for t, w in writers.items()}
    with open(out / "feed.csv", "w") as feed:
        feed.write("# generated by bench/gen_zeek.py: the blacklisted contacts it mixed in\n")
        feed.writelines(f"{ip},high,generated blacklisted address,ip\n" for ip in BLACKLISTED_IPS)
        feed.writelines(f"{d},high,generated blacklisted domain,domain\n"
                        for d in BLACKLISTED_DOMAINS)
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--span", type=float, default=86400.0, help="seconds of traffic")
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--servers", type=int, default=5000)
    parser.add_argument("--format", choices=("json", "tsv"), default="json")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    truth = generate(args.out, args.flows, args.span, args.hosts, args.servers, args.format,
                     args.seed)
    print(json.dumps(truth["records"]))


if __name__ == "__main__":
    main()
