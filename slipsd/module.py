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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from slipsd.config import ConfigError, parse_bool, parse_list
from slipsd.events import TW_CLOSED
from slipsd.evidence import Evidence, evidence_id


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


class Context:
    """What a module may use: its configuration, a logger and the evidence sink."""

    def __init__(
        self,
        module_name: str,
        config: Mapping[str, Any],
        report: Callable[[Evidence], None],
        run_id: str = "",
        home_networks: Sequence[str] = (),
        evidence_types: Sequence[str] = (),
    ) -> None:
        self.module_name = module_name
        self.config = dict(config)
        self.run_id = run_id
        # [profiles] home_networks; empty means "guess from traffic" (netinfo.LocalNetworks).
        self.home_networks = list(home_networks)
        self._types = frozenset(evidence_types)
        self.log = logging.getLogger(f"slips.module.{module_name}")
        self._report = report

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
