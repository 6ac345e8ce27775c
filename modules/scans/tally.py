"""Counting distinct targets per window, reported at growing thresholds.

A scan is one observation that keeps growing; reporting it once per flow would
flood the evidence store. A tally reports when its count first reaches the
threshold and again at ten and a hundred times it, so a scan of N targets makes
at most about log10(N) evidence per window.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

MAX_UIDS = 10
MAX_EXAMPLES = 5


@dataclass
class Budget:
    """Entries a profile's window may still remember; shared by all its tallies."""

    left: int


@dataclass
class Tally:
    next_level: int
    seen: set[Hashable] = field(default_factory=set)
    count: int = 0
    uids: list[str] = field(default_factory=list)
    # First targets in arrival order: sets iterate in hash order, which changes
    # between processes, and descriptions must come out the same on replay.
    examples: list[str] = field(default_factory=list)

    def add(self, item: Hashable, uid: str, budget: Budget, label: str = "") -> int | None:
        """Count a distinct item; returns the level reached, if one was."""
        if item in self.seen or budget.left <= 0:
            return None
        budget.left -= 1
        self.seen.add(item)
        self._remember(uid, label or str(item))
        return self.bump(len(self.seen))

    def add_many(self, amount: int, uid: str, label: str) -> int | None:
        """Count repeated occurrences (packets) rather than distinct items."""
        self.count += max(1, amount)
        self._remember(uid, label)
        return self.bump(self.count)

    def bump(self, count: int) -> int | None:
        if count < self.next_level:
            return None
        reached = self.next_level
        # One jump can pass several levels (a flow with many packets): report the highest.
        while count >= self.next_level * 10:
            self.next_level *= 10
            reached = self.next_level
        self.next_level *= 10
        return reached

    @property
    def size(self) -> int:
        return self.count or len(self.seen)

    def _remember(self, uid: str, label: str) -> None:
        if uid and len(self.uids) < MAX_UIDS and uid not in self.uids:
            self.uids.append(uid)
        if len(self.examples) < MAX_EXAMPLES and label not in self.examples:
            self.examples.append(label)


def grade(count: int, threshold: int) -> tuple[str, float]:
    """Threat level and confidence: medium at the threshold, high and sure from 10x it."""
    confidence = round(max(0.5, min(1.0, count / (10 * threshold))), 3)
    return ("high" if count >= 10 * threshold else "medium"), confidence


@dataclass
class WindowState:
    """Everything remembered about one profile in one time window."""

    budget: Budget
    horizontal: dict[tuple[str, int], Tally] = field(default_factory=dict)
    vertical: dict[str, Tally] = field(default_factory=dict)
    icmp: dict[int, Tally] = field(default_factory=dict)
    unreachable: dict[str, Tally] = field(default_factory=dict)
    dhcp: dict[str, Tally] = field(default_factory=dict)
    notices: set[tuple[str, str]] = field(default_factory=set)
