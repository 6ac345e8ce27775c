"""Zeek log input: a folder of logs or a single log, by path or by open file descriptor.

Folder members are recognised by name (``conn.log``, rotated ``conn.00:00:00-01:00:00.log``,
``conn.log.gz``, ``conn.json``) and by the type their content declares (TSV ``#path``,
JSON ``_path``); both TSV and JSON logs, plain or gzip, are read. Records of all files come
out merged in timestamp order.
"""

from __future__ import annotations

import gzip
import heapq
import json
import logging
import os
import stat
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import IO

from slipsd.events import LOG_CHANNELS
from slipsd.inputs._common import READ_ERRORS, FileStats, InputError, LineError
from slipsd.inputs._zeek_read import Opener, Record, Source, read_source, sniff_source

log = logging.getLogger(__name__)

KNOWN_TYPES = frozenset(LOG_CHANNELS)
_NOT_ZEEK = "not a Zeek log (neither a '#separator' TSV header nor JSON objects)"
_by_ts = itemgetter(0)


def log_type_from_name(name: str) -> str:
    """'conn.log', 'conn.00:00:00-01:00:00.log', 'conn.log.gz', 'conn.json' -> 'conn'.

    Returns "" for names that do not look like a log file.
    """
    base = name[:-3] if name.endswith(".gz") else name
    if not base.endswith((".log", ".json")):
        return ""
    return base.split(".", 1)[0]


def _path_opener(path: str) -> Opener:
    def opener() -> IO[bytes]:
        return open(path, "rb")

    return opener


def _close_fds(fds: list[int]) -> None:
    while fds:
        os.close(fds.pop())


