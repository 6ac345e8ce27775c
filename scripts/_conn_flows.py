"""Made-up conn.log records for zeekgen: one record by hand, or many from a seed."""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from typing import Any

from _zeek_fields import FIELDS

Record = dict[str, Any]

_CONN_NAMES = [name for name, _ in FIELDS["conn"]]
_UID_CHARS = string.ascii_letters + string.digits


def make_uid(rng: random.Random, prefix: str = "C") -> str:
    """A Zeek-like connection uid: 'C' followed by 17 letters and digits."""
    return prefix + "".join(rng.choices(_UID_CHARS, k=17))


def conn_record(
    ts: float, uid: str, orig_h: str, orig_p: int, resp_h: str, resp_p: int, **fields: Any
) -> Record:
    """One conn.log record in Zeek's column order; other fields go by their Zeek names.

    Unset fields are None; missed_bytes and packet counts default to 0, and the IP
    byte counts to the payload plus 40 (tcp) or 28 bytes of headers a packet.
    """
    rec: Record = dict.fromkeys(_CONN_NAMES)
    rec.update({"ts": ts, "uid": uid, "id.orig_h": orig_h, "id.orig_p": orig_p})
    rec.update({"id.resp_h": resp_h, "id.resp_p": resp_p, "proto": "tcp", "missed_bytes": 0})
    rec.update({"orig_pkts": 0, "resp_pkts": 0}, **fields)
    per_packet = 40 if rec["proto"] == "tcp" else 28
    for side in ("orig", "resp"):
        if rec[f"{side}_ip_bytes"] is None:
            payload = rec[f"{side}_bytes"] or 0
            rec[f"{side}_ip_bytes"] = payload + per_packet * rec[f"{side}_pkts"]
    return rec


# Kinds of generated flows: weight, proto, service, port, conn_state, history,
# mean duration (s), and upper bounds of the orig and resp payload bytes.
_KINDS = [
    (40, "tcp", "ssl", 443, "SF", "ShADadFf", 8.0, 4000, 60000),
    (15, "tcp", "http", 80, "SF", "ShADadFf", 2.0, 1500, 200000),
    (25, "udp", "dns", 53, "SF", "Dd", 0.03, 80, 400),
    (8, "tcp", "ssh", 22, "S1", "ShAD", 30.0, 5000, 9000),
    (6, "tcp", None, 8080, "S0", "S", 0.0, 0, 0),
    (4, "tcp", None, 3389, "REJ", "Sr", 0.0, 0, 0),
    (2, "icmp", None, 0, "OTH", None, 1.0, 64, 64),
]


def make_conn_flows(
    n: int,
    *,
    seed: int = 1,
    start_ts: float = 1_700_000_000.0,
    span: float = 3600.0,
    hosts: Sequence[str] | None = None,
    servers: Sequence[str] | None = None,
) -> list[Record]:
    """n plausible conn.log records from hosts to servers, sorted by ts, same for a seed.

    Times and durations have microsecond precision, as Zeek writes them, so that they
    survive a TSV round trip exactly.
    """
    rng = random.Random(seed)
    hosts = list(hosts) if hosts else [f"192.168.1.{i}" for i in range(10, 30)]
    if not servers:
        servers = [f"{net}.{i}" for net in ("198.51.100", "203.0.113") for i in range(1, 51)]
    kinds = rng.choices(_KINDS, weights=[k[0] for k in _KINDS], k=n)
    times = sorted(round(start_ts + rng.random() * span, 6) for _ in range(n))
    flows: list[Record] = []
    randint = rng.randint
    choice = rng.choice
    for ts, kind in zip(times, kinds, strict=True):
        _, proto, service, port, state, history, mean_duration, max_sbytes, max_dbytes = kind
        if state in ("S0", "REJ"):
            duration, sbytes, dbytes = (None, None, None) if state == "S0" else (0.0, 0, 0)
            spkts, dpkts = randint(1, 3), (1 if state == "REJ" else 0)
        else:
            duration = round(rng.expovariate(1 / mean_duration), 6)
            sbytes, dbytes = randint(max_sbytes // 4, max_sbytes), randint(0, max_dbytes)
            spkts, dpkts = 1 + sbytes // 500, 1 + dbytes // 1200
        sport = randint(1024, 65535) if proto != "icmp" else 8
        flows.append(
            conn_record(
                ts, make_uid(rng), choice(hosts), sport, choice(servers), port,
                proto=proto, service=service, duration=duration, orig_bytes=sbytes,
                resp_bytes=dbytes, conn_state=state, local_orig=True, local_resp=False,
                history=history, orig_pkts=spkts, resp_pkts=dpkts,
            )
        )  # fmt: skip
    return flows
