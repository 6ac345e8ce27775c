"""The control protocol: the only code slipsd and slipsctl share.

Newline-delimited JSON over a Unix stream socket::

    -> {"v": 1, "id": 7, "cmd": "status", "args": {}}
    <- {"v": 1, "id": 7, "event": "progress", ...}        (long jobs, any number)
    <- {"v": 1, "id": 7, "ok": true, "result": {...}}
    <- {"v": 1, "id": 7, "ok": false, "error": {"code": "...", "message": "..."}}

File descriptors (``analyze``) travel with the request line as SCM_RIGHTS.
``COMMANDS`` is the one command table: the server refuses to start unless it
has a handler for each, and slipsctl's help text comes from it.
"""

from __future__ import annotations

import array
import json
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

VERSION: Final = 1
MAX_LINE: Final = 64 * 1024  # bytes in one request or reply line
MAX_FDS: Final = 4
SOCKET_NAME: Final = "slipsd.sock"


class Code:
    BAD_REQUEST: Final = "bad_request"
    LINE_TOO_LONG: Final = "line_too_long"
    UNSUPPORTED_VERSION: Final = "unsupported_version"
    UNKNOWN_COMMAND: Final = "unknown_command"
    INVALID_ARGS: Final = "invalid_args"
    PERMISSION_DENIED: Final = "permission_denied"
    NOT_FOUND: Final = "not_found"
    FAILED: Final = "failed"
    INTERNAL: Final = "internal"
    INVALID_CONFIG: Final = "invalid_config"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    mutating: bool = False  # needs an administrator (root or the daemon's own user)
    args: dict[str, str] = field(default_factory=dict)  # name -> help
    takes_fd: bool = False


COMMANDS: Final[dict[str, Command]] = {
    c.name: c
    for c in (
        Command("hello", "Check the daemon answers; returns its version and pid."),
        Command("status", "Daemon, Redis, every child process and every run."),
        Command(
            "analyze",
            "Analyze a capture, a log file, a Zeek log folder or stdin; wait for the alerts.",
            mutating=True,
            args={"name": "path shown in reports", "output": "output folder (optional)"},
            takes_fd=True,
        ),
        Command(
            "alerts",
            "Alerts of the live run (or of a given run), newest last.",
            args={"run": "run id (default: the live run, else the latest run)",
                  "limit": "at most this many, the newest (default 100)"},
        ),
        Command("runs", "Analyses and the live run this daemon knows, with state and output."),
        Command(
            "profiles",
            "Profiles of a run (default: the live run, else the latest run).",
            args={"run": "run id", "sort": "score (default), flows or ip",
                  "alerted": "only profiles with alerts", "limit": "at most this many"},
        ),
        Command("profile", "One profile: its time windows with flows summary, evidence and "
                "alerts.", args={"ip": "the profile's IP", "run": "run id"}),
        Command("modules", "Modules available, whether enabled, and their live hosts."),
        Command(
            "module",
            "Enable, disable or restart one module now; --persist also writes the change "
            "into slips.d so it survives a restart.",
            mutating=True,
            args={"action": "enable, disable or restart", "name": "module name",
                  "persist": "write the change into slips.d/90-slipsctl.conf"},
        ),
        Command("reload", "Validate the configuration files and apply them as a diff; an "
                "invalid configuration is rejected and the running one stays.", mutating=True),
        Command("stop", "Stop the daemon and all its children.", mutating=True),
    )
}


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def request(ident: int, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"v": VERSION, "id": ident, "cmd": cmd, "args": args or {}}


def ok(ident: Any, result: Any) -> dict[str, Any]:
    return {"v": VERSION, "id": ident, "ok": True, "result": result}


def error(ident: Any, code: str, message: str) -> dict[str, Any]:
    return {"v": VERSION, "id": ident, "ok": False, "error": {"code": code, "message": message}}


def event(ident: Any, name: str, **fields: Any) -> dict[str, Any]:
    return {"v": VERSION, "id": ident, "event": name, **fields}


def parse_request(line: bytes) -> dict[str, Any]:
    """Validate one request line; raises ProtocolError with the reason."""
    try:
        message = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(Code.BAD_REQUEST, f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(Code.BAD_REQUEST, "a request must be a JSON object")
    if message.get("v") != VERSION:
        raise ProtocolError(Code.UNSUPPORTED_VERSION,
                            f"protocol version {message.get('v')!r} is not supported "
                            f"(this daemon speaks {VERSION})")
    if not isinstance(message.get("cmd"), str):
        raise ProtocolError(Code.BAD_REQUEST, "missing 'cmd'")
    if message["cmd"] not in COMMANDS:
        raise ProtocolError(Code.UNKNOWN_COMMAND, f"unknown command {message['cmd']!r}; "
                            f"known: {', '.join(COMMANDS)}")
    if not isinstance(message.get("args", {}), dict):
        raise ProtocolError(Code.BAD_REQUEST, "'args' must be an object")
    return message


def default_socket_path() -> str:
    if env := os.environ.get("SLIPS_SOCKET"):
        return env
    runtime = os.environ.get("RUNTIME_DIRECTORY", "/run/slips").split(":")[0]
    return os.path.join(runtime, SOCKET_NAME)


class Client:
    """A blocking client: one request at a time, replies read line by line."""

    def __init__(self, path: str, timeout: float | None = 10.0) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(path)
        self._buffer = b""
        self._next_id = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def send(self, cmd: str, args: dict[str, Any] | None = None, fds: Sequence[int] = ()) -> int:
        self._next_id += 1
        data = encode(request(self._next_id, cmd, args))
        if fds:
            sent = socket.send_fds(self._sock, [data], list(fds))
            self._sock.sendall(data[sent:])
        else:
            self._sock.sendall(data)
        return self._next_id

    def replies(self) -> Iterator[dict[str, Any]]:
        """Events, then the final reply (the message with ``ok``)."""
        while True:
            line = self._read_line()
            message = json.loads(line)
            yield message
            if "ok" in message:
                return

    def call(self, cmd: str, args: dict[str, Any] | None = None, fds: Sequence[int] = ()) -> Any:
        """Send one request and return its result, or raise ProtocolError."""
        self.send(cmd, args, fds)
        for message in self.replies():
            if "ok" in message:
                if message["ok"]:
                    return message["result"]
                err = message.get("error", {})
                raise ProtocolError(err.get("code", Code.INTERNAL), err.get("message", ""))
        raise ProtocolError(Code.INTERNAL, "connection closed without a reply")

    def _read_line(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"slipsd closed the connection on {self.path}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


def receive_fds(sock: socket.socket, size: int) -> tuple[bytes, list[int]]:
    """One recvmsg on a non-blocking socket: data and any SCM_RIGHTS descriptors."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(size, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % fds.itemsize
            fds.frombytes(payload[:usable])
    return data, list(fds)
