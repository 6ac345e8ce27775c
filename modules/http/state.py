"""What the http module keeps: per-window report state, and paste-site visits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REPORTS_PER_WINDOW = 5  # distinct victims/keys of one type listed per profile and window


@dataclass
class Window:
    """One profile's state in one window."""

    reported: dict[str, set[str]] = field(default_factory=dict)
    empty: dict[str, list[Any]] = field(default_factory=dict)  # host -> [count, uids]
    families: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (agent, uid)

    def first(self, kind: str, scope: str, key: str) -> bool:
        """True once per (kind, scope, key), for at most REPORTS_PER_WINDOW of a kind."""
        seen = self.reported.setdefault(kind, set())
        token = f"{scope}|{key}"
        if token in seen or len(seen) >= REPORTS_PER_WINDOW:
            return False
        seen.add(token)
        return True


@dataclass(frozen=True)
class PasteVisit:
    """A request to a paste site: an http record, or an ssl one waiting for its bytes."""

    ts: float
    tw: int
    profile: str
    saddr: str
    daddr: str
    site: str
    server_name: str
    uid: str
