"""Remote feeds: the list file, and downloads that keep the last good copy.

Each feed is cached in a folder as ``<stem>.feed`` (the body) and
``<stem>.json`` (URL, validators, times, last error). A download asks the
server with If-None-Match / If-Modified-Since; 304 keeps the copy. Anything
else that is not a 200 with a plausible body (an error status, a timeout, a
refused connection, an HTML page, a body over the size cap) also keeps the
copy, so a machine offline goes on with what it had. Bodies and metadata are
written to a temporary file and renamed, under a per-feed lock, so two runs
refreshing at once neither corrupt a file nor both download it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from slipsd.intel._format import FeedError, positions, split_line, threat_level
from slipsd.intel._load import LoadReport

USER_AGENT = "slips-threat-intelligence"
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class RemoteFeed:
    """One line of the remote feed list."""

    url: str
    threat_level: str
    tags: tuple[str, ...] = ()
    description: str = ""

    @property
    def name(self) -> str:
        """Short readable name: host and file name of the URL."""
        rest = self.url.split("://", 1)[-1].split("?", 1)[0]
        host, _, path = rest.partition("/")
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return f"{host}/{last}" if last else host

    @property
    def stem(self) -> str:
        """File name stem of the cached copy: readable, and unique per URL."""
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        return f"{_SLUG.sub('-', self.name.lower()).strip('-')[:60]}-{digest}"


def parse_feed_list(path: Path, report: LoadReport) -> list[RemoteFeed]:
    """``url,threat_level,tags[,description]`` lines (tags separated by spaces)."""
    feeds: list[RemoteFeed] = []
    columns = positions(("indicator", "threat_level", "type", "description"))
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        report.problem(str(path), f"cannot read the remote feed list: {exc}")
        return feeds
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            row = split_line(raw, columns)
            if row is None:
                continue
            if not row.indicator.lower().startswith(("http://", "https://")):
                raise FeedError(f"not an http(s) URL: {row.indicator!r}")
            if row.threat_level is None:
                raise FeedError("no threat level (url,threat_level,tags[,description])")
            feeds.append(RemoteFeed(row.indicator, threat_level(row.threat_level),
                                    tuple((row.type or "").split()), row.description or ""))
        except FeedError as exc:
            report.problem(f"{path}:{number}", str(exc))
    return feeds


@dataclass(frozen=True)
class Fetch:
    """What a refresh did: downloaded, not_modified, fresh (not due), failed."""

    feed: RemoteFeed
    status: str
    body: Path | None  # the copy to use, None when there has never been one
    error: str = ""


class DownloadError(Exception):
    pass


class Downloader:
    def __init__(self, folder: Path, update_period: float, retry_period: float,
                 timeout: float, max_bytes: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.update_period = update_period
        self.retry_period = retry_period
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.clock = clock  # wall clock: download bookkeeping, never evidence

    def body_path(self, feed: RemoteFeed) -> Path:
        return self.folder / f"{feed.stem}.feed"

    def meta(self, feed: RemoteFeed) -> dict[str, Any]:
        try:
            meta = json.loads((self.folder / f"{feed.stem}.json").read_text())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) and meta.get("url") == feed.url else {}

    def due(self, feed: RemoteFeed) -> bool:
        """Whether the copy is older than the update period (or the last failure
        older than the retry period)."""
        meta = self.meta(feed)
        if not self.body_path(feed).is_file() or not meta:
            failed_at = float(meta.get("attempted", 0.0))
            return self.clock() - failed_at >= self.retry_period or not failed_at
        now = self.clock()
        if now - float(meta.get("checked", 0.0)) < self.update_period:
            return False
        attempted = float(meta.get("attempted", 0.0))
        return attempted <= float(meta.get("checked", 0.0)) or now - attempted >= self.retry_period

    def refresh(self, feed: RemoteFeed) -> Fetch:
        """Download the feed if it is due; never raises for network or server trouble."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._locked(feed):
            body = self.body_path(feed)
            have = body if body.is_file() else None
            if not self.due(feed):  # possibly refreshed by another run while we waited
                return Fetch(feed, "fresh", have)
            meta = self.meta(feed) if have else {}
            now = self.clock()
            try:
                status = self._get(feed, meta, have)
            except (requests.RequestException, OSError, DownloadError) as exc:
                error = _short(exc)
                self._write_meta(feed, {**(self.meta(feed) or {"url": feed.url}),
                                        "attempted": now, "error": error})
                return Fetch(feed, "failed", have, error)
            return Fetch(feed, status, body)

    def _get(self, feed: RemoteFeed, meta: dict[str, Any], have: Path | None) -> str:
        # One request per call, no shared session: feeds download in parallel threads.
        headers = {"User-Agent": USER_AGENT}
        if have is not None and meta.get("etag"):
            headers["If-None-Match"] = str(meta["etag"])
        if have is not None and meta.get("last_modified"):
            headers["If-Modified-Since"] = str(meta["last_modified"])
        deadline = time.monotonic() + self.timeout
        now = self.clock()
        with requests.get(feed.url, headers=headers, stream=True,
                          timeout=(self.timeout, self.timeout)) as response:
            if response.status_code == 304 and have is not None:
                self._write_meta(feed, {**meta, "checked": now, "attempted": now, "error": ""})
                return "not_modified"
            if response.status_code != 200:
                raise DownloadError(f"HTTP {response.status_code} {response.reason}")
            self._save_body(feed, response, deadline)
            self._write_meta(feed, {
                "url": feed.url, "etag": response.headers.get("ETag", ""),
                "last_modified": response.headers.get("Last-Modified", ""),
                "checked": now, "attempted": now, "error": "",
            })
        return "downloaded"

    def _save_body(self, feed: RemoteFeed, response: requests.Response, deadline: float) -> None:
        size = 0
        first = b""
        with self._temporary(self.body_path(feed)) as handle:
            for chunk in response.iter_content(chunk_size=65536):
                if not first.strip():
                    first += chunk[:64]
                    if first.lstrip()[:1] == b"<":
                        raise DownloadError("the server sent an HTML page, not a feed")
                size += len(chunk)
                if size > self.max_bytes:
                    raise DownloadError(f"larger than {self.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise DownloadError(f"took longer than {self.timeout:g} s")
                handle.write(chunk)

    def _write_meta(self, feed: RemoteFeed, meta: dict[str, Any]) -> None:
        with self._temporary(self.folder / f"{feed.stem}.json") as handle:
            handle.write(json.dumps(meta, sort_keys=True).encode())

    @contextlib.contextmanager
    def _temporary(self, target: Path) -> Iterator[Any]:
        """A file that replaces ``target`` atomically when the block ends without error."""
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self, feed: RemoteFeed) -> Iterator[None]:
        # Held for at most one download, which the timeout bounds.
        with open(self.folder / f"{feed.stem}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
