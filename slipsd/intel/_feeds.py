"""Local and remote feeds together: refresh what is due, rebuild the index on change."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from slipsd.intel._download import Downloader, Fetch, RemoteFeed, parse_feed_list
from slipsd.intel._index import Index
from slipsd.intel._load import FeedInfo, Loader, LoadReport, feed_files

log = logging.getLogger(__name__)

PARALLEL_DOWNLOADS = 4


@dataclass(frozen=True)
class FeedConfig:
    local: tuple[Path, ...] = ()
    threat_level: str = "medium"  # of local lines that name none
    remote_list: Path | None = None
    cache: Path | None = None  # folder of the downloaded copies
    update_period: float = 86400.0
    retry_period: float = 3600.0
    timeout: float = 20.0
    max_bytes: int = 100 * 2**20


class FeedSet:
    """The configured feeds. ``refresh()`` downloads due remote feeds; ``build()``
    loads everything into a new Index; ``changed()`` tells whether a rebuild would
    see different files than the last build."""

    def __init__(self, config: FeedConfig) -> None:
        self.config = config
        self.list_report = LoadReport()
        self.remote: list[RemoteFeed] = []
        if config.remote_list is not None:
            self.remote = parse_feed_list(config.remote_list, self.list_report)
        self.downloader: Downloader | None = None
        if self.remote:
            if config.cache is None:
                raise ValueError("remote feeds need a cache folder")
            self.downloader = Downloader(config.cache, config.update_period,
                                         config.retry_period, config.timeout, config.max_bytes)
        self.last_fetch: dict[str, Fetch] = {}
        self._built: dict[Path, tuple[float, int]] = {}

    def refresh(self) -> list[Fetch]:
        """Download the remote feeds that are due, a few at a time."""
        if self.downloader is None:
            return []
        downloader = self.downloader
        with ThreadPoolExecutor(PARALLEL_DOWNLOADS, thread_name_prefix="feed") as pool:
            fetches = list(pool.map(downloader.refresh, self.remote))
        for fetch in fetches:
            self.last_fetch[fetch.feed.url] = fetch
            if fetch.status == "failed":
                kept = "keeping the last good copy" if fetch.body else "no copy yet"
                log.warning("feed %s: download failed (%s); %s", fetch.feed.url, fetch.error, kept)
            elif fetch.status == "downloaded":
                log.info("feed %s: downloaded", fetch.feed.url)
        return fetches

    def _files(self) -> dict[Path, tuple[float, int]]:
        """Every file a build reads, with its modification time and size."""
        report = LoadReport()
        files = [f for path in self.config.local for f in feed_files(path, report)]
        if self.downloader is not None:
            files += [self.downloader.body_path(feed) for feed in self.remote]
        found: dict[Path, tuple[float, int]] = {}
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                continue
            found[file] = (stat.st_mtime, stat.st_size)
        return found

    def changed(self) -> bool:
        return self._files() != self._built

    def build(self) -> tuple[Index, LoadReport]:
        files = self._files()
        loader = Loader()
        loader.report.problems = self.list_report.problems
        loader.report.messages = list(self.list_report.messages)
        loader.load_paths(self.config.local, self.config.threat_level)
        if self.downloader is not None:
            for feed in self.remote:
                body = self.downloader.body_path(feed)
                if body.is_file():
                    info = FeedInfo(feed.name, feed.threat_level, feed.description, feed.tags)
                    loader.load_file(body, info, feed.url)
        self._built = files
        return loader.index, loader.report
