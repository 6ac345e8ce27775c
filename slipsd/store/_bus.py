"""The message bus: one Redis Stream per channel and run, one consumer group per reader.

Entries carry batches of events (not one event each) so that a flow costs a
fraction of a round trip; ``slipsd.store._batch`` says how a batch is written. The
run's single producer numbers entries with one sequence across all channels (entry id
``<seq>-1``), which lets a reader of several channels process entries in the
order they were produced. The end of a run is an ``eos`` entry on every channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis

from slipsd.store import keys
from slipsd.store._batch import Entry, decode_entry, entry_fields
from slipsd.store._connect import BinaryClient, RedisClient, binary_client, command

log = logging.getLogger(__name__)

LAG_CHECK_EVERY: Final = 16  # flushes between lag measurements at most


class Producer:
    """Buffers events per channel and writes them as one entry per channel, with backpressure.

    ``flush`` gives each channel's batch the next sequence number in the order
    the channels first appeared in the buffer, so events emitted before a
    ``flush`` always precede events emitted after it on every channel.
    """

    def __init__(
        self,
        client: RedisClient,
        run_id: str,
        channels: Sequence[str],
        *,
        max_lag: int = 200,
        compress: bool = True,
    ) -> None:
        self._redis = client
        self._run = run_id
        self._channels = list(channels)
        self._max_lag = max_lag
        # Worth its CPU only where entries stay: a live run trims what its readers have read.
        self._compress = compress
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self.buffered = 0  # events waiting for ``flush`` (read once per record: no property)
        self._seq = int(client.incrby(keys.run(run_id, "seq"), 0))
        self.waited_seconds = 0.0  # time spent held back by slow readers
        # Per channel, an upper bound of its groups' lag: the lag last measured plus one
        # per entry written since. XINFO is asked only when a bound could pass max_lag
        # (or every LAG_CHECK_EVERY flushes, for groups rewound by a restarted reader),
        # not before every flush: one round trip less per batch while readers keep up.
        self._lag_bounds: dict[str, int] = {}
        self._unchecked = 0

    def emit(self, channel: str, event: dict[str, Any]) -> None:
        """Buffer one event; the caller decides when to ``flush``."""
        buffer = self._buffers.get(channel)
        if buffer is None:
            self._buffers[channel] = [event]
        else:
            buffer.append(event)
        self.buffered += 1

    def flush(self) -> None:
        if not self.buffered:
            return
        self._wait_for_readers()
        pipe = self._redis.pipeline(transaction=False)
        for channel, events in self._buffers.items():
            self._seq += 1
            pipe.xadd(keys.stream(self._run, channel), entry_fields(events, self._compress),
                      id=f"{self._seq}-1")
        pipe.set(keys.run(self._run, "seq"), self._seq)
        pipe.execute()
        for channel in self._buffers:
            self._lag_bounds[channel] = self._lag_bounds.get(channel, self._max_lag) + 1
        self._buffers = {}
        self.buffered = 0

    def close(self) -> None:
        """Flush, then mark the end of the run on every channel."""
        self.flush()
        pipe = self._redis.pipeline(transaction=False)
        for channel in self._channels:
            self._seq += 1
            pipe.xadd(keys.stream(self._run, channel), entry_fields(None),
                      id=f"{self._seq}-1")
        pipe.set(keys.run(self._run, "seq"), self._seq)
        pipe.execute()

    def trim_acknowledged(self) -> int:
        """Drop what every reader has acknowledged, on every channel (live runs)."""
        return sum(trim_acknowledged(self._redis, keys.stream(self._run, channel))
                   for channel in self._channels)

    def _wait_for_readers(self) -> None:
        # Waiting, not trimming: a slow module must never lose entries.
        self._unchecked += 1
        bounds = self._lag_bounds
        if self._unchecked < LAG_CHECK_EVERY and all(
            bounds.get(ch, self._max_lag + 1) <= self._max_lag for ch in self._buffers
        ):
            return
        self._unchecked = 0
        started = None
        while (lag := self.max_lag()) > self._max_lag:
            if started is None:
                started = time.monotonic()
                log.debug("readers lag by %d entries, holding input back", lag)
            time.sleep(0.005)
        if started is not None:
            self.waited_seconds += time.monotonic() - started

    def max_lag(self) -> int:
        """The worst lag of any group of the buffered channels' streams (0: none)."""
        lags = self._lags(list(self._buffers))
        self._lag_bounds.update(lags)
        return max(lags.values(), default=0)

    def _lags(self, channels: list[str]) -> dict[str, int]:
        pipe = self._redis.pipeline(transaction=False)
        for channel in channels:
            command(pipe, "XINFO", "GROUPS", keys.stream(self._run, channel))
        lags: dict[str, int] = {}
        for channel, groups in zip(channels, pipe.execute(raise_on_error=False), strict=True):
            worst = 0
            if not isinstance(groups, Exception):  # else: no stream yet, nobody reads it
                for group in groups:
                    lag = xinfo_dict(group).get("lag")
                    worst = max(worst, int(lag) if lag is not None else 0)
            lags[channel] = worst
        return lags


