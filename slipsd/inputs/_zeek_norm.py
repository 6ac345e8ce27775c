"""Per-log-type normalisation of Zeek records into slips events.

Every event gets the common keys (ts, uid, saddr, daddr, sport, dport) plus the
log-specific keys the detection modules rely on, always with the same Python
types, whatever the log format. Fields without a special meaning keep their
Zeek name with '.' replaced by '_' so that nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from slipsd.events import LOG_CHANNELS

Event = dict[str, Any]

_COMMON_RENAMES = {
    "id.orig_h": "saddr",
    "id.resp_h": "daddr",
    "id.orig_p": "sport",
    "id.resp_p": "dport",
}
# ts has no default: a record without a time cannot be ordered, so it is a bad line.
_COMMON_DEFAULTS: dict[str, Any] = {
    "ts": None,
    "uid": "",
    "saddr": "",
    "daddr": "",
    "sport": 0,
    "dport": 0,
}
_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", list: "a list"}


def _time_from_str(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    # Zeek's JSON writer can be set to ISO8601 times; naive ones are UTC like Zeek's.
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


@dataclass(frozen=True)
class Schema:
    """How one Zeek log type becomes events."""

    log_type: str
    channel: str
    renames: dict[str, str]
    defaults: dict[str, Any]  # for required keys; () stands for a fresh empty list
    kinds: dict[str, type]  # required key -> exact Python type
    post: Callable[[Event], None] | None = None
    prefill: dict[str, Any] = field(init=False)
    req_keys: tuple[str, ...] = field(init=False)
    req_types: tuple[type, ...] = field(init=False)
    req_values: Callable[[Event], tuple[Any, ...]] = field(init=False)
    sources: dict[str, str] = field(init=False)  # event key -> Zeek field, for messages

    def __post_init__(self) -> None:
        prefill = {k: v for k, v in self.defaults.items() if self.kinds.get(k) is not list}
        object.__setattr__(self, "prefill", prefill)
        object.__setattr__(self, "req_keys", tuple(self.kinds))
        object.__setattr__(self, "req_types", tuple(self.kinds.values()))
        # Every schema has the six common keys, so this always returns a tuple.
        object.__setattr__(self, "req_values", itemgetter(*self.kinds))
        sources = {new: old for old, new in self.renames.items()}
        object.__setattr__(self, "sources", sources)

    def key_for(self, zeek_field: str) -> str:
        renamed = self.renames.get(zeek_field)
        if renamed is not None:
            return renamed
        return zeek_field.replace(".", "_")

    def finish(self, ev: Event) -> None:
        """Check and fix the required keys, then apply the log-specific rules.

        Raises ValueError with a short reason when the record is unusable.
        """
        # One C-level pass decides whether the (rare) slow path is needed at all; a
        # required key missing altogether (KeyError) takes it too.
        try:
            fine = tuple(map(type, self.req_values(ev))) == self.req_types
        except KeyError:
            fine = False
        if not fine:
            self._coerce(ev)
        if self.post is not None:
            self.post(ev)

    def _coerce(self, ev: Event) -> None:
        for key, kind in self.kinds.items():
            value = ev.get(key)
            if type(value) is kind:
                continue
            if value is None:
                if key == "ts":
                    raise ValueError("missing ts")
                ev[key] = [] if kind is list else self.defaults[key]
            elif kind is float and type(value) is int:
                ev[key] = float(value)
            elif kind in (int, float) and type(value) is str:
                try:
                    ev[key] = _time_from_str(value) if key == "ts" else kind(value)
                except ValueError:
                    name = self.sources.get(key, key)
                    raise ValueError(
                        f"field {name!r}: not {_KIND_NAMES[kind]}: {value!r}"
                    ) from None
            else:
                name = self.sources.get(key, key)
                raise ValueError(f"field {name!r}: not {_KIND_NAMES[kind]}: {value!r}")


class KeyMap(dict[str, str]):
    """Zeek field name -> event key, filled on first sight of each name."""

    def __init__(self, schema: Schema) -> None:
        super().__init__()
        self._schema = schema

    def __missing__(self, zeek_field: str) -> str:
        key = self._schema.key_for(zeek_field)
        self[zeek_field] = key
        return key


def _first_str(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return ""


def _post_conn(ev: Event) -> None:
    ev["proto"] = ev["proto"].lower()
    # TSV logs carry the MAC columns even when unset; the Flow type wants them absent then.
    if "smac" in ev and not isinstance(ev["smac"], str):
        del ev["smac"]
    if "dmac" in ev and not isinstance(ev["dmac"], str):
        del ev["dmac"]


def _post_dhcp(ev: Event) -> None:
    # Zeek >= 2.6 logs one DHCP exchange per line with client/server addresses and
    # the uids of all the connections it spans instead of id.* and uid.
    client = ev.get("client_addr")
    if isinstance(client, str) and client:
        ev["saddr"] = client
    server = ev.get("server_addr")
    if isinstance(server, str) and server:
        ev["daddr"] = server
    if not ev["uid"]:
        ev["uid"] = _first_str(ev.get("uids"))


def _post_files(ev: Event) -> None:
    # Older Zeek files.log has no id.* fields, only the sending/receiving host sets.
    if not ev["saddr"]:
        ev["saddr"] = _first_str(ev.get("tx_hosts"))
    if not ev["daddr"]:
        ev["daddr"] = _first_str(ev.get("rx_hosts"))
    if not ev["uid"]:
        ev["uid"] = _first_str(ev.get("conn_uids"))


def _post_notice(ev: Event) -> None:
    # Scan notices describe their hosts with src/dst/p rather than a connection id.
    if not ev["saddr"]:
        src = ev.get("src")
        if isinstance(src, str):
            ev["saddr"] = src
    if not ev["daddr"]:
        dst = ev.get("dst")
        if isinstance(dst, str):
            ev["daddr"] = dst
    if not ev["dport"]:
        port = ev.get("p")
        if type(port) is int:
            ev["dport"] = port


def _schema(
    log_type: str,
    renames: dict[str, str] | None = None,
    defaults: dict[str, Any] | None = None,
    kinds: dict[str, type] | None = None,
    post: Callable[[Event], None] | None = None,
) -> Schema:
    all_kinds: dict[str, type] = {
        "ts": float,
        "uid": str,
        "saddr": str,
        "daddr": str,
        "sport": int,
        "dport": int,
    }
    all_kinds.update(kinds or {})
    return Schema(
        log_type=log_type,
        channel=LOG_CHANNELS[log_type],
        renames={**_COMMON_RENAMES, **(renames or {})},
        defaults={**_COMMON_DEFAULTS, **(defaults or {})},
        kinds=all_kinds,
        post=post,
    )


_CONN = _schema(
    "conn",
    renames={
        "orig_bytes": "sbytes",
        "resp_bytes": "dbytes",
        "orig_pkts": "spkts",
        "resp_pkts": "dpkts",
        "conn_state": "state",
        "orig_l2_addr": "smac",
        "resp_l2_addr": "dmac",
    },
    defaults={
        "proto": "",
        "service": "",
        "duration": 0.0,
        "sbytes": 0,
        "dbytes": 0,
        "spkts": 0,
        "dpkts": 0,
        "state": "",
        "history": "",
    },
    kinds={
        "proto": str,
        "service": str,
        "duration": float,
        "sbytes": int,
        "dbytes": int,
        "spkts": int,
        "dpkts": int,
        "state": str,
        "history": str,
    },
    post=_post_conn,
)
_DNS = _schema(
    "dns",
    defaults={"query": "", "qtype_name": "", "rcode_name": "", "answers": (), "TTLs": ()},
    kinds={"query": str, "qtype_name": str, "rcode_name": str, "answers": list, "TTLs": list},
)

SCHEMAS: dict[str, Schema] = {
    "conn": _CONN,
    "dns": _DNS,
    "arp": _schema("arp", renames={"orig_h": "saddr", "resp_h": "daddr"}),
    "dhcp": _schema("dhcp", post=_post_dhcp),
    "files": _schema("files", post=_post_files),
    "notice": _schema("notice", post=_post_notice),
    "software": _schema("software", renames={"host": "saddr", "host_p": "sport"}),
}
for _log_type in LOG_CHANNELS:
    if _log_type not in SCHEMAS:
        SCHEMAS[_log_type] = _schema(_log_type)
