"""The process that runs one module over one run's channels.

It owns everything a module must not: the Redis connection, the consumer
group, acking, batching and error isolation. Evidence a module reports while
handling a batch is published before the batch is acked, so a crash between
the two replays the batch and re-reports evidence with the same ids, which the
evidence handler stores once.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipsd.evidence import Evidence
from slipsd.geoip import GeoIP
from slipsd.module import Backend, Context, Module
from slipsd.module_loader import ModuleRef, load_class
from slipsd.stopsignal import StopOnSigterm
from slipsd.store import Consumer, IpInfo, ModuleCache, RedisClient, Store, connect

log = logging.getLogger(__name__)

LOGGED_ERRORS = 20  # full tracebacks logged per run; after that one line per 1000


@dataclass
class HostSpec:
    run_id: str
    redis_url: str
    name: str
    path: str = ""
    entry_point: str = ""
    options: dict[str, str] | None = None
    home_networks: list[str] | None = None
    block_ms: int = 1000
    data_dir: str = ""
    country_database: str = ""
    asn_database: str = ""


class RedisBackend(Backend):
    """Ip info and cache in Redis. Ip info is buffered and written with the batch's
    evidence; reads see this module's own unwritten fields too."""

    def __init__(self, client: RedisClient, run_id: str, module: str) -> None:
        super().__init__()
        self.info = IpInfo(client, run_id)
        self.module_cache = ModuleCache(client, module)

    def ip_info(self, ip: str) -> dict[str, Any]:
        stored = self.info.get(ip)
        with self.lock:
            stored.update(self.ip_infos.get(ip, {}))
        return stored

    def take_ip_info(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            pending, self.ip_infos = self.ip_infos, {}
        return pending

    def cache_get(self, key: str) -> Any | None:
        return self.module_cache.get(key)

    def cache_set(self, key: str, value: Any, ttl: float) -> None:
        self.module_cache.set(key, value, ttl)


class ModuleHost:
    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.processed = 0
        self.errors = 0
        self.last_error = ""
        self._pending: list[Evidence] = []
        self._lock = threading.Lock()  # modules may report from threads of their own
        self._stopping = False
        self._ctx: Context | None = None

    def _report(self, evidence: Evidence) -> None:
        with self._lock:
            self._pending.append(evidence)

    def _flush(self, store: Store, backend: RedisBackend) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        info = backend.take_ip_info()
        if info:
            backend.info.update(info)
        if pending:
            store.publish_evidence(e.to_dict() for e in pending)

    def run(self) -> int:
        spec = self.spec
        cls: type[Module] = load_class(ModuleRef(spec.name, spec.path, spec.entry_point))
        options = cls.parse_options(spec.options or {}, f"[{spec.name}]")
        client = connect(spec.redis_url)
        store = Store(client, spec.run_id)
        backend = RedisBackend(client, spec.run_id, spec.name)
        self._ctx = Context(
            spec.name, options, self._report, spec.run_id, spec.home_networks or [],
            cls.evidence_types, backend=backend,
            geoip=GeoIP(spec.country_database, spec.asn_database),
            data_dir=Path(spec.data_dir) if spec.data_dir else None)
        module = cls(self._ctx)
        handlers = module.handlers()
        consumer = Consumer(client, spec.run_id, f"module:{spec.name}", list(handlers))
        if consumer.start():
            log.warning("module %s restarted: replaying run %s", spec.name, spec.run_id)
        store.mark_ready(spec.name)
        StopOnSigterm(self._on_stop)
        self._call(module.setup, options)
        while not consumer.done and not self._stopping:
            entries = consumer.read(spec.block_ms)
            for entry in entries:
                self._handle(handlers[entry.channel], entry.events)
            self._flush(store, backend)
            if entries:
                # Acks and progress in one round trip; evidence went out before, in _flush.
                pipe = client.pipeline(transaction=False)
                consumer.ack(entries, pipe)
                store.module_progress(spec.name, self.processed, self.errors, self.last_error,
                                      pipe)
                pipe.execute()
        self._call(module.shutdown)
        self._flush(store, backend)
        store.module_progress(spec.name, self.processed, self.errors, self.last_error)
        if consumer.done:
            store.publish_module_done(spec.name)
        return 0

    def _handle(self, handler: Any, events: list[dict[str, Any]]) -> None:
        """``handler`` on every event, as ``_call`` would, without a frame and a try per event:
        after an exception the loop goes on with the same iterator, at the next event."""
        remaining = iter(events)
        while True:
            try:
                for event in remaining:
                    handler(event)
                break
            except Exception as exc:
                self._failed(handler, exc)
        self.processed += len(events)

    def _call(self, func: Any, *args: Any) -> None:
        """Run one hook call; an exception is logged and counted, never fatal."""
        try:
            func(*args)
        except Exception as exc:
            self._failed(func, exc)

    def _failed(self, func: Any, exc: Exception) -> None:
        """Log and count a handler's exception; the module goes on."""
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.errors <= LOGGED_ERRORS:
            frames = traceback.format_exception(exc, limit=-3)
            log.error("module %s: %s failed (error %d):\n%s", self.spec.name,
                      getattr(func, "__name__", func), self.errors, "".join(frames).rstrip())
        elif self.errors % 1000 == 0:
            log.error("module %s: %d errors so far, last: %s", self.spec.name,
                      self.errors, self.last_error)

    def _on_stop(self) -> None:
        # Runs in StopOnSigterm's thread, never in the signal handler: Event.set locks.
        self._stopping = True
        if self._ctx is not None:
            self._ctx.stopping.set()
