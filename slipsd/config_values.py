"""Parsers of configuration values, one per kind of key in ``slipsd.config.SCHEMA``.

Each turns the text of one key into its value or raises ``ValueError`` saying
what is wrong with it; ``load`` adds the file, section and key to that message.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from typing import Any

Parser = Callable[[str], Any]


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "yes", "true", "on"):
        return True
    if low in ("0", "no", "false", "off"):
        return False
    raise ValueError(f"expected yes or no, got {text!r}")


def positive(kind: Callable[[str], float | int]) -> Parser:
    def parse(text: str) -> float | int:
        value = kind(text)
        if value <= 0:
            raise ValueError(f"must be greater than 0, got {text!r}")
        return value

    return parse


def parse_non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must be 0 or more, got {text!r}")
    return value


def parse_processes(text: str) -> int:
    """A count of processes, or ``auto``: the CPUs this process may run on."""
    if text.strip().lower() == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    return parse_non_negative_int(text)


def choice(*options: str) -> Parser:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {text!r}")
        return value

    return parse


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


def parse_networks(text: str) -> list[str]:
    nets = parse_list(text)
    for net in nets:
        ipaddress.ip_network(net, strict=False)
    return nets


def parse_interfaces(text: str) -> list[str]:
    names = parse_list(text)
    for name in names:
        # Each interface gets a folder of its own, named after it.
        if "/" in name or name in (".", ".."):
            raise ValueError(f"not an interface name: {name!r}")
    return names


def parse_redis_url(text: str) -> str:
    url = text.strip()
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"must start with redis://, rediss:// or unix://, got {text!r}")
    return url
