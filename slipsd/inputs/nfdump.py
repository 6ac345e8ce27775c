"""nfdump input: binary nfcapd files (nfdump 1.6 and 1.7 layouts) read through nfdump itself.

The file's format is private to nfdump (compressed blocks, extension maps, several
layouts), so slips runs the ``nfdump`` program (Debian package nfdump) on it and
reads one text line per record: ``nfdump -r /dev/fd/N -N -6 -O tstart -o fmt:...``
with TZ=UTC. ``fmt:`` rather than ``-o json`` because nfdump 1.7.1's JSON is one
pretty-printed array (about 30 lines a record, keys that vary with the record's
extensions) and ``-o csv`` drops the milliseconds; ``%tsr`` gives the start in
epoch seconds with milliseconds whatever the time zone.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import stat
import struct
import subprocess
import tempfile
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from slipsd.inputs._common import FileStats, InputError, LineError
from slipsd.inputs._nfdump_flows import FORMAT, Record
from slipsd.inputs._nfdump_pair import Totals, read_lines

log = logging.getLogger(__name__)

NAME = "nfdump"
PROGRAM = "nfdump"
MAGIC = 0xA50C  # nfdump's file magic, written in the writer's (little-endian) byte order
LAYOUTS = (1, 2)  # LAYOUT_VERSION_1: nfdump <= 1.6, LAYOUT_VERSION_2: nfdump 1.7
# -N: plain numbers and protocol numbers; -6: IPv6 addresses in full; -O tstart: records in
# start order (nfdump sorts them in its own memory); -C none: no site config can change the
# output.
READ_ARGS = ("-C", "none", "-N", "-6", "-O", "tstart", "-o", FORMAT)
# nfdump 1.7.1 exits 0 after a short read, so its error messages are recognised by their words.
_ERROR_WORDS = re.compile(r"error|corrupt|short read|fail|cannot|can't|bad ", re.IGNORECASE)
_FLOWS_LINE = re.compile(rb"^Flows: (\d+)$", re.MULTILINE)


def _program() -> str:
    found = shutil.which(PROGRAM)
    if found is None:
        raise InputError(f"{PROGRAM} is not installed; slips needs it to read nfdump files "
                         "(Debian package nfdump)")
    return found


def _child_env() -> dict[str, str]:
    # UTC and the C locale: nfdump prints times in local time and numbers per locale.
    return {**os.environ, "TZ": "UTC", "LC_ALL": "C"}


def _close(fds: list[int]) -> None:
    while fds:
        os.close(fds.pop())


@dataclass
class NfdumpInput:
    """One nfcapd file, held open by a private descriptor that nfdump reads as /dev/fd/N."""

    # Flows only: no application records, so their absence proves nothing.
    log_types = frozenset({"conn"})

    name: str
    fd: int
    files: list[FileStats] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    _fds: list[int] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.program = _program()  # first: on failure the caller still owns fd
        self._fds.append(self.fd)
        self._finalizer = weakref.finalize(self, _close, self._fds)
        self.files.append(FileStats(name=self.name, log_type="conn"))

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> NfdumpInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.program, *args], stdin=subprocess.DEVNULL, capture_output=True,
            pass_fds=(self.fd,), env=_child_env(), check=False,
        )

    def _path(self) -> str:
        if not self._finalizer.alive:
            raise InputError(f"{self.name}: input was closed")
        return f"/dev/fd/{self.fd}"

    def _message(self, raw: bytes, path: str) -> str:
        text = raw.decode("utf-8", errors="replace").replace(path, self.name)
        return "; ".join(line.strip() for line in text.splitlines() if line.strip())

    def check(self) -> None:
        """Refuse a file nfdump cannot read, with nfdump's reason (``nfdump -v`` walks it)."""
        path = self._path()
        done = self._run("-v", path)
        if done.returncode != 0:
            reason = self._message(done.stderr, path) or f"nfdump -v exited {done.returncode}"
            raise InputError(f"{self.name}: not a readable nfdump file: {reason}")

    def count_lines(self) -> int:
        """Records in the file, from the statistics nfdump keeps in its header (``-I``)."""
        try:
            done = self._run("-I", "-r", self._path())
        except (OSError, InputError):
            return 0
        found = _FLOWS_LINE.search(done.stdout)
        return int(found.group(1)) if done.returncode == 0 and found else 0

    def records(
        self, on_error: Callable[[LineError], None]
    ) -> Generator[Record, None, None]:
        """Conn events in start-time order; the two directions of a connection are joined."""
        path = self._path()
        stats = self.files[0]
        stats.lines = stats.parsed = stats.bad = stats.meta = 0
        return self._read(path, stats, on_error)

    def _read(
        self, path: str, stats: FileStats, on_error: Callable[[LineError], None]
    ) -> Generator[Record, None, None]:
        totals = Totals()
        with tempfile.TemporaryFile() as errors:
            # stderr goes to a file: a pipe nobody reads could fill up and stall nfdump.
            proc = subprocess.Popen(
                [self.program, "-r", path, *READ_ARGS], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=errors, pass_fds=(self.fd,), env=_child_env(),
            )
            assert proc.stdout is not None
            try:
                text = io.TextIOWrapper(proc.stdout, encoding="utf-8", errors="replace")
                yield from read_lines(text, stats, on_error, totals)
                returncode = proc.wait()
            finally:
                if proc.poll() is None:  # the consumer stopped early
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            errors.seek(0)
            message = self._message(errors.read(), path)
        records = stats.parsed + stats.bad
        if returncode == 0 and totals.processed >= 0 and totals.processed != records:
            log.warning("%s: nfdump reports %d flows, %d record lines were read",
                        self.name, totals.processed, records)
        if returncode != 0 or _ERROR_WORDS.search(message):
            # What was read stands; the unreadable rest counts as one bad line.
            stats.lines += 1
            stats.bad += 1
            reason = message or f"exited {returncode}"
            on_error(LineError(self.name, stats.lines, f"nfdump: {reason}"))
        elif message:
            log.warning("%s: nfdump: %s", self.name, message)


def sniff(head: bytes, name: str) -> bool:
    """The nfcapd file header: magic 0xA50C and layout version 1 or 2, little-endian."""
    if len(head) < 4:
        return False
    magic, layout = struct.unpack_from("<HH", head)
    return magic == MAGIC and layout in LAYOUTS


def _open(fd: int, name: str) -> NfdumpInput:
    """Takes ownership of ``fd``."""
    try:
        nfin = NfdumpInput(name, fd)
    except BaseException:
        os.close(fd)
        raise
    try:
        nfin.check()
    except BaseException:
        nfin.close()
        raise
    return nfin


def from_fd(fd: int, name: str) -> NfdumpInput:
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{name}: not a regular file")
        own = os.dup(fd)
    except OSError as exc:
        raise InputError(f"{name}: unusable file descriptor {fd}: {exc.strerror}") from exc
    return _open(own, name)


def from_path(path: str) -> NfdumpInput:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise InputError(f"{path}: cannot open: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path}: not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return _open(fd, path)
