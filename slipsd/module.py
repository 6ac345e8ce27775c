"""The module API: subclass ``Module``, name the channels you read, write ``on_<channel>``.

A module never touches Redis, processes or files: its host process feeds it
events and collects what it reports through ``self.ctx``. The same class runs
unchanged under ``slipsd.testing.ModuleTestContext``.

    class LongConnection(Module):
        name = "long_connection"
        description = "Connections that stay open for a long time"
        channels = ("new_flow",)
        options = {"threshold": Option(float, 1500.0, "seconds")}

        def on_new_flow(self, flow: Flow) -> None:
            if flow["duration"] > self.ctx.config["threshold"]:
                self.ctx.evidence(...)
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from slipsd.config import ConfigError, parse_bool, parse_list
from slipsd.events import TW_CLOSED
from slipsd.evidence import Evidence, evidence_id
from slipsd.geoip import NO_GEOIP, GeoIP


@dataclass(frozen=True)
class Option:
    """One configuration key of a module, read from the module's own section."""

    type: type[Any]  # float, int, str, bool, or list (comma-separated)
    default: Any
    help: str = ""

    def parse(self, text: str) -> Any:
        if self.type is bool:
            return parse_bool(text)
        if self.type is list:
            return parse_list(text)
        try:
            return self.type(text.strip())
        except ValueError:
            raise ValueError(f"expected {self.type.__name__}, got {text!r}") from None


class Backend:
    """Where ip info and the module cache live. This one keeps them in memory (tests,
    ``ModuleTestContext``); the module host's writes them to Redis. Thread-safe, since
    modules may report from threads of their own."""

    def __init__(self) -> None:
        self.ip_infos: dict[str, dict[str, Any]] = {}
        self.cache: dict[str, tuple[float, Any]] = {}
        self.lock = threading.Lock()

    def set_ip_info(self, ip: str, fields: Mapping[str, Any]) -> None:
        with self.lock:
            self.ip_infos.setdefault(ip, {}).update(fields)

    def ip_info(self, ip: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.ip_infos.get(ip, {}))

    def cache_get(self, key: str) -> Any | None:
        with self.lock:
            expires, value = self.cache.get(key, (0.0, None))
        return value if expires > time.time() else None

    def cache_set(self, key: str, value: Any, ttl: float) -> None:
        with self.lock:
            self.cache[key] = (time.time() + ttl, value)


