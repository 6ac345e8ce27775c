"""Argus binetflow input: ra's comma- or tab-separated flow records as Zeek-like conn events.

The first line is a header naming the columns (``StartTime,Dur,Proto,SrcAddr,...``);
which columns there are and their order vary with the ra command line, so every
field is found by its name. See docs/architecture.md, "Input: argus", for the
mapping of Argus states to Zeek's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import IO

from slipsd.events import NEW_FLOW
from slipsd.inputs._argus_parse import Columns, LineParser, MetaLine
from slipsd.inputs._common import FileStats, InputError, LineError
from slipsd.inputs._flowfile import FlowFile, OnError, Record, first_line

log = logging.getLogger(__name__)

NAME = "argus"


class ArgusInput(FlowFile):
    """One Argus binetflow file (plain or gzip), records sorted by start time."""

    NAME = NAME
    LOG_TYPE = "binetflow"
    # Flows only: no application layer, so no dns, http, ssl... records can exist.
    log_types = frozenset({"conn"})

    def _check(self) -> None:
        with self._open_text() as text:
            for line in text:
                if line.strip():
                    break
            else:
                return  # an empty file is read as zero lines
        columns = Columns.from_header(line)
        if columns is None:
            raise InputError(f"{self.name}: not an Argus binetflow file (no header line "
                             "naming StartTime, SrcAddr and DstAddr)")
        if missing := columns.missing():
            raise InputError(f"{self.name}: Argus header lacks column(s) {', '.join(missing)}")

    def _read(self, text: IO[str], stats: FileStats, on_error: OnError) -> Iterator[Record]:
        name = stats.name
        parser: LineParser | None = None
        header_error = "no header line before this line"
        lineno = parsed = bad = meta = 0
        non_ip = 0
        try:
            for lineno, line in enumerate(text, 1):
                if line.isspace() or not line:
                    meta += 1
                    continue
                if "addr" in line.lower():
                    columns = Columns.from_header(line)
                    if columns is not None:
                        # ra writes its header again when files are concatenated.
                        meta += 1
                        if missing := columns.missing():
                            parser = None
                            header_error = f"header of line {lineno} lacks {', '.join(missing)}"
                        else:
                            parser = LineParser(columns)
                        continue
                if parser is None:
                    bad += 1
                    on_error(LineError(name, lineno, header_error))
                    continue
                try:
                    ev = parser.parse(parser.fields(line), lineno, line)
                except MetaLine:
                    meta += 1
                    non_ip += 1
                    continue
                except ValueError as exc:
                    bad += 1
                    on_error(LineError(name, lineno, str(exc)))
                    continue
                parsed += 1
                yield ev["ts"], NEW_FLOW, ev
        finally:
            stats.lines, stats.parsed, stats.bad, stats.meta = lineno, parsed, bad, meta
            if non_ip:
                log.info("%s: %d records that are not IP flows (ARP, management, layer 2) "
                         "skipped", name, non_ip)


def sniff(head: bytes, name: str) -> bool:
    """A first line that is a header naming StartTime, SrcAddr and DstAddr (comma or tab)."""
    return Columns.from_header(first_line(head)) is not None


def from_fd(fd: int, name: str) -> ArgusInput:
    return ArgusInput.from_fd(fd, name)


def from_path(path: str) -> ArgusInput:
    return ArgusInput.from_path(path)
