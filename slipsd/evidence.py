"""Evidence and alerts: the data types and the rule that turns one into the other.

An alert is raised when the sum of threat level x confidence of a profile's
not-yet-alerted evidence in one time window reaches the threshold; all that
evidence becomes the alert. The rule lives here so the live path (evidence in
arrival order) and the analysis path (evidence sorted, for reproducible
results) share it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

THREAT_LEVELS: Final[dict[str, float]] = {
    "info": 0.0,
    "low": 0.2,
    "medium": 0.5,
    "high": 0.8,
    "critical": 1.0,
}


@dataclass(frozen=True)
class Evidence:
    type: str  # stable UPPER_SNAKE identifier, listed in docs/evidence.md
    attacker: str  # usually the profile's IP
    victim: str
    threat_level: str
    confidence: float
    description: str
    ts: float  # traffic time of the (first) flow behind it
    tw: int
    profile: str
    module: str
    uids: tuple[str, ...] = ()
    id: str = field(default="")

    def __post_init__(self) -> None:
        if self.threat_level not in THREAT_LEVELS:
            raise ValueError(
                f"threat_level must be one of {', '.join(THREAT_LEVELS)}, got {self.threat_level!r}"
            )
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be between 0 and 1, got {self.confidence!r}")
        if not self.type or not self.type.replace("_", "").isalnum() or not self.type.isupper():
            raise ValueError(f"evidence type must be UPPER_SNAKE, got {self.type!r}")

    @property
    def weight(self) -> float:
        return THREAT_LEVELS[self.threat_level] * self.confidence

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["uids"] = list(self.uids)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        return cls(**{**data, "uids": tuple(data.get("uids", ()))})


def evidence_id(type_: str, attacker: str, victim: str, tw: int, key: str) -> str:
    """Deterministic, so evidence re-emitted by a replaying module is recognised."""
    material = json.dumps([type_, attacker, victim, tw, key], separators=(",", ":"))
    return hashlib.sha1(material.encode()).hexdigest()[:20]


@dataclass
class Alert:
    id: str
    profile: str
    tw: int
    ts: float  # traffic time of its newest evidence
    score: float
    threshold: float
    evidence: list[Evidence]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "profile": self.profile,
            "tw": self.tw,
            "ts": self.ts,
            "score": round(self.score, 6),
            "threshold": self.threshold,
            "evidence": [e.id for e in self.evidence],
        }


@dataclass
class WindowAccumulator:
    """Evidence of one profile and window that has not become an alert yet."""

    profile: str
    tw: int
    threshold: float
    pending: list[Evidence] = field(default_factory=list)
    alerts: int = 0

    def add(self, evidence: Evidence) -> Alert | None:
        self.pending.append(evidence)
        score = sum(e.weight for e in self.pending)
        # A tiny tolerance: 5 x 0.2 must reach 1.0 despite float rounding.
        if score + 1e-9 < self.threshold:
            return None
        self.alerts += 1
        members = self.pending
        self.pending = []
        alert_id = hashlib.sha1(
            "|".join(sorted(e.id for e in members)).encode()
        ).hexdigest()[:20]
        return Alert(
            alert_id, self.profile, self.tw, max(e.ts for e in members), score,
            self.threshold, members,
        )


class LiveWindows:
    """The pending evidence of a live run's windows, bounded: once traffic time has moved
    ``keep`` windows past a window, it is forgotten. Evidence that still comes for it
    (rare: a module holding a flow that long) starts it afresh rather than keeping every
    window of a run that lasts for months."""

    def __init__(self, threshold: float, keep: int = 3) -> None:
        self.threshold = threshold
        self.keep = keep
        self.windows: dict[tuple[str, int], WindowAccumulator] = {}
        self.newest = -1

    def add(self, item: Evidence) -> Alert | None:
        if item.tw > self.newest:
            self.newest = item.tw
            oldest = self.newest - self.keep
            for key in [k for k in self.windows if k[1] < oldest]:
                del self.windows[key]
        key = (item.profile, item.tw)
        acc = self.windows.get(key)
        if acc is None:
            acc = self.windows[key] = WindowAccumulator(item.profile, item.tw, self.threshold)
        return acc.add(item)


def alerts_for(evidence: Iterable[Evidence], threshold: float) -> list[Alert]:
    """Alerts of a finished analysis, independent of the order evidence arrived in."""
    windows: dict[tuple[str, int], WindowAccumulator] = {}
    alerts: list[Alert] = []
    for item in sort_evidence(evidence):
        key = (item.profile, item.tw)
        acc = windows.get(key)
        if acc is None:
            acc = windows[key] = WindowAccumulator(item.profile, item.tw, threshold)
        if (alert := acc.add(item)) is not None:
            alerts.append(alert)
    alerts.sort(key=lambda a: (a.ts, a.profile, a.id))
    return alerts


def sort_evidence(evidence: Iterable[Evidence]) -> Sequence[Evidence]:
    return sorted(evidence, key=lambda e: (e.ts, e.profile, e.type, e.id))