class Context:
    """What a module may use: its configuration, a logger, the evidence sink, ip info,
    a cache kept across runs, GeoIP lookups and a folder of its own."""

    def __init__(
        self,
        module_name: str,
        config: Mapping[str, Any],
        report: Callable[[Evidence], None],
        run_id: str = "",
        home_networks: Sequence[str] = (),
        evidence_types: Sequence[str] = (),
        *,
        backend: Backend | None = None,
        geoip: GeoIP | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.module_name = module_name
        self.config = dict(config)
        self.run_id = run_id
        # [profiles] home_networks; empty means "guess from traffic" (netinfo.LocalNetworks).
        self.home_networks = list(home_networks)
        self._types = frozenset(evidence_types)
        self.log = logging.getLogger(f"slips.module.{module_name}")
        self._report = report
        self._backend = backend if backend is not None else Backend()
        self.geoip = geoip if geoip is not None else NO_GEOIP
        self._data_dir = data_dir
        # Set when slipsd asks the module's process to stop: a shutdown() that waits
        # for work of its own (lookups in flight, say) should give up when it is set.
        self.stopping = threading.Event()

    @property
    def data_dir(self) -> Path:
        """A folder kept across runs for this module's own files (downloads, caches);
        the caller creates it when it needs it."""
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix=f"slips-{self.module_name}-"))
        return self._data_dir

    def set_ip_info(self, ip: str, **fields: Any) -> None:
        """Merge JSON-serialisable fields into what the run knows about ``ip``
        (shown by ``slipsctl profile``, readable by other modules)."""
        self._backend.set_ip_info(ip, fields)

    def ip_info(self, ip: str) -> dict[str, Any]:
        """What modules stored about ``ip`` in this run so far."""
        return self._backend.ip_info(ip)

    def cache_get(self, key: str) -> Any | None:
        """A value this module cached (in any run) that has not expired, else None."""
        return self._backend.cache_get(key)

    def cache_set(self, key: str, value: Any, ttl: float) -> None:
        """Keep a JSON-serialisable value for ``ttl`` seconds, across runs."""
        self._backend.cache_set(key, value, ttl)

    def evidence(
        self,
        type: str,
        *,
        attacker: str,
        victim: str,
        threat_level: str,
        confidence: float,
        description: str,
        ts: float,
        tw: int,
        profile: str | None = None,
        uids: tuple[str, ...] | list[str] = (),
        key: str | None = None,
    ) -> Evidence:
        """Report evidence. ``key`` tells apart evidence of the same type, attacker,
        victim and window (default: the flow uids); equal keys are one evidence."""
        if self._types and type not in self._types:
            raise ValueError(f"module {self.module_name!r} reported {type!r}, which is not in "
                             f"its evidence_types ({', '.join(sorted(self._types))})")
        uids = tuple(uids)
        ident = evidence_id(type, attacker, victim, tw, key if key is not None else ",".join(uids))
        item = Evidence(
            type=type, attacker=attacker, victim=victim, threat_level=threat_level,
            confidence=confidence, description=description, ts=ts, tw=tw,
            profile=profile if profile is not None else attacker, module=self.module_name,
            uids=uids, id=ident,
        )
        self._report(item)
        return item


class Module:
    """Base class of detection and enrichment modules."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    channels: ClassVar[tuple[str, ...]] = ()
    # Every evidence type the module can report; each is documented in
    # docs/evidence.md and shown by the module's samples.json.
    evidence_types: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[Mapping[str, Option]] = {}

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @classmethod
    def unavailable(cls, config: Mapping[str, Any]) -> str | None:
        """Why the module cannot run with these validated options (a missing key file,
        say), or None. slipsd then does not start it and shows the reason."""
        return None

    def setup(self, config: Mapping[str, Any]) -> None:
        """Called once before the first message, with the validated options."""

    def on_tw_closed(self, event: Mapping[str, Any]) -> None:
        """A profile's time window ended (traffic time moved past it)."""

    def shutdown(self) -> None:
        """Called once after the last message of the run."""

    @classmethod
    def subscriptions(cls) -> tuple[str, ...]:
        """Channels to read: the declared ones, plus tw_closed when it is handled."""
        subs = tuple(cls.channels)
        if cls.on_tw_closed is not Module.on_tw_closed and TW_CLOSED not in subs:
            subs += (TW_CLOSED,)
        return subs

    def handlers(self) -> dict[str, Callable[[Any], None]]:
        out: dict[str, Callable[[Any], None]] = {}
        for channel in self.subscriptions():
            handler = getattr(self, f"on_{channel}", None)
            if not callable(handler):
                raise TypeError(f"module {self.name!r} reads {channel!r} but has no on_{channel}")
            out[channel] = handler
        return out

    @classmethod
    def parse_options(cls, raw: Mapping[str, str], source: str = "") -> dict[str, Any]:
        """Validated options from a config section; errors name the section and key."""
        where = f"{source}: " if source else ""
        problems = []
        values = {key: opt.default for key, opt in cls.options.items()}
        for key, text in raw.items():
            opt = cls.options.get(key)
            if opt is None:
                known = ", ".join(sorted(cls.options)) or "none"
                problems.append(f"{where}[{cls.name}] {key}: unknown key (known: {known})")
                continue
            try:
                values[key] = opt.parse(text)
            except ValueError as exc:
                problems.append(f"{where}[{cls.name}] {key}: {exc}")
        if problems:
            raise ConfigError(problems)
        return values
