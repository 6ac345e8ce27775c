"""Deterministic writer of Zeek logs, for tests, the demo sample and benchmarks.

Writes real Zeek formats: TSV (LogAscii with its full header) and JSON (one object a
line, Zeek's ``LogAscii::use_json``). Records use Zeek's own field names
("id.orig_h", "orig_bytes", ...); None means an unset field. Standard library only.

    import zeekgen
    flows = zeekgen.make_conn_flows(100_000, seed=7)
    zeekgen.write_conn_log("conn.log", flows, fmt="tsv")
"""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

Record = dict[str, Any]
Fields = Sequence[tuple[str, str]]

_ID = [("id.orig_h", "addr"), ("id.orig_p", "port"), ("id.resp_h", "addr"), ("id.resp_p", "port")]


def _f(spec: str) -> list[tuple[str, str]]:
    """'ts:time uid:string @id x:count' -> field list; '@id' stands for the four id.* fields."""
    out: list[tuple[str, str]] = []
    for item in spec.split():
        if item == "@id":
            out.extend(_ID)
        else:
            name, _, zeek_type = item.partition(":")
            out.append((name, zeek_type))
    return out


# Field lists of the Zeek logs slips reads, in Zeek's column order (Zeek 5/6 defaults).
FIELDS: dict[str, list[tuple[str, str]]] = {
    "conn": _f(
        "ts:time uid:string @id proto:enum service:string duration:interval "
        "orig_bytes:count resp_bytes:count conn_state:string local_orig:bool local_resp:bool "
        "missed_bytes:count history:string orig_pkts:count orig_ip_bytes:count resp_pkts:count "
        "resp_ip_bytes:count tunnel_parents:set[string]"
    ),
    "dns": _f(
        "ts:time uid:string @id proto:enum trans_id:count rtt:interval query:string "
        "qclass:count qclass_name:string qtype:count qtype_name:string rcode:count "
        "rcode_name:string AA:bool TC:bool RD:bool RA:bool Z:count answers:vector[string] "
        "TTLs:vector[interval] rejected:bool"
    ),
    "http": _f(
        "ts:time uid:string @id trans_depth:count method:string host:string uri:string "
        "referrer:string version:string user_agent:string origin:string "
        "request_body_len:count response_body_len:count status_code:count status_msg:string "
        "info_code:count info_msg:string tags:set[enum] username:string password:string "
        "proxied:set[string] orig_fuids:vector[string] orig_filenames:vector[string] "
        "orig_mime_types:vector[string] resp_fuids:vector[string] "
        "resp_filenames:vector[string] resp_mime_types:vector[string]"
    ),
    "ssl": _f(
        "ts:time uid:string @id version:string cipher:string curve:string server_name:string "
        "resumed:bool last_alert:string next_protocol:string established:bool "
        "cert_chain_fuids:vector[string] client_cert_chain_fuids:vector[string] "
        "subject:string issuer:string client_subject:string client_issuer:string "
        "validation_status:string ja3:string ja3s:string"
    ),
    "ssh": _f(
        "ts:time uid:string @id version:count auth_success:bool auth_attempts:count "
        "direction:enum client:string server:string cipher_alg:string mac_alg:string "
        "compression_alg:string kex_alg:string host_key_alg:string host_key:string"
    ),
    "smtp": _f(
        "ts:time uid:string @id trans_depth:count helo:string mailfrom:string "
        "rcptto:set[string] date:string from:string to:set[string] subject:string "
        "last_reply:string path:vector[addr] user_agent:string tls:bool fuids:vector[string] "
        "is_webmail:bool"
    ),
    "dhcp": _f(
        "ts:time uids:set[string] client_addr:addr server_addr:addr mac:string "
        "host_name:string client_fqdn:string domain:string requested_addr:addr "
        "assigned_addr:addr lease_time:interval client_message:string server_message:string "
        "msg_types:vector[string] duration:interval"
    ),
    "arp": _f(
        "ts:time operation:string src_mac:string dst_mac:string orig_h:addr resp_h:addr "
        "orig_hw:string resp_hw:string"
    ),
    "notice": _f(
        "ts:time uid:string @id fuid:string file_mime_type:string file_desc:string proto:enum "
        "note:enum msg:string sub:string src:addr dst:addr p:port n:count peer_descr:string "
        "actions:set[enum] suppress_for:interval"
    ),
    "software": _f(
        "ts:time host:addr host_p:port software_type:enum name:string version.major:count "
        "version.minor:count version.minor2:count version.minor3:count version.addl:string "
        "unparsed_version:string"
    ),
    "files": _f(
        "ts:time fuid:string tx_hosts:set[addr] rx_hosts:set[addr] conn_uids:set[string] "
        "source:string depth:count analyzers:set[string] mime_type:string filename:string "
        "duration:interval local_orig:bool is_orig:bool seen_bytes:count total_bytes:count "
        "missing_bytes:count overflow_bytes:count timedout:bool parent_fuid:string md5:string "
        "sha1:string sha256:string"
    ),
    "weird": _f("ts:time uid:string @id name:string addl:string notice:bool peer:string"),
    "tunnel": _f("ts:time uid:string @id tunnel_type:enum action:enum"),
}

