"""Run a module without Redis or processes: build it, feed it events, read its evidence.

    ctx = ModuleTestContext(LongConnection, {"threshold": "60"})
    found = ctx.feed("new_flow", make_flow(duration=120.0))
    assert [e.type for e in found] == ["LONG_CONNECTION"]

Hook errors propagate here (the host isolates them in production), so a test
sees the real traceback.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slipsd.evidence import Evidence
from slipsd.geoip import GeoIP
from slipsd.module import Backend, Context, Module

_uids = itertools.count(1)


def make_flow(**fields: Any) -> dict[str, Any]:
    """A complete, plausible conn event (as the profiler publishes it), with overrides."""
    flow: dict[str, Any] = {
        "ts": 1_700_000_000.0, "uid": f"CTEST{next(_uids):012d}", "saddr": "192.168.1.10",
        "sport": 50000, "daddr": "203.0.113.5", "dport": 443, "proto": "tcp", "service": "ssl",
        "duration": 1.5, "sbytes": 500, "dbytes": 4000, "spkts": 8, "dpkts": 9,
        "state": "SF", "history": "ShADadFf", "tw": 0,
    }
    flow.update(fields)
    flow.setdefault("profile", flow["saddr"])
    return flow


class ModuleTestContext:
    def __init__(
        self, module_cls: type[Module], config: Mapping[str, str] | None = None,
        run_id: str = "test", home_networks: Sequence[str] = (), *,
        data_dir: Path | None = None, geoip: GeoIP | None = None,
        ip_info: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.evidence: list[Evidence] = []
        options = module_cls.parse_options(config or {}, "test")
        self.backend = Backend()
        for ip, fields in (ip_info or {}).items():
            self.backend.set_ip_info(ip, fields)
        self.ctx = Context(module_cls.name, options, self.evidence.append, run_id,
                           home_networks, module_cls.evidence_types, backend=self.backend,
                           geoip=geoip, data_dir=data_dir)
        self.module = module_cls(self.ctx)
        self._handlers = self.module.handlers()
        self.module.setup(options)

    @property
    def ip_infos(self) -> dict[str, dict[str, Any]]:
        """What the module stored with ctx.set_ip_info, per IP."""
        return self.backend.ip_infos

    def feed(self, channel: str, event: Mapping[str, Any]) -> list[Evidence]:
        """Deliver one event; returns the evidence it produced."""
        if channel not in self._handlers:
            raise KeyError(f"{self.module.name} does not read {channel!r} "
                           f"(it reads {', '.join(self._handlers)})")
        before = len(self.evidence)
        self._handlers[channel](dict(event))
        return self.evidence[before:]

    def close_window(self, profile: str, tw: int, start: float = 0.0,
                     width: float = 3600.0) -> list[Evidence]:
        before = len(self.evidence)
        self.module.on_tw_closed({"profile": profile, "tw": tw, "start": start,
                                  "end": start + width})
        return self.evidence[before:]

    def finish(self) -> list[Evidence]:
        before = len(self.evidence)
        self.module.shutdown()
        return self.evidence[before:]
