"""Building an Index from feed files; a bad line is counted and named, never fatal."""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from slipsd.intel._format import (
    POSITIONS,
    FeedError,
    Positions,
    classify,
    header_columns,
    split_line,
    threat_level,
)
from slipsd.intel._index import Index, Source

log = logging.getLogger(__name__)

FEED_SUFFIXES = (".csv", ".txt", ".list", ".csv.gz", ".txt.gz", ".list.gz")
MAX_MESSAGES = 50  # problems kept as text; all are counted


@dataclass(frozen=True)
class FeedInfo:
    """What a feed's lines default to when they do not say (plain lists never do)."""

    name: str
    threat_level: str
    description: str = ""
    tags: tuple[str, ...] = ()


@dataclass
class LoadReport:
    files: int = 0
    lines: int = 0
    indicators: int = 0  # lines that added or raised an entry
    problems: int = 0
    messages: list[str] = field(default_factory=list)  # the first MAX_MESSAGES problems
    per_feed: dict[str, int] = field(default_factory=dict)

    def problem(self, where: str, message: str) -> None:
        self.problems += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(f"{where}: {message}")

    def summary(self) -> str:
        return (f"{self.indicators} indicators from {self.files} feed files "
                f"({self.lines} lines, {self.problems} problems)")


def feed_files(path: Path, report: LoadReport) -> list[Path]:
    """The feed files of a path: itself, or a folder's files with a feed suffix, by name."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                      and p.name.lower().endswith(FEED_SUFFIXES))
    report.problem(str(path), "no such file or folder")
    return []


def _open(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


class Loader:
    """Adds feeds to one Index, sharing one Source per (feed, level, description)."""

    def __init__(self, index: Index | None = None) -> None:
        self.index = index if index is not None else Index()
        self.report = LoadReport()
        self._sources: dict[tuple[str, str, str, tuple[str, ...]], Source] = {}

    def source(self, feed: FeedInfo, level: str | None, description: str | None) -> Source:
        key = (feed.name, level or feed.threat_level, description or feed.description,
               feed.tags)
        found = self._sources.get(key)
        if found is None:
            found = self._sources[key] = Source(*key)
        return found

    def load_paths(self, paths: Iterable[Path], threat_level_default: str) -> None:
        for path in paths:
            for file in feed_files(path, self.report):
                self.load_file(file, FeedInfo(file.name, threat_level_default))

    def load_file(self, path: Path, feed: FeedInfo, where: str = "") -> None:
        """Add one file; problems are named ``where:line`` (default: the path)."""
        self.report.files += 1
        added = 0
        try:
            with _open(path) as handle:
                added = self.load_lines(handle, feed, where or str(path))
        except OSError as exc:
            self.report.problem(str(path), f"cannot read: {exc}")
        self.report.per_feed[feed.name] = self.report.per_feed.get(feed.name, 0) + added

    def load_lines(self, lines: Iterable[str], feed: FeedInfo, where: str) -> int:
        """Add every valid line; returns how many added or raised an entry."""
        report, add = self.report, self.index.add
        columns: Positions = POSITIONS
        header_seen = False
        sources: dict[tuple[str | None, str | None], Source] = {}  # this feed's, by line
        added = count = 0
        for count, raw in enumerate(lines, start=1):
            if count == 1 or (not header_seen and raw.startswith("#")):
                named = header_columns(raw)
                if named is not None:
                    columns, header_seen = named, True
                    continue
            try:
                row = split_line(raw if count > 1 else raw.lstrip("\ufeff"), columns)
                if row is None:
                    continue
                kind, key = classify(row.indicator, row.type)
                level = threat_level(row.threat_level) if row.threat_level else None
            except FeedError as exc:
                report.problem(f"{where}:{count}", str(exc))
                continue
            meta = (level, row.description)
            source = sources.get(meta)
            if source is None:
                source = sources[meta] = self.source(feed, level, row.description)
            if add(kind, key, source):
                added += 1
        report.lines += count
        report.indicators += added
        return added


def load(paths: Iterable[Path], threat_level_default: str = "medium") -> tuple[Index, LoadReport]:
    """An index of the local feed files and folders ``paths``."""
    loader = Loader()
    loader.load_paths(paths, threat_level_default)
    return loader.index, loader.report
