"""The control socket server: framing, limits, peer checks and dispatch by command table.

A bad request gets an error reply and, if it breaks framing (oversized or
not newline-terminated before the idle timeout), the connection is closed;
neither ever reaches the daemon's other clients or its main loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipsd import protocol
from slipsd.protocol import Code, ProtocolError

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 300.0  # seconds a client may stay silent between requests


@dataclass
class Peer:
    pid: int
    uid: int
    gid: int


@dataclass
class Request:
    id: Any
    cmd: str
    args: dict[str, Any]
    peer: Peer
    fds: list[int] = field(default_factory=list)
    _send: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    async def progress(self, **fields: Any) -> None:
        if self._send is not None:
            await self._send(protocol.event(self.id, "progress", **fields))


Handler = Callable[[Request], Awaitable[Any]]


def peer_of(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


class ControlServer:
    def __init__(self, path: Path, handlers: dict[str, Handler], mode: int = 0o660,
                 group: str = "", admin_group: str = "") -> None:
        missing = set(protocol.COMMANDS) - set(handlers)
        extra = set(handlers) - set(protocol.COMMANDS)
        if missing or extra:
            raise ValueError(f"handlers do not match the command table: missing {missing}, "
                             f"extra {extra}")
        self.path = path
        self.handlers = handlers
        self.mode = mode
        # Who may connect: the socket's group (file permissions decide). Who may change
        # things: root, the daemon's own user, and members of the admin group.
        self.gid = _gid(group) if group else None
        self.admin_gid = _gid(admin_group) if admin_group else None
        if group and self.gid is None:
            log.warning("group %r does not exist: the control socket keeps slipsd's group",
                        group)
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # stale: the caller has checked nobody answers on it
        sock.bind(str(self.path))
        os.chmod(self.path, self.mode)
        if self.gid is not None:
            os.chown(self.path, -1, self.gid)
            # The group must also be able to reach the socket through its folder.
            with contextlib.suppress(PermissionError):
                os.chown(self.path.parent, -1, self.gid)
        sock.listen(64)
        sock.setblocking(False)
        self._sock = sock
        self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._clients):
            task.cancel()
        if self._sock is not None:
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _accept_loop(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            conn.setblocking(False)
            task = loop.create_task(self._serve(conn))
            self._clients.add(task)
            task.add_done_callback(self._clients.discard)

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        peer = peer_of(conn)
        buffer = b""
        fds: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            await loop.sock_sendall(conn, protocol.encode(message))

        try:
            while True:
                while b"\n" not in buffer:
                    if len(buffer) > protocol.MAX_LINE:
                        await send(protocol.error(None, Code.LINE_TOO_LONG,
                                                  f"request longer than {protocol.MAX_LINE} bytes"))
                        return
                    chunk, new_fds = await asyncio.wait_for(_recv(conn), IDLE_TIMEOUT)
                    fds.extend(new_fds)
                    if not chunk:
                        return
                    buffer += chunk
                line, _, buffer = buffer.partition(b"\n")
                if len(line) > protocol.MAX_LINE:
                    await send(protocol.error(None, Code.LINE_TOO_LONG,
                                              f"request longer than {protocol.MAX_LINE} bytes"))
                    return
                request_fds, fds = fds, []
                await self._dispatch(line, peer, request_fds, send)
        except (TimeoutError, ConnectionError, BrokenPipeError):
            pass
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            conn.close()

    def _may_change(self, peer: Peer) -> bool:
        if peer.uid in (0, os.getuid()):
            return True
        if self.admin_gid is None:
            return False
        return peer.gid == self.admin_gid or self.admin_gid in peer_groups(peer.pid)

    async def _dispatch(
        self, line: bytes, peer: Peer, fds: list[int],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        ident: Any = _best_effort_id(line)
        try:
            message = protocol.parse_request(line)
            ident = message.get("id")
            command = protocol.COMMANDS[message["cmd"]]
            if command.mutating and not self._may_change(peer):
                raise ProtocolError(Code.PERMISSION_DENIED,
                                    f"{command.name} needs root, the daemon's user or the "
                                    "admin group")
            if fds and not command.takes_fd:
                raise ProtocolError(Code.BAD_REQUEST, f"{command.name} takes no descriptors")
            req = Request(ident, command.name, message.get("args", {}), peer, fds, send)
            fds = []  # the handler owns them now
            result = await self.handlers[command.name](req)
            await send(protocol.ok(ident, result))
        except ProtocolError as exc:
            await send(protocol.error(ident, exc.code, exc.message))
        except (ConnectionError, BrokenPipeError):
            raise
        except Exception as exc:
            log.exception("control command failed")
            await send(protocol.error(ident, Code.INTERNAL, f"{type(exc).__name__}: {exc}"))
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def peer_groups(pid: int) -> set[int]:
    """The supplementary groups of a connected process (SO_PEERCRED gives only one)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


async def _recv(conn: socket.socket) -> tuple[bytes, list[int]]:
    loop = asyncio.get_running_loop()
    while True:
        try:
            return protocol.receive_fds(conn, 65536)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(conn.fileno(), _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_reader(conn.fileno())


def _best_effort_id(line: bytes) -> Any:
    """The request's id, if it has one, so even a rejected request gets a matching reply."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message.get("id") if isinstance(message, dict) else None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def socket_answers(path: Path) -> bool:
    """True when a daemon is already serving on ``path``."""
    try:
        with protocol.Client(str(path), timeout=2.0) as client:
            client.call("hello")
            return True
    except (OSError, ProtocolError):
        return False
