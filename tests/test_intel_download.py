"""Remote feeds against a real HTTP server on 127.0.0.1: validators, failures, periods, locks."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from slipsd.intel import Downloader, FeedConfig, FeedSet, LoadReport, RemoteFeed, parse_feed_list

from conftest import wait_for

BODY = b"# botnet C&C\n203.0.113.7\n198.51.100.0/24\nevil.example\n"
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


@dataclass
class Feed:
    """What the test server serves, and what it was asked."""

    body: bytes = BODY
    etag: str = '"v1"'
    last_modified: str = LAST_MODIFIED
    status: int = 200
    content_type: str = "text/plain"
    requests: list[dict[str, str]] = field(default_factory=list)
    gate: threading.Event | None = None  # when set, hold each answer until released


class Server:
    def __init__(self) -> None:
        self.feed = Feed()
        feed = self.feed

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.requests.append(dict(self.headers.items()))
                if feed.gate is not None:
                    feed.gate.wait(10)
                if feed.status != 200:
                    self.send_error(feed.status)
                    return
                tag, since = self.headers.get("If-None-Match"), self.headers.get(
                    "If-Modified-Since")
                # as RFC 9110 says: the entity tag decides when there is one
                if (tag == feed.etag) if tag is not None else (since == feed.last_modified):
                    self.send_response(304)
                    self.send_header("ETag", feed.etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", feed.content_type)
                self.send_header("Content-Length", str(len(feed.body)))
                self.send_header("ETag", feed.etag)
                self.send_header("Last-Modified", feed.last_modified)
                self.end_headers()
                self.wfile.write(feed.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/feeds/botnet.txt"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def downloader(folder: Path, update: float = 0.0, retry: float = 0.0,
               max_bytes: int = 2**20) -> Downloader:
    return Downloader(folder, update, retry, timeout=5.0, max_bytes=max_bytes)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.txt"  # nothing listens there any more


def test_first_download_then_304_with_validators(server: Server, tmp_path: Path) -> None:
    feed = RemoteFeed(server.url, "high", ("botnet",))
    first = downloader(tmp_path).refresh(feed)
    assert first.status == "downloaded" and first.body is not None
    assert first.body.read_bytes() == BODY
    assert "If-None-Match" not in server.feed.requests[0]
    assert server.feed.requests[0]["User-Agent"] == "slips-threat-intelligence"
    second = downloader(tmp_path).refresh(feed)  # a new run: state comes from the folder
    assert second.status == "not_modified" and second.body == first.body
    assert server.feed.requests[1]["If-None-Match"] == '"v1"'
    assert server.feed.requests[1]["If-Modified-Since"] == LAST_MODIFIED
    # a changed feed is downloaded again and replaces the copy
    server.feed.body, server.feed.etag = b"203.0.113.99\n", '"v2"'
    third = downloader(tmp_path).refresh(feed)
    assert third.status == "downloaded" and first.body.read_bytes() == b"203.0.113.99\n"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        f"{feed.stem}.feed", f"{feed.stem}.json"]  # no temporary file left behind


def test_update_period_is_respected(server: Server, tmp_path: Path) -> None:
    feed = RemoteFeed(server.url, "high")
    assert downloader(tmp_path, update=3600).refresh(feed).status == "downloaded"
    again = downloader(tmp_path, update=3600).refresh(feed)
    assert again.status == "fresh" and again.body is not None
    assert len(server.feed.requests) == 1
    assert downloader(tmp_path, update=0).refresh(feed).status == "not_modified"
    assert len(server.feed.requests) == 2


@pytest.mark.parametrize("trouble", ["500", "closed port", "html", "too big"])
def test_failures_keep_the_last_good_copy(server: Server, tmp_path: Path, trouble: str) -> None:
    good = RemoteFeed(server.url, "high")
    assert downloader(tmp_path).refresh(good).status == "downloaded"
    feed = good
    if trouble == "500":
        server.feed.status = 500
    elif trouble == "closed port":
        feed = RemoteFeed(closed_port_url(), "high")
        (tmp_path / f"{good.stem}.feed").rename(tmp_path / f"{feed.stem}.feed")
        meta = (tmp_path / f"{good.stem}.json").read_text().replace(server.url, feed.url)
        (tmp_path / f"{feed.stem}.json").write_text(meta)
    elif trouble == "html":
        server.feed.etag = '"v3"'
        server.feed.body = b"  <html><body>Please log in to the hotel wifi</body></html>"
    else:
        server.feed.etag, server.feed.body = '"v4"', b"203.0.113.1\n" * 1000
    fetch = downloader(tmp_path, max_bytes=5000).refresh(feed)
    assert fetch.status == "failed" and fetch.error
    assert fetch.body is not None and fetch.body.read_bytes() == BODY
    # the feed set builds its index from the copy that was kept
    feeds = feed_set(tmp_path, feed)
    assert [f.status for f in feeds.refresh()] == ["failed"]
    index, report = feeds.build()
    assert index.ip("203.0.113.7") is not None and report.problems == 0


def test_failure_without_a_copy_and_retry_period(server: Server, tmp_path: Path) -> None:
    server.feed.status = 503
    feed = RemoteFeed(server.url, "high")
    fetch = downloader(tmp_path, retry=3600).refresh(feed)
    assert fetch.status == "failed" and fetch.body is None and "503" in fetch.error
    # within the retry period the server is left alone
    assert downloader(tmp_path, retry=3600).refresh(feed).status == "fresh"
    assert len(server.feed.requests) == 1
    server.feed.status = 200
    assert downloader(tmp_path, retry=0).refresh(feed).status == "downloaded"


def test_two_runs_at_once_download_once(server: Server, tmp_path: Path) -> None:
    server.feed.gate = threading.Event()
    feed = RemoteFeed(server.url, "high")
    results: list[str] = []
    runs = [threading.Thread(target=lambda: results.append(
        downloader(tmp_path, update=3600).refresh(feed).status)) for _ in range(2)]
    for run in runs:
        run.start()
    wait_for(lambda: server.feed.requests, 10, "the first request")
    server.feed.gate.set()
    for run in runs:
        run.join(10)
    assert sorted(results) == ["downloaded", "fresh"]
    assert len(server.feed.requests) == 1


def feed_set(cache: Path, *feeds: RemoteFeed, update: float = 0.0,
             max_bytes: int = 5000) -> FeedSet:
    listing = cache.parent / f"{cache.name}-list.csv"
    listing.write_text("".join(f"{f.url},{f.threat_level},{' '.join(f.tags)}\n" for f in feeds))
    return FeedSet(FeedConfig(remote_list=listing, cache=cache, update_period=update,
                              retry_period=0.0, timeout=5.0, max_bytes=max_bytes))


def test_feed_set_names_the_url_in_problems(server: Server, tmp_path: Path) -> None:
    server.feed.body = b"203.0.113.7\nnot-an-indicator\n"
    feeds = feed_set(tmp_path / "cache", RemoteFeed(server.url, "high", ("botnet", "c2")))
    assert [f.status for f in feeds.refresh()] == ["downloaded"]
    index, report = feeds.build()
    match = index.ip("203.0.113.7")
    assert match is not None and match.source.threat_level == "high"
    assert match.source.feed == "127.0.0.1:{}/botnet.txt".format(server.url.split(":")[2]
                                                                   .split("/")[0])
    assert match.source.tags == ("botnet", "c2")
    assert report.messages == [f"{server.url}:2: cannot tell what kind of indicator "
                               "'not-an-indicator' is"]
    assert not feeds.changed()


def test_feed_list_problems(tmp_path: Path) -> None:
    listing = tmp_path / "remote.csv"
    listing.write_text("# comment\n"
                       "https://feeds.example/a.txt,high,botnet c2,Example botnet list\n"
                       "ftp://feeds.example/b.txt,high,x\n"
                       "https://feeds.example/c.txt\n"
                       "https://feeds.example/d.txt,severe,x\n")
    report = LoadReport()
    feeds = parse_feed_list(listing, report)
    assert feeds == [RemoteFeed("https://feeds.example/a.txt", "high", ("botnet", "c2"),
                                "Example botnet list")]
    assert feeds[0].name == "feeds.example/a.txt"
    assert [m.split(": ", 1)[0] for m in report.messages] == [
        f"{listing}:3", f"{listing}:4", f"{listing}:5"]
    assert report.problems == 3
