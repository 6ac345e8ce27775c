"""Channel names and the shape of the events published on them.

Events are plain dicts (cheap to build and to JSON-encode); the TypedDicts
below document and type-check the keys every producer guarantees. Log-specific
extra keys ride along unchanged.
"""

from __future__ import annotations

from typing import Any, Final, NotRequired, TypedDict

MESSAGE_VERSION: Final = 1

NEW_INPUT: Final = "new_input"  # first message of a run: what the input can provide
NEW_IP: Final = "new_ip"
NEW_FLOW: Final = "new_flow"
TW_CLOSED: Final = "tw_closed"
EVIDENCE_ADDED: Final = "evidence_added"
NEW_ALERT: Final = "new_alert"

# Zeek log type -> channel its records are published on.
LOG_CHANNELS: Final[dict[str, str]] = {
    "conn": NEW_FLOW,
    "dns": "new_dns",
    "http": "new_http",
    "ssl": "new_ssl",
    "ssh": "new_ssh",
    "smtp": "new_smtp",
    "dhcp": "new_dhcp",
    "arp": "new_arp",
    "notice": "new_notice",
    "software": "new_software",
    "files": "new_downloaded_file",
    "weird": "new_weird",
    "tunnel": "new_tunnel",
    # Certificates seen in TLS handshakes; no connection id: ssl.log links to
    # them by cert_chain_fps (Zeek >= 5, x509 "fingerprint") or cert_chain_fuids (x509 "id").
    "x509": "new_x509",
}

# Channels the profiler produces; modules subscribe to any of these.
TRAFFIC_CHANNELS: Final = (NEW_INPUT, NEW_IP, *LOG_CHANNELS.values(), TW_CLOSED)


class Event(TypedDict):
    """Keys common to every traffic event after profiling."""

    ts: float
    uid: str
    saddr: str
    daddr: str
    sport: int
    dport: int
    profile: str  # the IP whose profile this event belongs to
    tw: int  # time window index within the run


class Flow(Event):
    proto: str  # tcp, udp, icmp
    service: str  # Zeek's detected service, "" when none
    duration: float
    sbytes: int
    dbytes: int
    spkts: int
    dpkts: int
    state: str  # Zeek conn_state (S0, SF, REJ, ...)
    history: str
    smac: NotRequired[str]
    dmac: NotRequired[str]


class NewInput(TypedDict):
    """Published once, before any traffic: lets a module skip a check whose
    evidence cannot exist in this input (no http.log records from a flow-only
    format, say)."""

    source: str
    log_types: list[str]  # Zeek log types the input can produce (keys of LOG_CHANNELS)


class NewIp(TypedDict):
    ip: str
    ts: float


class TwClosed(TypedDict):
    profile: str
    tw: int
    start: float
    end: float


AnyEvent = dict[str, Any]