@dataclass
class ZeekInput:
    """Zeek logs to read, opened from a path or from an already open file descriptor.

    The daemon receives descriptors over a socket (SCM_RIGHTS): either a directory
    opened with O_RDONLY|O_DIRECTORY or a regular file. The caller's descriptor is
    duplicated, never closed; call close() (or use ``with``) to release the duplicate.
    """

    name: str
    files: list[FileStats] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    folder: bool = False  # a folder of logs, not a single log file
    _sources: list[Source] = field(default_factory=list, repr=False, compare=False)
    _fds: list[int] = field(default_factory=list, repr=False, compare=False)
    _fds_taken: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._finalizer = weakref.finalize(self, _close_fds, self._fds)

    @classmethod
    def from_path(cls, path: str) -> ZeekInput:
        if not os.path.exists(path):
            raise InputError(f"{path}: no such file or directory")
        zin = cls(path)
        if os.path.isdir(path):
            try:
                with os.scandir(path) as it:
                    entries = [(e.name, e.is_file()) for e in it]
            except OSError as exc:
                raise InputError(f"{path}: cannot list folder: {exc.strerror}") from exc

            def member_opener(member: str) -> Opener:
                return _path_opener(os.path.join(path, member))

            zin._scan_folder(entries, member_opener, lambda m: os.path.join(path, m))
        else:
            zin._add_single(path, os.path.basename(path), _path_opener(path))
        return zin

    @classmethod
    def from_fd(cls, fd: int, name: str) -> ZeekInput:
        try:
            mode = os.fstat(fd).st_mode
            own = os.dup(fd)
        except OSError as exc:
            raise InputError(f"{name}: unusable file descriptor {fd}: {exc.strerror}") from exc
        zin = cls(name)
        zin._fds.append(own)
        zin._fds_taken = True
        try:
            if stat.S_ISDIR(mode):
                with os.scandir(own) as it:
                    entries = [(e.name, e.is_file()) for e in it]

                def member_opener(member: str) -> Opener:
                    return lambda: os.fdopen(os.open(member, os.O_RDONLY, dir_fd=own), "rb")

                zin._scan_folder(entries, member_opener, lambda m: f"{name}/{m}")
            elif stat.S_ISREG(mode):

                def reopen() -> IO[bytes]:
                    # Duplicates share the file offset, so every read starts by rewinding.
                    raw = os.fdopen(os.dup(own), "rb")
                    raw.seek(0)
                    return raw

                zin._add_single(name, os.path.basename(name), reopen)
            else:
                raise InputError(f"{name}: fd {fd} is neither a directory nor a regular file")
        except BaseException:
            zin.close()
            raise
        return zin

    def close(self) -> None:
        """Release the duplicated descriptor of a from_fd input (no-op otherwise)."""
        self._finalizer()

    def __enter__(self) -> ZeekInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scan_folder(
        self,
        entries: list[tuple[str, bool]],
        member_opener: Callable[[str], Opener],
        display: Callable[[str], str],
    ) -> None:
        self.folder = True
        for member, is_file in sorted(entries):
            shown = display(member)
            if not is_file:
                self.ignored.append(shown + "/")
                continue
            name_type = log_type_from_name(member)
            opener = member_opener(member)
            try:
                sniffed = sniff_source(opener)
            except READ_ERRORS as exc:
                if name_type in KNOWN_TYPES:
                    raise InputError(f"{shown}: cannot read: {exc}") from exc
                self.ignored.append(shown)
                continue
            if sniffed.fmt == "unknown":
                if name_type in KNOWN_TYPES:
                    raise InputError(f"{shown}: {_NOT_ZEEK}")
                self.ignored.append(shown)
                continue
            log_type = sniffed.path or name_type
            if log_type in KNOWN_TYPES:
                self._add(shown, log_type, sniffed.fmt, opener)
            else:
                self.ignored.append(shown)
        if self.ignored:
            log.info(
                "%s: not read (not a log type slips uses): %s", self.name, ", ".join(self.ignored)
            )
        if not self._sources:
            detail = f" (found only: {', '.join(self.ignored)})" if self.ignored else ""
            raise InputError(f"{self.name}: no Zeek logs in this folder{detail}")

    def _add_single(self, shown: str, basename: str, opener: Opener) -> None:
        base = basename[:-3] if basename.endswith(".gz") else basename
        name_type = base.split(".", 1)[0]
        try:
            sniffed = sniff_source(opener)
        except READ_ERRORS as exc:
            raise InputError(f"{shown}: cannot read: {exc}") from exc
        if sniffed.fmt == "unknown":
            raise InputError(f"{shown}: {_NOT_ZEEK}")
        log_type = sniffed.path or name_type
        if log_type not in KNOWN_TYPES:
            known = ", ".join(sorted(KNOWN_TYPES))
            source = "its #path header" if sniffed.path else "its file name"
            raise InputError(
                f"{shown}: log type {log_type!r} (from {source}) is not one slips reads ({known})"
            )
        self._add(shown, log_type, sniffed.fmt, opener)

    @property
    def log_types(self) -> frozenset[str]:
        """What the input can provide. Zeek writes a log only for what it saw, so a folder
        without http.log saw no HTTP: a folder offers every type. A single file offers
        only its own: a lone conn.log says nothing about the DNS lookups it had."""
        if self.folder:
            return KNOWN_TYPES
        return frozenset(f.log_type for f in self.files)

    def _add(self, shown: str, log_type: str, fmt: str, opener: Opener) -> None:
        stats = FileStats(name=shown, log_type=log_type)
        self.files.append(stats)
        self._sources.append(Source(stats, fmt, opener))

    def count_lines(self) -> int:
        """Lines in all files to read, for progress reports (a fast byte scan, no parsing)."""
        total = 0
        for src in self._sources:
            try:
                with src.open_raw() as raw:
                    stream: IO[bytes] | gzip.GzipFile = raw
                    if raw.read(2) == b"\x1f\x8b":
                        raw.seek(0)
                        stream = gzip.GzipFile(fileobj=raw)
                    else:
                        raw.seek(0)
                    while chunk := stream.read(1 << 20):
                        total += chunk.count(b"\n")
            except READ_ERRORS:
                continue  # records() reports what cannot be read
        return total

    def records(self, on_error: Callable[[LineError], None]) -> Iterator[Record]:
        """(ts, channel, event) for every good line, in timestamp order across files.

        Each file's own order is kept. Bad lines go to on_error and reading goes on.
        """
        if self._fds_taken and not self._finalizer.alive:
            # The descriptor number may already belong to some other file by now.
            raise InputError(f"{self.name}: input was closed")
        for src in self._sources:
            src.stats.lines = src.stats.parsed = src.stats.bad = src.stats.meta = 0
        iters = [read_source(src, on_error) for src in self._sources]
        if len(iters) == 1:
            return iters[0]
        return heapq.merge(*iters, key=_by_ts)


# The input-format interface of slipsd.inputs.detect.
NAME = "zeek"
_ZEEK_KEYS = ("uid", "id.orig_h", "_path", "uids", "fuid")


def sniff(head: bytes, name: str) -> bool:
    """Zeek TSV ('#separator' header), Zeek JSON (a first object with ts and a Zeek key), gzip."""
    if head.startswith(b"\x1f\x8b"):
        return True
    text = head.decode("utf-8", errors="replace").lstrip()
    if text.startswith("#separator"):
        return True
    first = text.split("\n", 1)[0].strip()
    if not first.startswith("{"):
        return False
    try:
        obj = json.loads(first)
    except ValueError:
        return False
    return isinstance(obj, dict) and "ts" in obj and any(k in obj for k in _ZEEK_KEYS)


def from_fd(fd: int, name: str) -> ZeekInput:
    return ZeekInput.from_fd(fd, name)


def from_path(path: str) -> ZeekInput:
    return ZeekInput.from_path(path)
