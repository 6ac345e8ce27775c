"""One flow-export text file (Argus, Suricata eve.json) as a slips input, in time order.

Shared by the Argus and Suricata readers: opening by path or by a duplicated
descriptor, plain or gzip content, line counting, and sorting the records by
time within bounded memory. Both formats write a flow when it ends (or at a
status interval), so their lines are not in start-time order, while the
profiler wants events in time order.
"""

from __future__ import annotations

import heapq
import os
import pickle
import stat
import tempfile
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Self

from slipsd.inputs._common import READ_ERRORS, FileStats, InputError, LineError
from slipsd.inputs._zeek_read import open_text

Record = tuple[float, str, dict[str, Any]]
OnError = Callable[[LineError], None]
Opener = Callable[[], IO[bytes]]

# Records sorted in memory at once; beyond that, sorted runs go to temporary
# files and are merged. About 1 KiB per event, so some 50 MB at most.
RUN_SIZE = 50_000
_SPILL_BATCH = 1000


def head_text(head: bytes) -> str:
    """The start of a file as text, gunzipping the first bytes of a gzip file."""
    if head.startswith(b"\x1f\x8b"):
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
        except zlib.error:
            return ""
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


def first_line(head: bytes) -> str:
    """The first non-blank line of a file's head (possibly cut at the head's end)."""
    for line in head_text(head).split("\n"):
        if line.strip():
            return line.strip("\r\n")
    return ""


def _spill(run: list[tuple[float, int, str, dict[str, Any]]]) -> IO[bytes]:
    run.sort(key=_sort_key)
    # Returned open on purpose: time_sorted reads it back and closes it.
    spill = tempfile.TemporaryFile()  # noqa: SIM115
    for start in range(0, len(run), _SPILL_BATCH):
        pickle.dump(run[start : start + _SPILL_BATCH], spill, pickle.HIGHEST_PROTOCOL)
    spill.seek(0)
    return spill


def _unspill(spill: IO[bytes]) -> Iterator[tuple[float, int, str, dict[str, Any]]]:
    with spill:
        while True:
            try:
                batch = pickle.load(spill)
            except EOFError:
                return
            yield from batch


def _sort_key(item: tuple[float, int, str, dict[str, Any]]) -> tuple[float, int]:
    return item[0], item[1]


def time_sorted(records: Iterable[Record], run_size: int = RUN_SIZE) -> Iterator[Record]:
    """The records in ts order (ties keep their order), in at most ``run_size`` of memory.

    Everything is read before the first record comes out.
    """
    run: list[tuple[float, int, str, dict[str, Any]]] = []
    spills: list[IO[bytes]] = []
    try:
        for seq, (ts, channel, ev) in enumerate(records):
            run.append((ts, seq, channel, ev))
            if len(run) >= run_size:
                spills.append(_spill(run))
                run = []
        run.sort(key=_sort_key)
        if not spills:
            for ts, _, channel, ev in run:
                yield ts, channel, ev
            return
        merged = heapq.merge(*(_unspill(s) for s in spills), iter(run), key=_sort_key)
        for ts, _, channel, ev in merged:
            yield ts, channel, ev
    finally:
        for spill in spills:
            spill.close()


class FlowFile:
    """A single-file input; subclasses say how to read its lines (``_read``).

    The caller's descriptor is duplicated, never closed; ``close()`` releases the
    duplicate.
    """

    NAME = ""
    LOG_TYPE = ""

    def __init__(self, name: str, opener: Opener, fds: list[int]) -> None:
        self.name = name
        self.files = [FileStats(name=name, log_type=self.LOG_TYPE)]
        self.ignored: list[str] = []
        self._open_raw = opener
        self._fds = fds
        self._from_fd = bool(fds)
        self._finalizer = weakref.finalize(self, _close_fds, fds)

    @classmethod
    def from_path(cls, path: str) -> Self:
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such file")

        def opener() -> IO[bytes]:
            return open(path, "rb")

        return cls._checked(cls(path, opener, []))

    @classmethod
    def from_fd(cls, fd: int, name: str) -> Self:
        try:
            mode = os.fstat(fd).st_mode
            own = os.dup(fd)
        except OSError as exc:
            raise InputError(f"{name}: unusable file descriptor {fd}: {exc.strerror}") from exc
        if not stat.S_ISREG(mode):
            os.close(own)
            raise InputError(f"{name}: fd {fd} is not a regular file")

        def reopen() -> IO[bytes]:
            # Duplicates share the file offset, so every read starts by rewinding.
            raw = os.fdopen(os.dup(own), "rb")
            raw.seek(0)
            return raw

        return cls._checked(cls(name, reopen, [own]))

    @classmethod
    def _checked(cls, source: Self) -> Self:
        try:
            source._check()
        except BaseException:
            source.close()
            raise
        return source

    def _check(self) -> None:
        """Raise InputError when the file as a whole cannot be read as this format."""

    def _read(self, text: IO[str], stats: FileStats, on_error: OnError) -> Iterator[Record]:
        raise NotImplementedError

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_text(self) -> IO[str]:
        if self._from_fd and not self._finalizer.alive:
            # The descriptor number may already belong to some other file by now.
            raise InputError(f"{self.name}: input was closed")
        try:
            return open_text(self._open_raw())
        except OSError as exc:
            raise InputError(f"{self.name}: cannot open: {exc.strerror}") from exc

    def count_lines(self) -> int:
        """Lines to read, for progress reports (a fast byte scan, no parsing)."""
        total = 0
        try:
            with self._open_text() as text:
                while chunk := text.read(1 << 20):
                    total += chunk.count("\n")
        except READ_ERRORS:
            pass  # records() reports what cannot be read
        return total

    def records(self, on_error: OnError) -> Iterator[Record]:
        """(ts, channel, event) for every good line, in ts order; bad lines go to on_error."""
        if self._from_fd and not self._finalizer.alive:
            raise InputError(f"{self.name}: input was closed")
        stats = self.files[0]
        stats.lines = stats.parsed = stats.bad = stats.meta = 0
        return time_sorted(self._read_all(stats, on_error))

    def _read_all(self, stats: FileStats, on_error: OnError) -> Iterator[Record]:
        with self._open_text() as text:
            try:
                yield from self._read(text, stats, on_error)
            except READ_ERRORS as exc:
                # A gzip file cut short: what was read stands, the rest is one bad line.
                stats.lines += 1
                stats.bad += 1
                on_error(LineError(stats.name, stats.lines, f"cannot read further: {exc}"))


def _close_fds(fds: list[int]) -> None:
    while fds:
        os.close(fds.pop())
