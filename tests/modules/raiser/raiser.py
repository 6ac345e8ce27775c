"""Test module: fails on every message, to prove errors are isolated per call."""

from __future__ import annotations

from typing import Any

from slipsd.module import Module


class Raiser(Module):
    name = "raiser"
    description = "raises on every flow"
    channels = ("new_flow",)

    def on_new_flow(self, flow: Any) -> None:
        raise RuntimeError(f"boom on {flow['uid']}")
