"""A documented starting point for new modules (see docs/modules.md).

Copy this folder to ``modules/<your_name>/``, rename the file to
``<your_name>.py`` and set ``name`` to the same string. It is not enabled by
default; it reports one piece of evidence per destination port it is told to
watch, to show every part of the API working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slipsd.events import Flow, TwClosed
from slipsd.module import Module, Option


class Template(Module):
    name = "template"
    description = "Example module: reports established flows to watched ports (TEMPLATE_PORT)"
    # One ``on_<channel>`` method per channel read; on_tw_closed needs no entry.
    channels = ("new_flow",)
    evidence_types = ("TEMPLATE_PORT",)
    options = {
        "ports": Option(list, ["4444"], "destination ports to report"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        # Validated options arrive here; keep per-run state on the instance.
        self.ports = {int(p) for p in config["ports"]}
        self.seen: dict[tuple[str, int], int] = {}

    def on_new_flow(self, flow: Flow) -> None:
        if flow["dport"] not in self.ports or flow["state"] not in ("SF", "S1", "RSTO"):
            return
        key = (flow["profile"], flow["tw"])
        self.seen[key] = self.seen.get(key, 0) + 1
        # One evidence per profile, window and port: the key makes repeats one evidence.
        self.ctx.evidence(
            "TEMPLATE_PORT",
            attacker=flow["saddr"],
            victim=flow["daddr"],
            threat_level="info",
            confidence=1.0,
            description=f"established connection to watched port {flow['dport']}",
            ts=flow["ts"],
            tw=flow["tw"],
            uids=(flow["uid"],),
            key=str(flow["dport"]),
        )

    def on_tw_closed(self, event: TwClosed) -> None:
        # Per-window state can be dropped once the window is closed.
        self.seen.pop((event["profile"], event["tw"]), None)

    def shutdown(self) -> None:
        self.ctx.log.debug("template saw %d windows with watched ports", len(self.seen))
