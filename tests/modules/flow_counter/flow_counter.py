"""Test module with state: evidence when a profile's flows in a window reach 10, 100, 1000...

Its results depend on every flow being counted exactly once, so a restarted
host that replays the run must end with the same evidence as an undisturbed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slipsd.module import Module


class FlowCounter(Module):
    name = "flow_counter"
    description = "counts flows per profile and window"
    channels = ("new_flow",)

    def setup(self, config: Mapping[str, Any]) -> None:
        self.counts: dict[tuple[str, int], int] = {}

    def on_new_flow(self, flow: Any) -> None:
        key = (flow["profile"], flow["tw"])
        count = self.counts[key] = self.counts.get(key, 0) + 1
        if count >= 10 and str(count).strip("0") == "1":  # 10, 100, 1000, ...
            self.ctx.evidence(
                "MANY_FLOWS", attacker=flow["profile"], victim="", threat_level="info",
                confidence=1.0, description=f"{count} flows in window {flow['tw']}",
                ts=flow["ts"], tw=flow["tw"], uids=(flow["uid"],), key=str(count),
            )

    def on_tw_closed(self, event: Mapping[str, Any]) -> None:
        seen = self.counts.get((event["profile"], event["tw"]), 0)
        self.ctx.evidence(
            "WINDOW_TOTAL", attacker=event["profile"], victim="", threat_level="info",
            confidence=1.0, description=f"{seen} flows", ts=event["start"], tw=event["tw"],
            key=str(seen),
        )
