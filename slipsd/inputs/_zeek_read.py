"""One Zeek log file (TSV or JSON): opening it, sniffing its format, its line loops."""

from __future__ import annotations

import gzip
import io
import json
import json.scanner
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from slipsd.inputs._common import READ_ERRORS, FileStats, InputError, LineError
from slipsd.inputs._zeek_norm import SCHEMAS, Event, KeyMap, Schema
from slipsd.inputs._zeek_tsv import RowParser, TsvHeader, build_parser

log = logging.getLogger(__name__)

Record = tuple[float, str, Event]
OnError = Callable[[LineError], None]
Opener = Callable[[], IO[bytes]]

_SNIFF_LINES = 200
_SNIFF_LINE_LIMIT = 1 << 20
# json.loads' own C scanner, called directly: loads() spends a third of its time around
# it (type checks, two whitespace regexes). Anything but one value and the line end goes
# to loads(), which then decides, or words the error, as always.
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder())  # type: ignore[arg-type]
_JSON_SPACE = " \t\n\r"


class _GunzipText(io.TextIOWrapper):
    """Text over a GzipFile that also closes the raw file (GzipFile leaves it open)."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(
            gzip.GzipFile(fileobj=raw, mode="rb"),
            encoding="utf-8-sig",
            errors="replace",
            newline="\n",
        )
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def open_text(raw: IO[bytes]) -> IO[str]:
    """Text lines of a binary stream, gunzipped when it starts with the gzip magic.

    Takes ownership of raw. Lines keep their '\n'; undecodable bytes become U+FFFD
    rather than failing the whole file.
    """
    if isinstance(raw, io.BufferedReader) and raw.peek(2)[:2] == b"\x1f\x8b":
        return _GunzipText(raw)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="\n")


@dataclass(frozen=True)
class Sniffed:
    fmt: str  # "tsv", "json", "empty" or "unknown"
    path: str  # log type the content declares ('#path' or JSON '_path'), "" if none


def sniff(stream: IO[str]) -> Sniffed:
    """Look at the start of a file to tell TSV from JSON from anything else."""
    fmt = ""
    path = ""
    for _ in range(_SNIFF_LINES):
        line = stream.readline(_SNIFF_LINE_LIMIT)
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if not fmt:
            if text.startswith("{"):
                try:
                    first = json.loads(text)
                except ValueError:
                    return Sniffed("json", "")
                declared = first.get("_path") if isinstance(first, dict) else None
                return Sniffed("json", declared if isinstance(declared, str) else "")
            if not text.startswith("#"):
                return Sniffed("unknown", "")
            fmt = "tsv"
        if not text.startswith("#"):
            break
        if text.startswith("#path"):
            path = text[len("#path") :].strip()
        elif text.startswith("#fields"):
            return Sniffed("tsv", path)
    if fmt:
        # '#' lines but no '#fields' header in the first block: not a Zeek log.
        return Sniffed("unknown", "")
    return Sniffed("empty", "")


def iter_json(
    stream: IO[str], stats: FileStats, schema: Schema, on_error: OnError
) -> Iterator[Record]:
    loads = json.loads
    scan = _scan
    keymap = KeyMap(schema)
    getkey = keymap.__getitem__
    prefill = schema.prefill
    finish = schema.finish
    channel = schema.channel
    name = stats.name
    lineno = parsed = bad = meta = 0
    try:
        for lineno, line in enumerate(stream, 1):
            try:
                obj, end = scan(line, 0)
                rest = line[end:]
                if rest != "\n" and rest.strip(_JSON_SPACE):
                    raise ValueError("more after the value")
            except (StopIteration, ValueError):
                # Not one value from the first character on: loads() skips leading
                # spaces, or raises with its usual message.
                try:
                    obj = loads(line)
                except ValueError as exc:
                    text = line.strip()
                    if not text or text.startswith("#"):
                        meta += 1
                        continue
                    bad += 1
                    on_error(LineError(name, lineno, f"invalid JSON: {_json_reason(exc)}"))
                    continue
            if type(obj) is not dict:
                bad += 1
                on_error(LineError(name, lineno, "not a JSON object"))
                continue
            ev = prefill.copy()
            # One dict's keys and values: equal lengths, and strict= costs 10 % of the line.
            ev.update(zip(map(getkey, obj), obj.values()))  # noqa: B905
            try:
                finish(ev)
            except (ValueError, TypeError, AttributeError) as exc:
                bad += 1
                on_error(LineError(name, lineno, str(exc)))
                continue
            parsed += 1
            yield ev["ts"], channel, ev
    finally:
        _store(stats, lineno, parsed, bad, meta)


def _json_reason(exc: ValueError) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)


def iter_tsv(
    stream: IO[str], stats: FileStats, schema: Schema, on_error: OnError
) -> Iterator[Record]:
    header = TsvHeader()
    finish = schema.finish
    channel = schema.channel
    name = stats.name
    parser: RowParser | None = None
    parser_error = ""
    stale = True
    sep = header.separator
    lineno = parsed = bad = meta = 0
    try:
        for lineno, line in enumerate(stream, 1):
            first = line[0]
            if first == "#" or (first in " \t" and line.lstrip().startswith("#")):
                meta += 1
                if header.update(line):
                    stale = True
                    sep = header.separator
                elif header.path and header.path != stats.log_type:
                    log.warning(
                        "%s:%d: '#path %s' in a %s log; reading it as %s",
                        name,
                        lineno,
                        header.path,
                        stats.log_type,
                        stats.log_type,
                    )
                    header.path = ""
                continue
            if line.isspace():
                meta += 1
                continue
            if stale:
                stale = False
                try:
                    parser = build_parser(header, schema)
                except ValueError as exc:
                    parser = None
                    parser_error = str(exc)
            if parser is None:
                bad += 1
                on_error(LineError(name, lineno, parser_error))
                continue
            parts = line.rstrip("\r\n").split(sep)
            if len(parts) != len(parser.keys):
                bad += 1
                reason = f"expected {len(parser.keys)} fields, got {len(parts)}"
                on_error(LineError(name, lineno, reason))
                continue
            escaped = "\\" in line
            try:
                ev = parser.parse(parts, escaped)
            except (ValueError, KeyError):
                bad += 1
                on_error(LineError(name, lineno, parser.diagnose(parts, escaped)))
                continue
            try:
                finish(ev)
            except (ValueError, TypeError, AttributeError) as exc:
                bad += 1
                on_error(LineError(name, lineno, str(exc)))
                continue
            parsed += 1
            yield ev["ts"], channel, ev
    finally:
        _store(stats, lineno, parsed, bad, meta)


def _store(stats: FileStats, lines: int, parsed: int, bad: int, meta: int) -> None:
    stats.lines = lines
    stats.parsed = parsed
    stats.bad = bad
    stats.meta = meta


def reader_for(fmt: str) -> Callable[[IO[str], FileStats, Schema, OnError], Iterator[Record]]:
    # A file that was empty when sniffed is read as JSON: only blank lines are expected.
    return iter_tsv if fmt == "tsv" else iter_json


@dataclass
class Source:
    """One log file of an input: its counters, its format and how to open it (again)."""

    stats: FileStats
    fmt: str
    open_raw: Opener


def sniff_source(open_raw: Opener) -> Sniffed:
    """``sniff`` the start of the file ``open_raw`` opens."""
    with open_text(open_raw()) as text:
        return sniff(text)


def read_source(src: Source, on_error: OnError) -> Iterator[Record]:
    """Every good line of one file, in its order; bad lines go to ``on_error``."""
    stats = src.stats
    reader = reader_for(src.fmt)
    try:
        raw = src.open_raw()
    except OSError as exc:
        raise InputError(f"{stats.name}: cannot open: {exc.strerror}") from exc
    with open_text(raw) as text:
        try:
            yield from reader(text, stats, SCHEMAS[stats.log_type], on_error)
        except READ_ERRORS as exc:
            # Typically a gzip file cut short by a capture that is still running:
            # what was read stands, the unreadable rest counts as one bad line.
            stats.lines += 1
            stats.bad += 1
            on_error(LineError(stats.name, stats.lines, f"cannot read further: {exc}"))
