"""Deterministic writer of Zeek logs, for tests, the demo sample and benchmarks.

Writes real Zeek formats: TSV (LogAscii with its full header) and JSON (one object a
line, Zeek's ``LogAscii::use_json``). Records use Zeek's own field names
("id.orig_h", "orig_bytes", ...); None means an unset field. Standard library only.
The column lists (FIELDS) are in _zeek_fields.py and the made-up conn records in
_conn_flows.py, beside this file; use them through this module.

    import zeekgen
    flows = zeekgen.make_conn_flows(100_000, seed=7)
    zeekgen.write_conn_log("conn.log", flows, fmt="tsv")
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from _conn_flows import Record, conn_record, make_conn_flows, make_uid
from _zeek_fields import FIELDS

__all__ = ["FIELDS", "Fields", "LogWriter", "Record", "conn_record", "infer_fields",
           "make_conn_flows", "make_uid", "write_conn_log", "write_log"]

Fields = Sequence[tuple[str, str]]

_SPECIAL = re.compile(r"[\\\x00-\x1f\x7f]")


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
