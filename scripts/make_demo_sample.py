"""Write the bundled demo sample: Zeek JSON logs of a small made-up network.

    python3 scripts/make_demo_sample.py [OUTPUT_DIR]     (default: samples/demo-zeek)

About two hours of traffic of five hosts in 192.168.56.0/24 browsing web and TLS
servers in the documentation ranges 198.51.100.0/24 and 203.0.113.0/24, each page
preceded by a DNS lookup at the router 192.168.56.1. Two things stand out:

* 192.168.56.101 keeps seven TLS connections of 25 to 80 minutes open to seven
  different servers: enough long connections for an alert;
* 192.168.56.102 has a single long connection: evidence, but no alert;
* 192.168.56.103 sweeps 150 addresses of another private network, 10.0.5.0/24,
  for telnet (23/tcp) in two minutes: a horizontal port scan, and an alert.

The output is the same, byte for byte, on every run: fixed seed, fixed times.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zeekgen

START = 1_704_103_200.0  # 2024-01-01 10:00:00 UTC
SPAN = 2 * 3600.0
ROUTER = "192.168.56.1"
HOSTS = [f"192.168.56.{i}" for i in (101, 102, 103, 104, 105)]
SESSIONS_PER_HOST = 20

# (server, name, port): the sites the hosts browse.
SITES = [
    ("198.51.100.10", "www.example.com", 443),
    ("198.51.100.11", "static.example.com", 443),
    ("198.51.100.20", "news.example.net", 443),
    ("198.51.100.25", "intranet.example.org", 80),
    ("203.0.113.5", "api.example.net", 443),
    ("203.0.113.7", "cdn.example.org", 443),
    ("203.0.113.30", "downloads.example.com", 80),
    ("203.0.113.44", "mail.example.org", 443),
]
# (server, name, start offset s, duration s) of 192.168.56.101's long connections.
LONG_101 = [
    ("203.0.113.50", "sync.example.net", 120.0, 3620.5),
    ("203.0.113.51", "telemetry.example.com", 600.0, 2410.25),
    ("203.0.113.52", "updates.example.org", 1300.0, 1888.0),
    ("198.51.100.60", "push.example.net", 1900.0, 4100.75),
    ("198.51.100.61", "relay.example.com", 2500.0, 1750.5),
    ("198.51.100.62", "stream.example.org", 3100.0, 2999.0),
    ("198.51.100.63", "backup.example.net", 3700.0, 1620.125),
]
LONG_102 = ("198.51.100.70", "video.example.com", 2000.0, 2100.0)

AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


class Demo:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.conn: list[dict[str, Any]] = []
        self.dns: list[dict[str, Any]] = []
        self.http: list[dict[str, Any]] = []
        self.ssl: list[dict[str, Any]] = []

    def _ids(self, ts: float, host: str, server: str, port: int) -> dict[str, Any]:
        sport = self.rng.randint(32768, 60999)
        return {
            "ts": round(ts, 6),
            "uid": zeekgen.make_uid(self.rng),
            "id.orig_h": host,
            "id.orig_p": sport,
            "id.resp_h": server,
            "id.resp_p": port,
        }

    def lookup(self, ts: float, host: str, name: str, answer: str) -> None:
        ids = self._ids(ts, host, ROUTER, 53)
        rtt = round(self.rng.uniform(0.002, 0.03), 6)
        self.conn.append(
            zeekgen.conn_record(
                *ids.values(), proto="udp", service="dns", duration=rtt,
                orig_bytes=17 + len(name), resp_bytes=33 + len(name), conn_state="SF",
                history="Dd", orig_pkts=1, resp_pkts=1, local_orig=True, local_resp=True,
            )
        )  # fmt: skip
        self.dns.append(
            {
                **ids, "proto": "udp", "trans_id": self.rng.randint(1, 65535), "rtt": rtt,
                "query": name, "qclass": 1, "qclass_name": "C_INTERNET", "qtype": 1,
                "qtype_name": "A", "rcode": 0, "rcode_name": "NOERROR", "AA": False,
                "TC": False, "RD": True, "RA": True, "Z": 0, "answers": [answer],
                "TTLs": [300.0], "rejected": False,
            }
        )  # fmt: skip

    def visit(self, ts: float, host: str, server: str, name: str, port: int,
              duration: float | None = None) -> None:  # fmt: skip
        ids = self._ids(ts, host, server, port)
        if duration is None:
            duration = round(self.rng.uniform(0.05, 20.0), 6)
        sbytes = self.rng.randint(300, 3000)
        dbytes = self.rng.randint(2000, 90000) if duration < 60 else 400_000 + int(duration) * 37
        service = "ssl" if port == 443 else "http"
        self.conn.append(
            zeekgen.conn_record(
                *ids.values(), service=service, duration=duration, orig_bytes=sbytes,
                resp_bytes=dbytes, conn_state="SF", history="ShADadFf",
                orig_pkts=2 + sbytes // 500, resp_pkts=2 + dbytes // 1400,
                local_orig=True, local_resp=False,
            )
        )  # fmt: skip
        at = round(ts + self.rng.uniform(0.01, 0.05), 6)
        if service == "ssl":
            self.ssl.append(
                {
                    **ids, "ts": at, "version": "TLSv13", "cipher": "TLS_AES_128_GCM_SHA256",
                    "curve": "x25519", "server_name": name, "resumed": False,
                    "established": True, "next_protocol": "h2",
                }
            )  # fmt: skip
        else:
            path = self.rng.choice(["/", "/index.html", "/news", "/files/report.pdf"])
            mime = "application/pdf" if path.endswith(".pdf") else "text/html"
            self.http.append(
                {
                    **ids, "ts": at, "trans_depth": 1, "method": "GET", "host": name,
                    "uri": path, "version": "1.1", "user_agent": AGENT,
                    "request_body_len": 0, "response_body_len": dbytes - 250,
                    "status_code": 200, "status_msg": "OK", "tags": [],
                    "resp_mime_types": [mime],
                }
            )  # fmt: skip


    def sweep(self, start: float, host: str, targets: list[str], port: int) -> None:
        """SYNs to each target: most unanswered (S0), a few refused (REJ)."""
        for i, target in enumerate(targets):
            ids = self._ids(start + i * 0.8, host, target, port)
            refused = self.rng.random() < 0.1
            self.conn.append(
                zeekgen.conn_record(
                    *ids.values(), conn_state="REJ" if refused else "S0",
                    history="Sr" if refused else "S", duration=0.0 if refused else None,
                    orig_bytes=0 if refused else None, resp_bytes=0 if refused else None,
                    orig_pkts=1, resp_pkts=1 if refused else 0, local_orig=True,
                    local_resp=False,
                )
            )  # fmt: skip

def build(seed: int = 56) -> Demo:
    demo = Demo(seed)
    for host in HOSTS:
        for _ in range(SESSIONS_PER_HOST):
            ts = START + demo.rng.uniform(0.0, SPAN - 60.0)
            server, name, port = demo.rng.choice(SITES)
            demo.lookup(ts, host, name, server)
            demo.visit(ts + 0.05, host, server, name, port)
    long_ones = [(HOSTS[0], *c) for c in LONG_101] + [(HOSTS[1], *LONG_102)]
    for host, server, name, offset, duration in long_ones:
        demo.lookup(START + offset - 0.1, host, name, server)
        demo.visit(START + offset, host, server, name, 443, duration)
    demo.sweep(START + 3000.0, HOSTS[2], [f"10.0.5.{i}" for i in range(1, 151)], 23)
    return demo


def write(out_dir: Path, seed: int = 56) -> list[Path]:
    demo = build(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for log_type, records in (
        ("conn", demo.conn),
        ("dns", demo.dns),
        ("http", demo.http),
        ("ssl", demo.ssl),
    ):
        path = out_dir / f"{log_type}.log"
        # Zeek writes a record when its connection or transaction ends; ts order is
        # close enough for a sample and keeps the files easy to read.
        records.sort(key=lambda r: (r["ts"], r["uid"]))
        zeekgen.write_log(str(path), log_type, records, "json")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    default = Path(__file__).resolve().parents[1] / "samples" / "demo-zeek"
    out_dir = Path(argv[1]) if len(argv) > 1 else default
    for path in write(out_dir):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
