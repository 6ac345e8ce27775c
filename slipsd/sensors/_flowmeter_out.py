"""Writing the flowmeter's logs: Zeek JSON lines sorted by time within bounded memory.

NFStream hands flows over when they end, not when they start, while slips reads
every log in timestamp order. Each log is therefore sorted on its way out: up to
``limit`` records in memory, sorted runs spilled to hidden files next to the log,
then one merge. Ties are broken by uid then by order of arrival within the uid,
so the bytes written do not depend on the order NFStream's meters finished in.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SPILL_RECORDS = 50_000
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _make_dumps() -> Callable[[Any], str]:
    """_ENCODER.encode for dicts, without what encode() sets up at every call.

    JSONEncoder.encode builds a C encoder (and a dict for circular references) for each
    object, about a fifth of its time on a conn record. The records written here are
    plain trees of dicts, lists and scalars, so one C encoder serves them all and writes
    the same text.
    """
    try:
        from _json import make_encoder
    except ImportError:  # a Python without the C accelerator
        return _ENCODER.encode
    encoder = make_encoder(None, _ENCODER.default, json.encoder.encode_basestring, None,
                           _ENCODER.key_separator, _ENCODER.item_separator, False, False, True)
    join = "".join
    return lambda rec: join(encoder(rec, 0))


_dumps = _make_dumps()


def sort_key(ts: float, uid: str, seq: int) -> str:
    # Fixed width, so comparing keys as strings compares times as numbers (ts >= 0).
    return f"{ts:021.6f} {uid} {seq:010d}"


class SortedLog:
    """One log file written in key order whatever order its records come in."""

    def __init__(self, path: Path, limit: int = SPILL_RECORDS) -> None:
        self.path = path
        self.limit = limit
        self.count = 0
        self._seq = 0
        self._buf: list[tuple[str, str]] = []
        self._runs: list[Path] = []

    def add(self, rec: dict[str, Any]) -> None:
        """Add a record; ties on (ts, uid) keep the order records were added in."""
        self._seq += 1
        self._buf.append((sort_key(rec["ts"], rec.get("uid", ""), self._seq), _dumps(rec)))
        self.count += 1
        if len(self._buf) >= self.limit:
            self._spill()

    def _spill(self) -> None:
        self._buf.sort()
        run = self.path.with_name(f".{self.path.name}.run{len(self._runs)}")
        with open(run, "w", encoding="utf-8") as out:
            out.writelines(f"{key}\t{line}\n" for key, line in self._buf)
        self._runs.append(run)
        self._buf.clear()

    def close(self) -> None:
        """Write the log (merging the spilled runs) and remove the runs."""
        self._buf.sort()
        handles = [open(run, encoding="utf-8") for run in self._runs]  # noqa: SIM115
        try:
            streams = [_read_run(h) for h in handles]
            merged = heapq.merge(*streams, iter(self._buf))
            with open(self.path, "w", encoding="utf-8") as out:
                out.writelines(line + "\n" for _, line in merged)
        finally:
            for handle in handles:
                handle.close()
            for run in self._runs:
                os.unlink(run)
            self._runs.clear()
            self._buf.clear()

    def discard(self) -> None:
        for run in self._runs:
            run.unlink(missing_ok=True)
        self._runs.clear()
        self._buf.clear()


def _read_run(handle: Any) -> Iterator[tuple[str, str]]:
    for row in handle:
        key, _, line = row.rstrip("\n").partition("\t")
        yield key, line
