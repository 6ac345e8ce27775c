"""dhcp.log: DHCP messages of all flows gathered into Zeek's one record per exchange.

An exchange spans several flows (DISCOVER from 0.0.0.0 to broadcast, OFFER back
to the client, REQUEST, ACK), so messages are grouped by transaction id and client
MAC, like Zeek does, once every flow is in. A transaction id that comes back more
than a minute after its last message starts a new exchange.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

NEW_EXCHANGE_MS = 60_000
MAX_MESSAGES = 1_000_000  # DHCP messages kept for grouping; a flood beyond is not logged
_UNSET = ("", "0.0.0.0")


class _Exchange:
    def __init__(self, ts: int) -> None:
        self.first = self.last = ts
        self.uids: list[str] = []
        self.fields: dict[str, Any] = {}
        self.msg_types: list[str] = []

    def add(self, uid: str, msg: dict[str, Any]) -> None:
        self.last = msg["ts"]
        if uid not in self.uids:
            self.uids.append(uid)
        if "msg_type" in msg:
            self.msg_types.append(msg["msg_type"])
        fields = self.fields
        if msg.get("mac"):
            fields.setdefault("mac", msg["mac"])
        if msg["from_client"]:
            client = msg["ciaddr"] if msg["ciaddr"] not in _UNSET else msg["src"]
            if client not in _UNSET:
                fields.setdefault("client_addr", client)
            for key in ("host_name", "client_fqdn", "requested_addr"):
                if msg.get(key):
                    fields.setdefault(key, msg[key])
            if msg.get("message"):
                fields.setdefault("client_message", msg["message"])
            return
        server = msg.get("server_id") or msg["src"]
        if server not in _UNSET:
            fields.setdefault("server_addr", server)
        if msg.get("msg_type") == "ACK" and msg["yiaddr"] not in _UNSET:
            fields["assigned_addr"] = msg["yiaddr"]
        for key in ("domain", "lease_time"):
            if msg.get(key):
                fields[key] = msg[key]
        if msg.get("message"):
            fields.setdefault("server_message", msg["message"])

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"ts": self.first / 1000, "uids": self.uids}
        for key in ("client_addr", "server_addr", "mac", "host_name", "client_fqdn", "domain",
                    "requested_addr", "assigned_addr", "lease_time", "client_message",
                    "server_message"):
            if key in self.fields:
                rec[key] = self.fields[key]
        rec["msg_types"] = self.msg_types
        rec["duration"] = (self.last - self.first) / 1000
        return rec


class DhcpLog:
    """Collects DHCP messages with the uid of their flow; records() groups them."""

    def __init__(self) -> None:
        self._msgs: list[tuple[int, str, int, dict[str, Any]]] = []
        self.dropped = 0

    def add(self, uid: str, msg: dict[str, Any]) -> None:
        if len(self._msgs) >= MAX_MESSAGES:
            self.dropped += 1
            return
        self._msgs.append((msg["ts"], uid, len(self._msgs), msg))

    def records(self) -> Iterator[dict[str, Any]]:
        """One record per exchange, in the order of their first messages."""
        self._msgs.sort(key=lambda m: m[:3])
        open_: dict[tuple[int, str], _Exchange] = {}
        done: list[_Exchange] = []
        for ts, uid, _, msg in self._msgs:
            key = (msg["xid"], msg.get("mac", ""))
            exchange = open_.get(key)
            if exchange is None or ts - exchange.last > NEW_EXCHANGE_MS:
                if exchange is not None:
                    done.append(exchange)
                exchange = open_[key] = _Exchange(ts)
            exchange.add(uid, msg)
        done.extend(open_.values())
        done.sort(key=lambda e: (e.first, e.uids[0]))
        for exchange in done:
            yield exchange.record()
        self._msgs.clear()