_CONN_NAMES = [name for name, _ in FIELDS["conn"]]
_UID_CHARS = string.ascii_letters + string.digits
_SPECIAL = re.compile(r"[\\\x00-\x1f\x7f]")


def make_uid(rng: random.Random, prefix: str = "C") -> str:
    """A Zeek-like connection uid: 'C' followed by 17 letters and digits."""
    return prefix + "".join(rng.choices(_UID_CHARS, k=17))


def _escape(text: str, extra: str = "") -> str:
    if _SPECIAL.search(text) or (extra and extra in text):
        out = []
        for ch in text:
            if ch == "\\" or ch < " " or ch == "\x7f" or ch == extra:
                out.append(f"\\x{ord(ch):02x}")
            else:
                out.append(ch)
        return "".join(out)
    return text


def _scalar_formatter(zeek_type: str, in_set: bool) -> Callable[[Any], str]:
    if zeek_type in ("time", "interval"):
        return lambda v: f"{v:.6f}"
    if zeek_type == "double":
        return lambda v: repr(float(v))
    if zeek_type in ("count", "int", "port", "counter"):
        return lambda v: str(int(v))
    if zeek_type == "bool":
        return lambda v: "T" if v else "F"
    if in_set:
        return lambda v: _escape(str(v), ",")

    def text(v: Any) -> str:
        s = _escape(str(v))
        if s == "":
            return "(empty)"
        if s in ("-", "(empty)"):
            # Zeek escapes a value that would read back as the unset/empty marker.
            return "\\x" + f"{ord(s[0]):02x}" + s[1:]
        return s

    return text


def _formatter(zeek_type: str) -> Callable[[Any], str]:
    inner = re.fullmatch(r"(?:set|vector)\[(.+)\]", zeek_type)
    if inner is None:
        return _scalar_formatter(zeek_type, in_set=False)
    element = _scalar_formatter(inner.group(1), in_set=True)

    def container(v: Any) -> str:
        return ",".join(map(element, v)) if v else "(empty)"

    return container


def _zeek_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d-%H-%M-%S")


