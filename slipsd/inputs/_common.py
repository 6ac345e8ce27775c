"""Types shared by the flow readers: line errors, per-file counters, input errors."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


class InputError(Exception):
    """The input as a whole cannot be read (missing path, no logs, not a log at all)."""


@dataclass(frozen=True)
class LineError:
    """One line that could not be turned into an event; reading goes on after it."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class FileStats:
    """What happened to every line of one file.

    Once the file has been read to its end, ``lines == parsed + bad + meta``.
    """

    name: str
    log_type: str
    lines: int = 0
    parsed: int = 0
    bad: int = 0
    meta: int = 0


# Errors that mean "this file cannot be read" (gzip included), as opposed to a bad line in it.
READ_ERRORS = (OSError, EOFError, zlib.error)
