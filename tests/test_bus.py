"""The bus on a real redis-server: order across channels, end of stream, replay, backpressure."""

from __future__ import annotations

import threading

import pytest

from slipsd.store import Consumer, Producer, RedisClient
from slipsd.store._batch import Entry

from conftest import wait_for


def drain(consumer: Consumer) -> list[Entry]:
    seen: list[Entry] = []
    while not consumer.done:
        entries = consumer.read(block_ms=200)
        seen.extend(entries)
        consumer.ack(entries)
    return seen


def test_entries_arrive_in_production_order_across_channels(redis_client: RedisClient) -> None:
    producer = Producer(redis_client, "r1", ["a", "b"], max_lag=10_000)
    expected = []
    for i in range(300):
        channel = "a" if i % 3 else "b"
        producer.emit(channel, {"i": i})
        if i % 7 == 0:
            producer.flush()
        expected.append(i)
    producer.close()
    # A small count forces reads that stop in the middle of a channel.
    consumer = Consumer(redis_client, "r1", "g", ["a", "b"], count=2)
    assert consumer.start() is False
    entries = drain(consumer)
    seqs = [e.seq for e in entries]
    assert seqs == sorted(seqs)
    order = [ev["i"] for e in entries for ev in e.events]
    assert sorted(order) == expected
    # Between flushes the per-channel batches are whole; across flushes order holds.
    assert sum(1 for e in entries if e.eos) == 2


def test_restarted_consumer_replays_the_run(redis_client: RedisClient) -> None:
    producer = Producer(redis_client, "r2", ["a"], max_lag=10_000)
    for i in range(10):
        producer.emit("a", {"i": i})
        producer.flush()
    first = Consumer(redis_client, "r2", "g", ["a"], count=3)
    first.start()
    got = first.read(200)
    first.ack(got)
    assert [ev["i"] for e in got for ev in e.events] == [0, 1, 2]
    producer.close()
    again = Consumer(redis_client, "r2", "g", ["a"], count=3)
    assert again.start() is True
    replayed = [ev["i"] for e in drain(again) for ev in e.events]
    assert replayed == list(range(10))


def test_producer_waits_for_a_lagging_group(redis_client: RedisClient) -> None:
    consumer = Consumer(redis_client, "r3", "slow", ["a"], count=1)
    consumer.start()
    producer = Producer(redis_client, "r3", ["a"], max_lag=3)
    written = []

    def produce() -> None:
        for i in range(10):
            producer.emit("a", {"i": i})
            producer.flush()
            written.append(i)
        producer.close()

    thread = threading.Thread(target=produce)
    thread.start()
    # Nobody reads: the producer must stop once the group lags past the bound.
    wait_for(lambda: len(written) >= 4, 10, "the first batches")
    assert redis_client.xlen("slips:{r3}:stream:a") == len(written) == 4
    assert thread.is_alive()
    entries = drain(consumer)
    thread.join(10)
    assert not thread.is_alive()
    assert [ev["i"] for e in entries for ev in e.events] == list(range(10))
    assert producer.waited_seconds > 0


