"""The process that runs one or more modules over one run's channels.

It owns everything a module must not: the Redis connection, the consumer
group, acking, batching and error isolation. A host reads and decodes each
batch once and hands its events to every module of the host that listens to
the channel (see slipsd.hosting for which modules share a host). Evidence
reported while handling a batch is published before the batch is acked, so a
crash between the two replays the batch and re-reports evidence with the same
ids, which the evidence handler stores once.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipsd.config import ConfigError
from slipsd.evidence import Evidence
from slipsd.geoip import GeoIP
from slipsd.hosting import consumer_group
from slipsd.module import Backend, Context, Module
from slipsd.module_loader import ModuleRef, load_class
from slipsd.stopsignal import StopOnSigterm
from slipsd.store import Consumer, IpInfo, ModuleCache, RedisClient, Store, connect

log = logging.getLogger(__name__)

LOGGED_ERRORS = 20  # full tracebacks logged per module and run; then one line per 1000
# Each module's counters (status and progress only) are written at most this often: one
# HSET per module at every read made 43,000 of a 1M analysis' Redis commands.
PROGRESS_SECONDS = 0.25


@dataclass
class ModuleSpec:
    name: str
    path: str = ""
    entry_point: str = ""
    options: dict[str, str] | None = None
    data_dir: str = ""


@dataclass
class HostSpec:
    run_id: str
    redis_url: str
    modules: list[ModuleSpec] = field(default_factory=list)
    home_networks: list[str] | None = None
    block_ms: int = 1000
    country_database: str = ""
    asn_database: str = ""

    def __post_init__(self) -> None:
        # From the command line the modules come as plain JSON objects.
        self.modules = [m if isinstance(m, ModuleSpec) else ModuleSpec(**m)
                        for m in self.modules]


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


@dataclass
class Hosted:
    """One module in a host, with its own counters and error isolation."""

    name: str
    module: Module
    ctx: Context
    backend: RedisBackend
    options: dict[str, Any]
    processed: int = 0
    errors: int = 0
    last_error: str = ""

    def handle(self, handler: Callable[[Any], Any], events: list[dict[str, Any]]) -> None:
        """``handler`` on every event, as ``call`` would, without a frame and a try per event:
        after an exception the loop goes on with the same iterator, at the next event."""
        remaining = iter(events)
        while True:
            try:
                for event in remaining:
                    handler(event)
                break
            except Exception as exc:
                self.failed(handler, exc)
        self.processed += len(events)

    def call(self, func: Callable[..., Any], *args: Any) -> None:
        """Run one hook call; an exception is logged and counted, never fatal."""
        try:
            func(*args)
        except Exception as exc:
            self.failed(func, exc)

    def failed(self, func: Any, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.errors <= LOGGED_ERRORS:
            frames = traceback.format_exception(exc, limit=-3)
            log.error("module %s: %s failed (error %d):\n%s", self.name,
                      getattr(func, "__name__", func), self.errors, "".join(frames).rstrip())
        elif self.errors % 1000 == 0:
            log.error("module %s: %d errors so far, last: %s", self.name, self.errors,
                      self.last_error)


class ModuleHost:
    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.hosted: list[Hosted] = []
        self._pending: list[Evidence] = []
        self._lock = threading.Lock()  # modules may report from threads of their own
        self._stopping = False

    def _report(self, evidence: Evidence) -> None:
        with self._lock:
            self._pending.append(evidence)

    def _flush(self, store: Store) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for hosted in self.hosted:
            info = hosted.backend.take_ip_info()
            if info:
                hosted.backend.info.update(info)
        if pending:
            store.publish_evidence(e.to_dict() for e in pending)

    def _load(self, client: RedisClient, store: Store, mod: ModuleSpec,
              geoip: GeoIP) -> Hosted | None:
        """Build one module; one that cannot be built is reported done-and-failed, so its
        neighbours in the host still run and the run does not wait for it."""
        spec = self.spec
        try:
            cls: type[Module] = load_class(ModuleRef(mod.name, mod.path, mod.entry_point))
            options = cls.parse_options(mod.options or {}, f"[{mod.name}]")
            backend = RedisBackend(client, spec.run_id, mod.name)
            ctx = Context(
                mod.name, options, self._report, spec.run_id, spec.home_networks or [],
                cls.evidence_types, backend=backend, geoip=geoip,
                data_dir=Path(mod.data_dir) if mod.data_dir else None)
            return Hosted(mod.name, cls(ctx), ctx, backend, options)
        except Exception as exc:
            if len(spec.modules) == 1:
                raise  # alone in its host: the supervisor reports how it failed
            why = f"cannot load: {type(exc).__name__}: {exc}"
            log.error("module %s %s", mod.name, why)
            store.mark_ready(mod.name)
            store.publish_module_done(mod.name, failed=why)
            return None

    def run(self) -> int:
        spec = self.spec
        client = connect(spec.redis_url)
        store = Store(client, spec.run_id)
        geoip = GeoIP(spec.country_database, spec.asn_database)
        loaded = (self._load(client, store, mod, geoip) for mod in spec.modules)
        self.hosted = [h for h in loaded if h is not None]
        if not self.hosted:
            raise ConfigError("none of this host's modules could be loaded")
        # channel -> (module, its handler) for every module of the host that listens to it
        routes: dict[str, list[tuple[Hosted, Callable[[Any], Any]]]] = {}
        for hosted in self.hosted:
            for channel, handler in hosted.module.handlers().items():
                routes.setdefault(channel, []).append((hosted, handler))
        names = [m.name for m in spec.modules]
        consumer = Consumer(client, spec.run_id, consumer_group(names), list(routes))
        if consumer.start():
            log.warning("module host %s restarted: replaying run %s", "+".join(names),
                        spec.run_id)
        for hosted in self.hosted:
            store.mark_ready(hosted.name)
        StopOnSigterm(self._on_stop)
        for hosted in self.hosted:
            hosted.call(hosted.module.setup, hosted.options)
        unreported, next_progress = False, 0.0
        while not consumer.done and not self._stopping:
            entries = consumer.read(spec.block_ms)
            for entry in entries:
                events = entry.events  # decoded here, once for all the host's modules
                for hosted, handler in routes[entry.channel]:
                    hosted.handle(handler, events)
                del events  # not held while the next entry is decoded
            self._flush(store)
            unreported = unreported or bool(entries)
            report = unreported and time.monotonic() >= next_progress
            if entries or report:
                # Acks and progress in one round trip; evidence went out before, in _flush.
                pipe = client.pipeline(transaction=False)
                consumer.ack(entries, pipe)
                if report:
                    self._progress(store, pipe)
                    unreported, next_progress = False, time.monotonic() + PROGRESS_SECONDS
                pipe.execute()
        for hosted in self.hosted:
            hosted.call(hosted.module.shutdown)
        self._flush(store)
        self._progress(store)
        if consumer.done:
            for hosted in self.hosted:
                store.publish_module_done(hosted.name)
        return 0

    def _progress(self, store: Store, pipe: Any = None) -> None:
        for h in self.hosted:
            store.module_progress(h.name, h.processed, h.errors, h.last_error, pipe)

    def _on_stop(self) -> None:
        # Runs in StopOnSigterm's thread, never in the signal handler: Event.set locks.
        self._stopping = True
        for hosted in self.hosted:
            hosted.ctx.stopping.set()
