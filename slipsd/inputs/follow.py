"""Follow Zeek JSON logs as a live sensor writes them, across log rotation.

A sensor writes ``conn.log``, ``dns.log``... into its folder and Zeek renames
them when it rotates. Files are tracked by inode, so a renamed file is read to
its end and a new file under the old name is read from its start. Only whole
lines are taken; a line still being written waits for the next poll. Where
reading stopped is exposed as ``positions`` so that a restarted reader can
resume instead of reading everything again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipsd.inputs._common import FileStats, LineError
from slipsd.inputs.stream import parse_line
from slipsd.inputs.zeek import log_type_from_name

log = logging.getLogger(__name__)

Record = tuple[float, str, dict[str, Any]]
READ_CHUNK = 1 << 20
# Bytes read from one file per poll: a lagging ingest (a backlog, or a restart after a
# long stop) then holds a few MB of records at a time, not the whole backlog.
POLL_BYTES = 4 * READ_CHUNK


@dataclass
class _Tracked:
    path: Path
    log_type: str
    stats: FileStats
    offset: int = 0
    lineno: int = 0
    partial: bytes = b""
    handle: Any = None
    drained: bool = False  # the last poll read up to the end (not stopped by POLL_BYTES)


@dataclass
class FollowInput:
    """Zeek JSON logs in one or more folders, read as they grow."""

    folders: list[Path]
    name: str = "live"
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # inode -> offset, line
    files: list[FileStats] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    _tracked: dict[str, _Tracked] = field(default_factory=dict)

    def poll(self, on_error: Callable[[LineError], None]) -> list[Record]:
        """Records of the lines completed since the last poll, file by file, at most
        about POLL_BYTES of each file: poll again at once while a poll returns records."""
        self._discover()
        records: list[Record] = []
        for key, tracked in list(self._tracked.items()):
            records.extend(self._read(tracked, on_error))
            self.positions[key] = (tracked.offset, tracked.lineno)
            if tracked.drained and not self._still_named(tracked, key):
                tracked.handle.close()  # rotated away and fully read
                del self._tracked[key]
        return records

    def close(self) -> None:
        for tracked in self._tracked.values():
            tracked.handle.close()
        self._tracked.clear()

    def _discover(self) -> None:
        for folder in self.folders:
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue  # the sensor has not created it yet
            for entry in entries:
                log_type = log_type_from_name(entry.name)
                if not log_type or not entry.is_file() or entry.name.endswith(".gz"):
                    continue
                key = f"{folder}:{entry.inode()}"
                if key in self._tracked:
                    continue
                try:
                    handle = open(entry.path, "rb")  # noqa: SIM115 - kept open across polls
                except OSError as exc:
                    log.warning("cannot open %s: %s", entry.path, exc)
                    continue
                offset, lineno = self.positions.get(key, (0, 0))
                handle.seek(offset)
                stats = FileStats(name=entry.path, log_type=log_type)
                self.files.append(stats)
                self._tracked[key] = _Tracked(Path(entry.path), log_type, stats, offset, lineno,
                                              handle=handle)

    def _still_named(self, tracked: _Tracked, key: str) -> bool:
        inode = key.rsplit(":", 1)[1]
        try:
            return str(os.stat(tracked.path).st_ino) == inode
        except FileNotFoundError:
            # Renamed by rotation: look for it under another name in its folder.
            try:
                return any(str(e.inode()) == inode for e in os.scandir(tracked.path.parent))
            except FileNotFoundError:
                return False  # the whole folder is gone

    def _read(self, tracked: _Tracked, on_error: Callable[[LineError], None]) -> Iterable[Record]:
        out: list[Record] = []
        if os.fstat(tracked.handle.fileno()).st_size < tracked.offset:
            # Truncated in place (a restarted Zeek overwrites its logs): start again.
            log.info("%s was truncated: reading it from the start", tracked.path)
            tracked.handle.seek(0)
            tracked.offset = tracked.lineno = 0
            tracked.partial = b""
        budget = POLL_BYTES
        tracked.drained = False
        while True:
            if budget <= 0:
                break
            chunk = tracked.handle.read(READ_CHUNK)
            if not chunk:
                tracked.drained = True
                break
            budget -= len(chunk)
            data = tracked.partial + chunk
            lines = data.split(b"\n")
            tracked.partial = lines.pop()
            for raw in lines:
                tracked.lineno += 1
                tracked.offset += len(raw) + 1
                tracked.stats.lines += 1
                reason, record = parse_line(raw.decode("utf-8", errors="replace"),
                                            tracked.log_type)
                if record is not None:
                    tracked.stats.parsed += 1
                    out.append(record)
                elif reason:
                    tracked.stats.bad += 1
                    on_error(LineError(str(tracked.path), tracked.lineno, reason))
                else:
                    tracked.stats.meta += 1
        return out


class Wakeup:
    """Wakes the follower when a sensor writes (inotify through watchdog).

    Polling stays as the fallback (a folder that does not exist yet, a file
    system without inotify): ``wait`` returns at the latest after ``timeout``.
    """

    def __init__(self, folders: list[Path]) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        self._event = threading.Event()
        wake = self._event

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                wake.set()

        self._observer = Observer()  # type: ignore[no-untyped-call]
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._observer.schedule(  # type: ignore[no-untyped-call]
                _Handler(), str(folder), recursive=False)
        self._observer.daemon = True
        self._observer.start()  # type: ignore[no-untyped-call]

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> None:
        self._event.wait(timeout)
        self._event.clear()

    def close(self) -> None:
        self._observer.stop()  # type: ignore[no-untyped-call]
        self._observer.join(timeout=5)
