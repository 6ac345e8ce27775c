"""Threat-intelligence feeds: parsing, O(1) lookup structures and remote downloads.

Free of Redis and processes, like netinfo: the ``threat_intelligence`` module
uses it, and so can any other module or tool. docs/feeds.md describes the feed
format and how remote feeds are kept.

    index, report = load([Path("etc/feeds")])
    match = index.ip("203.0.113.7")            # Match | None
"""

from slipsd.intel._download import Downloader, Fetch, RemoteFeed, parse_feed_list
from slipsd.intel._feeds import FeedConfig, FeedSet
from slipsd.intel._format import (
    LEVEL_RANK,
    LEVELS,
    FeedError,
    Row,
    classify,
    normalize_domain,
    normalize_url,
    split_line,
)
from slipsd.intel._index import Index, Match, Source
from slipsd.intel._load import FeedInfo, Loader, LoadReport, feed_files, load

__all__ = [
    "LEVELS",
    "LEVEL_RANK",
    "Downloader",
    "FeedConfig",
    "FeedError",
    "FeedInfo",
    "FeedSet",
    "Fetch",
    "Index",
    "LoadReport",
    "Loader",
    "Match",
    "RemoteFeed",
    "Row",
    "Source",
    "classify",
    "feed_files",
    "load",
    "normalize_domain",
    "normalize_url",
    "parse_feed_list",
    "split_line",
]
