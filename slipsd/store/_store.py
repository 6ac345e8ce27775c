"""The data model in Redis: runs, profiles, time windows, evidence, alerts, counters."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from slipsd.events import MESSAGE_VERSION
from slipsd.store import keys
from slipsd.store._bus import trim_acknowledged, xinfo_dict
from slipsd.store._connect import RedisClient, command
from slipsd.store._traffic import WRITE_TRAFFIC, WindowDelta, write_traffic
from slipsd.store._windows import WINDOW_TOPS, queue_window, window_summary, window_tops

MAX_ERRORS_KEPT = 200  # the run's error list is a sample; the counter has the total


class Store:
    """Typed access to one run's keys (and the global run index)."""

    def __init__(self, client: RedisClient, run_id: str) -> None:
        self.redis = client
        self.run_id = run_id
        self._write_traffic = client.register_script(WRITE_TRAFFIC)
        self._window_tops = client.register_script(WINDOW_TOPS)

    def key(self, *parts: str | int) -> str:
        return keys.run(self.run_id, *parts)

    # -- runs ---------------------------------------------------------------

    def set_run_meta(self, **fields: Any) -> None:
        encoded = {k: json.dumps(v) for k, v in fields.items()}
        self.redis.hset(self.key("meta"), mapping=encoded)  # type: ignore[arg-type]

    def run_meta(self) -> dict[str, Any]:
        raw = self.redis.hgetall(self.key("meta"))
        return {k: json.loads(v) for k, v in raw.items()}

    def index_run(self, summary: Mapping[str, Any]) -> None:
        self.redis.hset(keys.RUNS, self.run_id, json.dumps(summary))

    @staticmethod
    def all_runs(client: RedisClient) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in client.hgetall(keys.RUNS).items()}

    # -- counters and errors ---------------------------------------------------

    def add_counts(self, counts: Mapping[str, int], pipe: Any = None) -> None:
        target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        for name, value in counts.items():
            if value:
                target.hincrby(self.key("stats"), name, value)
        if pipe is None:
            target.execute()

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.redis.hgetall(self.key("stats")).items()}

    def record_errors(self, messages: Iterable[str]) -> None:
        messages = list(messages)
        if not messages:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(self.key("errors"), *messages)
        pipe.ltrim(self.key("errors"), 0, MAX_ERRORS_KEPT - 1)
        pipe.execute()

    def errors(self) -> list[str]:
        return list(self.redis.lrange(self.key("errors"), 0, -1))

    # -- readiness of a run's readers ----------------------------------------

    def mark_ready(self, name: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self.key("ready"), name)
        pipe.rpush(self.key("ready-wake"), name)
        pipe.execute()

    def wait_ready(self, names: Iterable[str], timeout: float) -> set[str]:
        """Block until every name is ready; returns the ones still missing."""
        import time

        wanted = set(names)
        deadline = time.monotonic() + timeout
        while True:
            missing = wanted - set(self.redis.smembers(self.key("ready")))
            left = deadline - time.monotonic()
            if not missing or left <= 0:
                return missing
            self.redis.blpop([self.key("ready-wake")], timeout=max(1, min(int(left), 5)))

    # -- profiles and time windows -----------------------------------------------

    def write_traffic(
        self,
        new_ips: list[str],
        profiles: Mapping[str, tuple[float, float, int]],
        windows: Mapping[tuple[str, int], WindowDelta],
        counts: Mapping[str, int],
        dated: Mapping[str, int] | None = None,
    ) -> None:
        """Apply one batch of profiler output (see slipsd.store._traffic)."""
        write_traffic(self.redis, self._write_traffic, self.run_id, new_ips, profiles, windows,
                      counts, dated or {})

    def profiles(self) -> list[str]:
        return sorted(self.redis.smembers(self.key("profiles")))

    def profile(self, ip: str) -> dict[str, str]:
        return dict(self.redis.hgetall(keys.profile(self.run_id, ip)))

    def windows(self, ip: str) -> list[int]:
        return sorted(int(tw) for tw in self.redis.smembers(self.key("tws", ip)))

    def window(self, ip: str, tw: int) -> dict[str, Any]:
        pipe = self.redis.pipeline(transaction=False)
        queue_window(pipe, self.run_id, ip, tw)
        return window_summary(*pipe.execute())

    def all_windows(self, top: int) -> dict[tuple[str, int], dict[str, Any]]:
        """Every profile's window summaries, each listing only its ``top`` busiest
        destinations and ports (busiest first), picked inside Redis: a run's whole
        tables are large, and only the outputs read them all."""
        ips = self.profiles()
        pipe = self.redis.pipeline(transaction=False)
        for ip in ips:
            pipe.smembers(self.key("tws", ip))
        pairs = [(ip, int(tw)) for ip, tws in zip(ips, pipe.execute(), strict=True) for tw in tws]
        return window_tops(self.redis, self._window_tops, self.run_id, pairs, top)

    def ips(self) -> set[str]:
        return set(self.redis.smembers(self.key("ips")))

    def ip_count(self) -> int:
        return int(self.redis.scard(self.key("ips")))

    # -- modules -----------------------------------------------------------------

    def module_progress(self, name: str, processed: int, errors: int, last_error: str = "",
                        pipe: Any = None) -> None:
        fields: dict[str | bytes, bytes | float | int | str] = {
            "processed": processed, "errors": errors}
        if last_error:
            fields["last_error"] = last_error
        target = pipe if pipe is not None else self.redis
        target.hset(keys.module(self.run_id, name), mapping=fields)

    def module_stats(self, name: str) -> dict[str, Any]:
        raw = self.redis.hgetall(keys.module(self.run_id, name))
        return {
            "processed": int(raw.get("processed", 0)),
            "errors": int(raw.get("errors", 0)),
            "last_error": raw.get("last_error", ""),
        }

    def reader_lag(self, group: str, channels: Iterable[str]) -> int:
        """Stream entries (batches) a consumer group has not read or not acked yet, all
        channels together: how far a module is behind the ingest (slips never sheds)."""
        names = list(channels)
        pipe = self.redis.pipeline(transaction=False)
        for channel in names:
            command(pipe, "XINFO", "GROUPS", self.key("stream", channel))
        behind = 0
        for groups in pipe.execute(raise_on_error=False):
            if isinstance(groups, Exception):
                continue  # no such stream (yet, or any more)
            for raw in groups:
                info = xinfo_dict(raw)
                if info.get("name") == group:
                    behind += int(info.get("lag") or 0) + int(info.get("pending") or 0)
        return behind

    # -- evidence and alerts ---------------------------------------------------

    def publish_evidence(self, evidence: Iterable[Mapping[str, Any]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for item in evidence:
            body = {"v": MESSAGE_VERSION, "evidence": item}
            pipe.xadd(self.key("stream", "evidence_added"), {"d": json.dumps(body)})
        pipe.execute()

    def publish_module_done(self, module: str, failed: str = "") -> None:
        body = {"v": MESSAGE_VERSION, "done": module, "failed": failed}
        self.redis.xadd(self.key("stream", "evidence_added"), {"d": json.dumps(body)})

    def start_evidence_group(self) -> bool:
        """Create the evidence handler's group; True when it existed (a restart)."""
        stream = self.key("stream", "evidence_added")
        try:
            self.redis.xgroup_create(stream, "evidence", id="0", mkstream=True)
            return False
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        command(self.redis, "XGROUP", "SETID", stream, "evidence", "0")
        return True

    def read_evidence(self, block_ms: int, count: int = 500) -> list[tuple[str, dict[str, Any]]]:
        stream = self.key("stream", "evidence_added")
        reply = self.redis.xreadgroup("evidence", "handler", {stream: ">"}, count=count,
                                      block=block_ms)
        out = []
        for _, items in reply or []:
            for eid, fields in items:
                body = json.loads(fields["d"])
                if body.get("v") != MESSAGE_VERSION:
                    raise ValueError(f"evidence entry {eid}: unsupported message version "
                                     f"{body.get('v')!r}")
                out.append((eid, body))
        return out

    def ack_evidence(self, ids: list[str]) -> None:
        if ids:
            command(self.redis, "XACK", self.key("stream", "evidence_added"), "evidence", *ids)

    def trim_evidence(self) -> int:
        """Drop evidence messages the handler has acknowledged (live runs)."""
        return trim_acknowledged(self.redis, self.key("stream", "evidence_added"))

    def add_module_done(self, module: str, failed: str = "") -> None:
        self.redis.hset(self.key("modules-done"), module, failed)

    def modules_done(self) -> dict[str, str]:
        return dict(self.redis.hgetall(self.key("modules-done")))

    def add_evidence(self, evidence: Mapping[str, Any]) -> bool:
        """Store evidence once; False when this id was already stored (a replay)."""
        added = self.redis.hsetnx(self.key("evidence"), str(evidence["id"]), json.dumps(evidence))
        return bool(added)

    def all_evidence(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self.redis.hvals(self.key("evidence"))]

    def append_alert(self, alert: Mapping[str, Any]) -> None:
        """Add one alert as it is raised (live runs)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(self.key("alerts"), json.dumps(alert))
        pipe.zadd(self.key("scores"), {str(alert["profile"]): float(alert["score"])}, gt=True)
        pipe.execute()

    def set_alerts(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        """Replace the run's alerts (a finished analysis decides them all at once)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.key("alerts"), self.key("scores"))
        for alert in alerts:
            pipe.rpush(self.key("alerts"), json.dumps(alert))
            pipe.zadd(self.key("scores"), {str(alert["profile"]): float(alert["score"])}, gt=True)
        pipe.execute()

    def alerts(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self.redis.lrange(self.key("alerts"), 0, -1)]

    def drop_reader(self, group: str, channels: Iterable[str]) -> None:
        """Forget a consumer group that will never read again (its module went fatal),
        so that backpressure does not wait for it forever."""
        pipe = self.redis.pipeline(transaction=False)
        for channel in channels:
            command(pipe, "XGROUP", "DESTROY", self.key("stream", channel), group)
        pipe.execute(raise_on_error=False)

    def delete_run(self) -> int:
        """Remove every key of this run; returns how many were removed."""
        removed = 0
        batch: list[str] = []
        for name in self.redis.scan_iter(match=keys.run(self.run_id, "*"), count=1000):
            batch.append(name)
            if len(batch) >= 1000:
                removed += int(self.redis.unlink(*batch))
                batch = []
        if batch:
            removed += int(self.redis.unlink(*batch))
        self.redis.hdel(keys.RUNS, self.run_id)
        return removed

    def delete_streams(self, channels: Iterable[str]) -> None:
        names = [self.key("stream", ch) for ch in channels]
        if names:
            self.redis.delete(*names)

