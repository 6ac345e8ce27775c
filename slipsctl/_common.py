"""What every slipsctl command shares: exit codes, options, asking slipsd.

Parameters are spelt ``Optional[X]``, not ``X | None``, because typer 0.7 (Debian 12)
does not understand the latter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NoReturn

import typer

from slipsd.protocol import Client, Code, ProtocolError, default_socket_path

FOLLOW_SECONDS = 1.0  # how often --follow asks for new alerts
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_DENIED = 0, 1, 2, 3, 4

SOCKET_OPTION = typer.Option(None, "--socket", envvar="SLIPS_SOCKET",
                             help="control socket of slipsd [default: /run/slips/slipsd.sock]")
JSON_OPTION = typer.Option(False, "--json", help="machine-readable output")


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"slipsctl: {message}", err=True)
    raise typer.Exit(code)


def _connect(socket_path: str | None) -> Client:
    path = socket_path or default_socket_path()
    try:
        return Client(path)
    except FileNotFoundError:
        _fail(f"slipsd is not running (no socket at {path})", EXIT_NOT_RUNNING)
    except ConnectionRefusedError:
        _fail(f"slipsd is not running (socket {path} refuses connections)", EXIT_NOT_RUNNING)
    except PermissionError:
        _fail(f"permission denied on {path} (are you in the slips group?)", EXIT_DENIED)


def _error_exit(exc: ProtocolError) -> NoReturn:
    code = EXIT_DENIED if exc.code == Code.PERMISSION_DENIED else EXIT_FAILED
    _fail(f"{exc.message} [{exc.code}]", code)


def _ask(socket: str | None, cmd: str, args: dict[str, Any] | None = None,
         timeout: float = 10.0) -> Any:
    """One request; a refusal exits with its message and the matching exit code."""
    with _connect(socket) as client:
        client.settimeout(timeout)
        try:
            return client.call(cmd, args)
        except ProtocolError as exc:
            _error_exit(exc)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _interrupted(signum: int, frame: object) -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so that cleanups run."""
    raise SystemExit(128 + signum)
