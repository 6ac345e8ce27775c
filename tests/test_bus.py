"""The bus on a real redis-server: order across channels, end of stream, replay, backpressure."""

from __future__ import annotations

import threading

from slipsd.store import Consumer, Producer, RedisClient
from slipsd.store._bus import Entry

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
