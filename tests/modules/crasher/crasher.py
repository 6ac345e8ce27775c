"""Test module: its process dies on the first flow, every time it is started."""

from __future__ import annotations

import os
from typing import Any

from slipsd.module import Module


class Crasher(Module):
    name = "crasher"
    description = "exits its host process on the first flow"
    channels = ("new_flow",)

    def on_new_flow(self, flow: Any) -> None:
        os._exit(3)  # not an exception: the host cannot isolate this one