def _iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def infer_fields(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Field list for a log type zeekgen does not know, from the records' values."""
    types: dict[str, str] = {}
    for rec in records:
        for key, value in rec.items():
            if types.get(key) not in (None, "string") or value is None:
                continue
            if isinstance(value, bool):
                types[key] = "bool"
            elif isinstance(value, int):
                types[key] = "count"
            elif isinstance(value, float):
                types[key] = "time" if key == "ts" else "double"
            elif isinstance(value, list | tuple | set):
                types[key] = "vector[string]"
            else:
                types[key] = "string"
    return list(types.items())


def _open_out(path: str) -> IO[str]:
    if path.endswith(".gz"):
        # mtime=0 keeps the gzip header, hence the whole file, deterministic.
        raw = gzip.GzipFile(path, "wb", mtime=0)
        return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
    return open(path, "w", encoding="utf-8", newline="\n")


def write_log(
    path: str,
    log_type: str,
    records: Iterable[Mapping[str, Any]],
    fmt: str = "json",
    *,
    fields: Fields | None = None,
    iso_ts: bool = False,
) -> int:
    """Write records as a Zeek log; returns how many were written.

    fmt is "json" or "tsv"; a path ending in ".gz" is gzip-compressed. In TSV, fields
    (default: FIELDS[log_type]) fixes the columns and keys outside it are an error; in
    JSON, unset (None) fields are left out like Zeek does. iso_ts writes JSON times as
    ISO8601 strings (Zeek's JSON::TS_ISO8601).
    """
    it: Iterator[Mapping[str, Any]] = iter(records)
    if fields is None and log_type not in FIELDS and fmt == "tsv":
        materialised = list(it)
        fields = infer_fields(materialised)
        it = iter(materialised)
    with LogWriter(path, log_type, fmt, fields=fields, iso_ts=iso_ts) as writer:
        for rec in it:
            writer.write(rec)
    return writer.count


class LogWriter:
    """One Zeek log written record by record (for logs too big to hold in memory).

    A TSV header needs the first record's time, so it is written with that record;
    an empty log gets its header at close.
    """

    def __init__(self, path: str, log_type: str, fmt: str = "json", *,
                 fields: Fields | None = None, iso_ts: bool = False) -> None:
        if fmt not in ("json", "tsv"):
            raise ValueError(f"fmt must be 'json' or 'tsv', not {fmt!r}")
        self.log_type, self.fmt, self.iso_ts = log_type, fmt, iso_ts
        self.fields = list(fields if fields is not None else FIELDS.get(log_type, []))
        self._names = [name for name, _ in self.fields]
        self._known = set(self._names)
        self._formatters = [_formatter(zeek_type) for _, zeek_type in self.fields]
        self._dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        self._out = _open_out(path)
        self.count = 0
        self._last_ts = 0.0

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, rec: Mapping[str, Any]) -> None:
        if self.fmt == "json":
            obj = {k: v for k, v in rec.items() if v is not None}
            if self.iso_ts and "ts" in obj:
                obj["ts"] = _iso_time(obj["ts"])
            self._out.write(self._dumps(obj) + "\n")
        else:
            if self.count == 0:
                self._header(float(rec.get("ts") or 0.0))
            if not self._known.issuperset(rec):
                extra = sorted(set(rec) - self._known)
                raise ValueError(f"{self.log_type} record has fields the TSV header lacks: "
                                 f"{extra}")
            cells = []
            for name, fmt_value in zip(self._names, self._formatters, strict=True):
                value = rec.get(name)
                cells.append("-" if value is None else fmt_value(value))
            self._out.write("\t".join(cells) + "\n")
            self._last_ts = float(rec.get("ts") or self._last_ts)
        self.count += 1

    def _header(self, first_ts: float) -> None:
        self._last_ts = first_ts
        self._out.write(
            "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            f"#path\t{self.log_type}\n#open\t{_zeek_time(first_ts)}\n"
            f"#fields\t{chr(9).join(self._names)}\n"
            f"#types\t{chr(9).join(t for _, t in self.fields)}\n"
        )

    def close(self) -> None:
        if self._out.closed:
            return
        if self.fmt == "tsv":
            if self.count == 0:
                self._header(0.0)
            self._out.write(f"#close\t{_zeek_time(self._last_ts)}\n")
        self._out.close()


def write_conn_log(path: str, flows: Iterable[Mapping[str, Any]], fmt: str = "json") -> int:
    return write_log(path, "conn", flows, fmt)


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