@pytest.mark.parametrize("packed", [False, True], ids=["json", "msgpack"])
def test_batches_keep_every_event_shape_and_type(packed: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from slipsd.store import _batch
    from slipsd.store._batch import decode_entry, encode_events

    # MessagePack is written only with msgpack's C extension (Debian's package); the
    # pinned pip build may lack it, so both encodings are exercised here regardless.
    monkeypatch.setattr(_batch, "_PACK", packed)

    events = [
        {"ts": 1.5, "uid": "C1", "sport": 80, "ok": True, "none": None, "answers": ["a"],
         "ttl": [300.0], "nested": {"k": [1, 2.0]}},
        {"ip": "10.0.0.1", "ts": 2.0},  # another shape in the same batch
        {"ts": 3.25, "uid": "C2", "sport": 443, "ok": False, "none": None, "answers": [],
         "ttl": [], "nested": {}},
        {"uid": "C3", "ts": 4.0},  # the same keys in another order: its own shape
        {"big": 2**70, "text": "\ud800"},  # beyond MessagePack: the batch goes as JSON
    ]
    for batch in (events[:4], events):
        encoded = encode_events(batch)
        assert isinstance(encoded, bytes) == (packed and batch is not events)
        decoded = decode_entry("c", "1-1", {b"d": encoded}).events
        assert decoded == batch
        assert [list(e) for e in decoded] == [list(e) for e in batch]
        assert [[type(v) for v in e.values()] for e in decoded] == \
            [[type(v) for v in e.values()] for e in batch]


@pytest.mark.parametrize("codec", ["zstd", "zlib"])
def test_large_batches_are_compressed_and_old_plain_entries_still_read(
        codec: str, redis_client: RedisClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import zlib

    import zstandard

    from slipsd.store import _batch, keys
    from slipsd.store._connect import binary_client

    if codec == "zlib":  # as without python3-zstandard
        monkeypatch.setattr(_batch, "zstandard", None)
    field, inflate = (b"s", zstandard.ZstdDecompressor().decompress) if codec == "zstd" \
        else (b"z", zlib.decompress)
    stream = keys.stream("r5", "a")
    # An entry as producers wrote them before compression: plain JSON of version 1.
    redis_client.xadd(stream, {"d": json.dumps({"v": 1, "events": [{"i": -1}]})}, id="1-1")
    redis_client.set(keys.run("r5", "seq"), 1)
    producer = Producer(redis_client, "r5", ["a"], max_lag=10_000)
    events = [{"ts": 1.5 + i, "saddr": "10.0.0.1", "daddr": "8.8.8.8", "i": i}
              for i in range(200)]
    for event in events:
        producer.emit("a", dict(event))
    producer.flush()
    producer.emit("a", {"i": 200})  # too small to gain from compression
    producer.close()
    raw = binary_client(redis_client).xrange(stream)
    assert [list(fields) for _, fields in raw] == [[b"d"], [field], [b"d"], [b"d"]]
    packed = raw[1][1][field]
    assert len(packed) < len(inflate(packed)) / 2
    consumer = Consumer(redis_client, "r5", "g", ["a"], count=2)
    consumer.start()
    got = [ev for e in drain(consumer) for ev in e.events]
    assert got == [{"i": -1}, *events, {"i": 200}]
    assert [list(ev) for ev in got[1:-1]] == [list(ev) for ev in events]


def test_entries_stay_packed_until_their_events_are_asked_for(
        redis_client: RedisClient) -> None:
    # A lagging reader holds many entries at once: they must not be held as dicts.
    producer = Producer(redis_client, "r8", ["a"], max_lag=10_000, compress=False)
    producer.emit("a", {"i": 0})  # a batch as small as the end-of-stream marker
    producer.flush()
    for i in range(1, 300):
        producer.emit("a", {"saddr": "10.0.0.1", "i": i})
    producer.close()
    consumer = Consumer(redis_client, "r8", "g", ["a"], count=10)
    consumer.start()
    entries = drain(consumer)
    assert [e.eos for e in entries] == [False, False, True]
    assert all(set(e.fields) <= {b"d", b"z"} for e in entries)
    first, second = entries[0].events, entries[0].events
    assert first == second == [{"i": 0}] and first is not second  # decoded per access
    assert [ev["i"] for ev in entries[1].events] == list(range(1, 300))
    assert entries[2].events == []


def test_a_live_producer_leaves_batches_plain(redis_client: RedisClient) -> None:
    from slipsd.store import keys
    from slipsd.store._connect import binary_client

    producer = Producer(redis_client, "r6", ["a"], max_lag=10_000, compress=False)
    for i in range(200):
        producer.emit("a", {"saddr": "10.0.0.1", "daddr": "8.8.8.8", "i": i})
    producer.close()
    raw = binary_client(redis_client).xrange(keys.stream("r6", "a"))
    assert [list(fields) for _, fields in raw] == [[b"d"], [b"d"]]
    consumer = Consumer(redis_client, "r6", "g", ["a"])
    consumer.start()
    assert [ev["i"] for e in drain(consumer) for ev in e.events] == list(range(200))


def test_trimming_keeps_what_a_reader_has_not_acknowledged(redis_client: RedisClient) -> None:
    from slipsd.store import keys
    from slipsd.store._bus import trim_acknowledged
    from slipsd.store._connect import binary_client

    producer = Producer(redis_client, "r7", ["a"], max_lag=10_000, compress=False)
    for i in range(10):
        producer.emit("a", {"i": i})
        producer.flush()
    slow = Consumer(redis_client, "r7", "slow", ["a"], count=4)
    fast = Consumer(redis_client, "r7", "fast", ["a"], count=100)
    slow.start()
    fast.start()
    fast.ack(fast.read(200))
    first = slow.read(200)
    slow.ack(first[:2])  # entries 3 and 4 are read, not acknowledged: they must stay
    stream = keys.stream("r7", "a")
    assert trim_acknowledged(redis_client, stream) == 2
    ids = [eid for eid, _ in binary_client(redis_client).xrange(stream)]
    assert [int(eid.split(b"-")[0]) for eid in ids] == list(range(3, 11))
    slow.ack(first[2:])
    while rest := slow.read(200):
        slow.ack(rest)
    assert trim_acknowledged(redis_client, stream) == 7  # the last delivered entry stays


def test_a_pending_list_emptied_since_xinfo_reads_as_nothing_pending(
        redis_client: RedisClient) -> None:
    # The live trim asks XINFO (pending > 0), then XPENDING: a reader acknowledging in
    # between leaves XPENDING's summary without a smallest id. That crashed the live ingest.
    from slipsd.store import keys
    from slipsd.store._bus import _oldest_pending
    from slipsd.store._connect import command

    producer = Producer(redis_client, "r9", ["a"], max_lag=10_000, compress=False)
    producer.emit("a", {"i": 0})
    producer.flush()
    reader = Consumer(redis_client, "r9", "g", ["a"])
    reader.start()
    entries = reader.read(200)
    stream = keys.stream("r9", "a")
    assert _oldest_pending(command(redis_client, "XPENDING", stream, "g")) == entries[0].id
    reader.ack(entries)
    assert _oldest_pending(command(redis_client, "XPENDING", stream, "g")) is None
