"""The embedded Redis: a supervised redis-server on a private Unix socket, no TCP port."""

from __future__ import annotations

import shutil
from pathlib import Path

from slipsd.supervision import ProcessSpec, Restart

SOCKET_NAME = "redis.sock"


class RedisNotFound(Exception):
    pass


def redis_spec(program: str, runtime_dir: Path) -> tuple[ProcessSpec, str]:
    """The process spec and the client URL of an embedded redis-server."""
    binary = shutil.which(program)
    if binary is None:
        raise RedisNotFound(
            f"redis-server not found (looked for {program!r} on PATH); install the "
            "redis-server package or set [database] url to an existing Redis"
        )
    sock = runtime_dir / SOCKET_NAME
    argv = [
        binary,
        "--port", "0",  # no TCP listener: nothing outside this machine can reach it
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(runtime_dir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--supervised", "no",
        "--logfile", "",
        "--loglevel", "warning",
        "--pidfile", "",
        "--databases", "1",
    ]
    spec = ProcessSpec("redis", argv, role="redis", restart=Restart.ALWAYS, stop_order=90)
    return spec, f"unix://{sock}"
