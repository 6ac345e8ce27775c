"""Pick the reader for an input from its content, not its name.

Each input format lives in its own module of this package and offers:

    NAME: str                                        shown in messages
    def sniff(head: bytes, name: str) -> bool        True when ``head`` (the first
                                                     4 KiB of a regular file) is its format
    def from_fd(fd: int, name: str) -> Input         the caller keeps ``fd``
    def from_path(path: str) -> Input

The formats are tried in ``FORMATS`` order, most specific first; a format
whose module is absent is skipped, so formats can be added one at a time.
A folder is always a Zeek log folder and a pipe is a stream of Zeek JSON
lines (``stream.py``); anything nothing recognises is an ``InputError`` naming
the formats slips reads.
"""

from __future__ import annotations

import importlib
import os
import stat
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Protocol

from slipsd.inputs._common import FileStats, InputError, LineError

Record = tuple[float, str, dict[str, Any]]
HEAD_BYTES = 4096

# (format name, module): binary formats with magic numbers first, then text
# formats from the strictest to the loosest.
FORMATS: tuple[tuple[str, str], ...] = (
    ("pcap", "slipsd.inputs.pcap"),
    ("nfdump", "slipsd.inputs.nfdump"),
    ("suricata", "slipsd.inputs.suricata"),
    ("argus", "slipsd.inputs.argus"),
    ("zeek", "slipsd.inputs.zeek"),
)


class Input(Protocol):
    """What the ingest process needs from any input."""

    name: str
    files: list[FileStats]
    ignored: list[str]

    def records(self, on_error: Callable[[LineError], None]) -> Iterator[Record]: ...

    def count_lines(self) -> int: ...

    def close(self) -> None: ...


def _formats() -> list[tuple[str, ModuleType]]:
    found = []
    for label, module_name in FORMATS:
        try:
            found.append((label, importlib.import_module(module_name)))
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # a real missing dependency of an existing reader
    return found


def known_formats() -> list[str]:
    return [label for label, _ in _formats()]


def _choose(head: bytes, name: str) -> ModuleType:
    for _, module in _formats():
        if module.sniff(head, name):
            return module
    raise InputError(f"{name}: not an input slips can read (it reads "
                     f"{', '.join(known_formats())} files, or a folder of Zeek logs)")


def _zeek() -> ModuleType:
    return importlib.import_module("slipsd.inputs.zeek")


def open_fd(fd: int, name: str, zeek: str = "") -> Input:
    """The reader for an open file or folder descriptor (as received over the socket).

    ``zeek``: the zeek program to read captures with; empty: the flowmeter."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        raise InputError(f"{name}: unusable file descriptor {fd}: {exc.strerror}") from exc
    if stat.S_ISDIR(mode):
        return _zeek().from_fd(fd, name)  # type: ignore[no-any-return]
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        from slipsd.inputs.stream import StreamInput

        return StreamInput(fd, name)
    if not stat.S_ISREG(mode):
        raise InputError(f"{name}: neither a folder, a regular file nor a pipe")
    try:
        head = os.pread(fd, HEAD_BYTES, 0)
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror}") from exc
    module = _choose(head, name)
    if zeek and module.NAME == "pcap":
        return module.from_fd(fd, name, zeek=zeek)  # type: ignore[no-any-return]
    return module.from_fd(fd, name)  # type: ignore[no-any-return]


def open_path(path: str, zeek: str = "") -> Input:
    if os.path.isdir(path):
        return _zeek().from_path(path)  # type: ignore[no-any-return]
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror}") from exc
    module = _choose(head, path)
    if zeek and module.NAME == "pcap":
        return module.from_path(path, zeek=zeek)  # type: ignore[no-any-return]
    return module.from_path(path)  # type: ignore[no-any-return]
