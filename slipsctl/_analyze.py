"""slipsctl analyze: send a capture or logs to slipsd (a private one if none runs)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from slipsctl._common import (
    EXIT_DENIED,
    JSON_OPTION,
    SOCKET_OPTION,
    _connect,
    _error_exit,
    _fail,
    _interrupted,
)
from slipsctl._private import PrivateDaemon, PrivateDaemonError
from slipsd.protocol import Client, ProtocolError, default_socket_path


def analyze(
    path: Path = typer.Argument(..., help="a capture, a log file, a Zeek log folder, or - for "
                                "Zeek JSON lines on standard input"),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="output folder of the run"),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                       help="configuration for a private slipsd"),
    socket: Optional[str] = SOCKET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    if str(path) == "-":
        fd, shown = os.dup(sys.stdin.fileno()), "stdin"
    else:
        flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            _fail(f"cannot open {path}: {exc.strerror}")
        shown = str(path.resolve())
    private: PrivateDaemon | None = None
    # SIGTERM and SIGHUP unwind like Ctrl-C, so a private daemon is always stopped.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupted)
    socket_path = socket or default_socket_path()
    if not Path(socket_path).exists() or _refused(socket_path):
        out_root = (output.parent if output else Path("slips_output")).resolve()
        typer.echo(f"slipsctl: no slipsd on {socket_path}; starting a private one for this job",
                   err=True)
        private = PrivateDaemon(out_root, config)
        try:
            private.start()
        except PrivateDaemonError as exc:
            os.close(fd)
            _fail(str(exc))
        socket_path = str(private.socket_path)
    args: dict[str, Any] = {"name": shown}
    if output is not None:
        args["output"] = str(output.resolve())
    try:
        with _connect(socket_path) as client:
            client.settimeout(None)  # an analysis takes as long as it takes
            try:
                client.send("analyze", args, fds=[fd])
                final = _follow(client, show=not as_json and sys.stderr.isatty())
            except ConnectionError as exc:
                _fail(f"lost slipsd during the analysis: {exc}")
            finally:
                os.close(fd)
    finally:
        if private is not None:
            private.stop()
    if not final["ok"]:
        err = final["error"]
        _error_exit(ProtocolError(err["code"], err["message"]))
    run = final["result"]
    if as_json:
        typer.echo(json.dumps(run, indent=2))
    else:
        _print_summary(run)


def _refused(path: str) -> bool:
    try:
        Client(path, timeout=2).close()
        return False
    except PermissionError:
        _fail(f"permission denied on {path} (are you in the slips group?)", EXIT_DENIED)
    except OSError:
        return True


def _follow(client: Client, show: bool) -> dict[str, Any]:
    final: dict[str, Any] = {}
    for message in client.replies():
        if message.get("event") == "progress" and show:
            sys.stderr.write("\r" + progress_line(message))
            sys.stderr.flush()
        if "ok" in message:
            final = message
    if show:
        sys.stderr.write("\r" + " " * 79 + "\r")
    return final


def progress_line(message: dict[str, Any], width: int = 30) -> str:
    """One status line: a bar over the input lines read, then over the module backlog."""
    events = int(message.get("events", 0))
    slowest = min(message.get("modules", {}).values(), default=events)
    if message.get("stage") == "reading":
        done, total, label = events, int(message.get("total_lines", 0)), "reading  "
        if not total:  # a pipe: its length is unknown until it ends
            return f"{label} {events:,} events, {slowest:,} through every module "
    else:
        done, total, label = slowest, events, "detecting"
    fraction = min(1.0, done / total) if total else 0.0
    filled = int(fraction * width)
    return (f"{label} [{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%}  "
            f"{events:,} events, {slowest:,} through every module ")


def _print_summary(run: dict[str, Any]) -> None:
    s = run["summary"]
    typer.echo(f"analyzed {run['source']} (run {run['id']})")
    typer.echo(f"  flows {s.get('flows', 0):,}  events {s.get('events', 0):,}  "
               f"profiles {s.get('profiles', 0):,}  lines {s.get('lines', 0):,}  "
               f"bad lines {s.get('bad_lines', 0):,}")
    for line in s.get("input_errors", [])[:5]:
        typer.echo(f"  bad input: {line}")
    if s.get("whitelisted_events") or s.get("whitelisted_evidence"):
        typer.echo(f"  whitelisted: flows {s.get('whitelisted_flows', 0):,}  events "
                   f"{s.get('whitelisted_events', 0):,}  evidence "
                   f"{s.get('whitelisted_evidence', 0):,}")
    for line in s.get("whitelist", {}).get("errors", [])[:5]:
        typer.echo(f"  whitelist: {line}")
    by_type = s.get("evidence_by_type", {})
    typer.echo(f"  evidence {s.get('evidence', 0)}" + (": " + ", ".join(
        f"{k} {v}" for k, v in sorted(by_type.items())) if by_type else ""))
    alerts = s.get("alerts_by_type", {})
    typer.echo(f"  alerts {s.get('alerts', 0)}" + (" (" + ", ".join(
        f"{k} {v}" for k, v in sorted(alerts.items())) + ")" if alerts else ""))
    if run.get("problem"):
        typer.echo(f"  problem: {run['problem']}")
    typer.echo(f"  output {run['output']}")
