"""Suricata eve.json input: one JSON object a line, each with an "event_type".

flow -> new_flow, dns -> new_dns, http -> new_http, tls -> new_ssl, ssh -> new_ssh,
fileinfo -> new_downloaded_file, all normalised like Zeek's records; every other
event type (alert, anomaly, stats, ...) is counted as a meta line. See
docs/architecture.md, "Input: suricata".
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import IO

from slipsd.events import LOG_CHANNELS, NEW_FLOW
from slipsd.inputs import _suricata_events as eve
from slipsd.inputs._common import FileStats, InputError, LineError
from slipsd.inputs._flowfile import FlowFile, OnError, Record, first_line
from slipsd.inputs._suricata_dns import DnsJoiner

log = logging.getLogger(__name__)

NAME = "suricata"
_DNS = LOG_CHANNELS["dns"]
HANDLERS: dict[str, tuple[str, Callable[[eve.Event, int, str], eve.Event]]] = {
    "flow": (NEW_FLOW, eve.flow),
    "http": (LOG_CHANNELS["http"], eve.http),
    "tls": (LOG_CHANNELS["ssl"], eve.tls),
    "ssh": (LOG_CHANNELS["ssh"], eve.ssh),
    "fileinfo": (LOG_CHANNELS["files"], eve.fileinfo),
}
# Alerts are Suricata's verdicts, not traffic: not used yet (see the docs).
_LINE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)


class SuricataInput(FlowFile):
    """One eve.json file (plain or gzip), records sorted by time."""

    NAME = NAME
    LOG_TYPE = "eve"
    # The Zeek log types the event types read here stand for (see HANDLERS).
    log_types = frozenset({"conn", "dns", "http", "ssl", "ssh", "files"})

    def _check(self) -> None:
        with self._open_text() as text:
            for line in text:
                if line.strip():
                    if '"event_type"' not in line:
                        raise InputError(f"{self.name}: not a Suricata eve.json file "
                                         "(its first line has no event_type)")
                    return

    def _read(self, text: IO[str], stats: FileStats, on_error: OnError) -> Iterator[Record]:
        name = stats.name
        loads = json.loads
        handlers = HANDLERS
        joiner = DnsJoiner()
        other: Counter[str] = Counter()
        lineno = parsed = bad = meta = 0
        try:
            for lineno, line in enumerate(text, 1):
                try:
                    obj = loads(line)
                except ValueError as exc:
                    if line.isspace() or not line:
                        meta += 1
                        continue
                    bad += 1
                    reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                    on_error(LineError(name, lineno, f"invalid JSON: {reason}"))
                    continue
                if type(obj) is not dict:
                    bad += 1
                    on_error(LineError(name, lineno, "not a JSON object"))
                    continue
                event_type = obj.get("event_type")
                if not isinstance(event_type, str):
                    bad += 1
                    on_error(LineError(name, lineno, "no event_type"))
                    continue
                try:
                    if event_type == "dns":
                        opened, done = joiner.feed(obj, lineno, line)
                        for ev in done:
                            yield ev["ts"], _DNS, ev
                        if opened:
                            parsed += 1
                        else:
                            meta += 1  # merged into the record its query opened
                        continue
                    handler = handlers.get(event_type)
                    if handler is None:
                        meta += 1
                        other[event_type] += 1
                        continue
                    channel, convert = handler
                    ev = convert(obj, lineno, line)
                except _LINE_ERRORS as exc:
                    bad += 1
                    on_error(LineError(name, lineno, f"{event_type} event: {exc}"))
                    continue
                parsed += 1
                yield ev["ts"], channel, ev
            for ev in joiner.flush():
                yield ev["ts"], _DNS, ev
        finally:
            stats.lines, stats.parsed, stats.bad, stats.meta = lineno, parsed, bad, meta
            if other:
                log.info("%s: event types not read (counted as meta lines): %s", name,
                         ", ".join(f"{k} {v}" for k, v in other.most_common()))


def sniff(head: bytes, name: str) -> bool:
    """A first line that is a JSON object with "event_type" and "timestamp"."""
    line = first_line(head)
    if not line.lstrip().startswith("{"):
        return False
    try:
        obj = json.loads(line)
    except ValueError:
        # A first line longer than the head (a big stats event) is cut short.
        return '"event_type"' in line and '"timestamp"' in line
    return isinstance(obj, dict) and "event_type" in obj and "timestamp" in obj


def from_fd(fd: int, name: str) -> SuricataInput:
    return SuricataInput.from_fd(fd, name)


def from_path(path: str) -> SuricataInput:
    return SuricataInput.from_path(path)
