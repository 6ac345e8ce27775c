"""Zeek JSON lines from a pipe (``zeek ... | slipsctl analyze -``), log types mixed.

A pipe can be read once and has no name to tell its log type, so each line
says what it is: by Zeek's ``_path`` field when present, else by the fields
only one log type has. Lines come out in the order they arrive.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from slipsd.inputs._common import FileStats, InputError, LineError
from slipsd.inputs._zeek_norm import SCHEMAS, Schema

Record = tuple[float, str, dict[str, Any]]

# A field that only this log type has (checked in order: conn's fields are
# the most common, so the usual case costs one lookup).
_SIGNATURES: tuple[tuple[str, str], ...] = (
    ("conn_state", "conn"), ("qtype_name", "dns"), ("query", "dns"), ("method", "http"),
    ("server_name", "ssl"), ("cipher", "ssl"), ("auth_success", "ssh"), ("helo", "smtp"),
    ("mailfrom", "smtp"), ("msg_types", "dhcp"), ("src_mac", "arp"), ("note", "notice"),
    ("software_type", "software"), ("certificate.subject", "x509"), ("fuid", "files"),
    ("tunnel_type", "tunnel"),
    ("notice", "weird"),
)


def log_type_of(obj: dict[str, Any]) -> str:
    declared = obj.get("_path")
    if isinstance(declared, str) and declared in SCHEMAS:
        return declared
    for key, log_type in _SIGNATURES:
        if key in obj:
            return log_type
    return ""


class StreamInput:
    """One pass over JSON lines from a pipe; the descriptor is duplicated, never closed."""

    def __init__(self, fd: int, name: str) -> None:
        self.name = name
        self.stats = FileStats(name=name, log_type="mixed")
        self.files = [self.stats]
        self.ignored: list[str] = []
        self._fd = os.dup(fd)

    def count_lines(self) -> int:
        return 0  # unknown until the writer closes the pipe

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def records(self, on_error: Callable[[LineError], None]) -> Iterator[Record]:
        if self._fd < 0:
            raise InputError(f"{self.name}: input was closed")
        stats = self.stats
        with os.fdopen(os.dup(self._fd), "r", encoding="utf-8", errors="replace") as text:
            for lineno, line in enumerate(text, 1):
                stats.lines = lineno
                reason, record = parse_line(line)
                if record is not None:
                    stats.parsed += 1
                    yield record
                elif reason:
                    stats.bad += 1
                    on_error(LineError(self.name, lineno, reason))
                else:
                    stats.meta += 1


@functools.lru_cache(maxsize=4096)
def _key(log_type: str, field: str) -> str:
    return SCHEMAS[log_type].key_for(field)


def parse_line(line: str, log_type: str = "") -> tuple[str, Record | None]:
    """One Zeek JSON line: ("", record), ("", None) for blank and comment lines, or
    (reason, None) for a bad one. Without ``log_type`` the line must say its type."""
    text = line.strip()
    if not text or text.startswith("#"):
        return "", None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return f"invalid JSON: {getattr(exc, 'msg', exc)}", None
    if type(obj) is not dict:
        return "not a JSON object", None
    log_type = log_type or log_type_of(obj)
    if not log_type:
        return "not a Zeek log record slips reads (no _path, unknown fields)", None
    schema: Schema = SCHEMAS[log_type]
    event = schema.prefill.copy()
    event.update((_key(log_type, k), v) for k, v in obj.items() if k != "_path")
    try:
        schema.finish(event)
    except (ValueError, TypeError, AttributeError) as exc:
        return f"{log_type} record: {exc}", None
    return "", (event["ts"], schema.channel, event)