def _entry_id(text: str) -> tuple[int, int]:
    first, _, second = str(text).partition("-")
    return int(first), int(second or 0)


def trim_acknowledged(client: RedisClient, stream: str) -> int:
    """Remove the entries of ``stream`` that every consumer group has read and acknowledged;
    returns how many. For live runs only: a reader restarted after a trim replays what is
    left, not the whole run, which an analysis must never allow."""
    try:
        groups = command(client, "XINFO", "GROUPS", stream)
    except redis.ResponseError:
        return 0  # no such stream yet
    oldest: tuple[int, int] | None = None
    for raw in groups or []:
        info = xinfo_dict(raw)
        first = None
        if int(info.get("pending") or 0) > 0:
            first = _oldest_pending(command(client, "XPENDING", stream, info["name"]))
        if first is None:
            # Nothing pending, or all of it acknowledged since XINFO: up to the entry
            # delivered then, everything has been read (that one entry stays: harmless).
            first = info["last-delivered-id"]
        ident = _entry_id(first)
        oldest = ident if oldest is None or ident < oldest else oldest
    if oldest is None or oldest == (0, 0):
        return 0  # nobody reads it yet, or a group starts from the beginning
    return int(command(client, "XTRIM", stream, "MINID", f"{oldest[0]}-{oldest[1]}"))


def _oldest_pending(reply: Any) -> str | None:
    """The oldest unacknowledged id of an XPENDING summary (None: nothing is pending any
    more). redis-py parses the reply into a dict (``min``); a raw reply is a list whose
    second item is that id."""
    first = reply["min"] if isinstance(reply, dict) else reply[1]
    if first is None:
        return None
    return first.decode() if isinstance(first, bytes) else str(first)


def xinfo_dict(reply: Any) -> dict[str, Any]:
    """An XINFO reply as a dict, whether redis-py parsed it or not."""
    if isinstance(reply, dict):
        return reply
    items = list(reply)
    return {str(items[i]): items[i + 1] for i in range(0, len(items), 2)}


@dataclass
class Consumer:
    """One consumer group reading several channels of one run, in production order.

    On ``start`` the groups are created at the beginning of the streams. When
    they already existed the reader is a restarted one: every group is rewound
    to the start so the module rebuilds its state by replaying the run; the
    evidence it re-emits has the same ids and is deduplicated downstream.
    """

    client: RedisClient
    run_id: str
    group: str
    channels: Sequence[str]
    name: str = "worker-1"
    count: int = 64
    _held: dict[str, list[Entry]] = field(default_factory=dict)
    _finished: set[str] = field(default_factory=set)
    _binary: BinaryClient | None = None

    def __post_init__(self) -> None:
        # Entries may be MessagePack: read them as bytes, on a connection of their own.
        self._binary = binary_client(self.client)

    def start(self) -> bool:
        restarted = False
        for channel in self.channels:
            stream = keys.stream(self.run_id, channel)
            try:
                self.client.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
                restarted = True
        if restarted:
            for channel in self.channels:
                command(self.client,
                    "XGROUP", "SETID", keys.stream(self.run_id, channel), self.group, "0",
                    "ENTRIESREAD", "0",
                )
        return restarted

    @property
    def done(self) -> bool:
        return self._finished >= set(self.channels) and not any(self._held.values())

    def read(self, block_ms: int = 1000) -> list[Entry]:
        """The next entries that are safe to process, oldest first ([] on timeout)."""
        open_channels = [ch for ch in self.channels if ch not in self._finished]
        if open_channels:
            assert self._binary is not None
            streams: dict[Any, Any] = {keys.stream(self.run_id, ch): ">" for ch in open_channels}
            reply = self._binary.xreadgroup(
                self.group, self.name, streams, count=self.count, block=block_ms
            )
            full: list[int] = []
            prefix = len(keys.stream(self.run_id, ""))
            for stream_name, items in reply or []:
                channel = stream_name[prefix:].decode()
                entries = [decode_entry(channel, eid.decode(), fields) for eid, fields in items]
                self._held.setdefault(channel, []).extend(entries)
                if entries[-1].eos:
                    self._finished.add(channel)
                elif len(entries) >= self.count:
                    full.append(entries[-1].seq)
            horizon = min(full) if full else None
        else:
            horizon = None
        ready: list[Entry] = []
        for channel, entries in self._held.items():
            cut = len(entries)
            if horizon is not None:
                cut = next((i for i, e in enumerate(entries) if e.seq > horizon), cut)
            ready.extend(entries[:cut])
            self._held[channel] = entries[cut:]
        ready.sort(key=lambda e: e.seq)
        return ready

    def ack(self, entries: Iterable[Entry], pipe: Any = None) -> None:
        """Acknowledge ``entries``; queued on ``pipe`` when given (the caller executes it)."""
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(keys.stream(self.run_id, entry.channel), []).append(entry.id)
        if not by_stream:
            return
        target = pipe if pipe is not None else self.client.pipeline(transaction=False)
        for stream_name, ids in by_stream.items():
            target.xack(stream_name, self.group, *ids)
        if pipe is None:
            target.execute()
