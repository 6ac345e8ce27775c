"""slipsctl: the command-line client of slipsd. Help texts come from the protocol's command table.

Parameters are spelt ``Optional[X]``, not ``X | None``, because typer 0.7 (Debian 12)
does not understand the latter.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer

from slipsctl._private import PrivateDaemon, PrivateDaemonError
from slipsd.protocol import COMMANDS, Client, Code, ProtocolError, default_socket_path

FOLLOW_SECONDS = 1.0  # how often --follow asks for new alerts
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_DENIED = 0, 1, 2, 3, 4

app = typer.Typer(add_completion=True, no_args_is_help=True,
                  help="Control slipsd, the slips intrusion detection daemon.")

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


@app.command(help=COMMANDS["status"].help)
def status(socket: Optional[str] = SOCKET_OPTION, as_json: bool = JSON_OPTION) -> None:
    result = _ask(socket, "status")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    daemon, redis = result["daemon"], result["redis"]
    typer.echo(f"slipsd {daemon['version']}  pid {daemon['pid']}  up {daemon['uptime']:.0f}s  "
               f"config {daemon['config']}")
    typer.echo(f"redis  {'up' if redis.get('up') else 'DOWN'}  {redis['url']}  "
               f"used_memory {redis.get('used_memory', '?')}")
    typer.echo(f"modules enabled: {', '.join(daemon['modules']) or 'none'}")
    for name, why in sorted(daemon.get("unavailable_modules", {}).items()):
        typer.echo(f"module {name} NOT STARTED: {why}")
    typer.echo("")
    typer.echo(f"{'CHILD':44} {'STATE':9} {'PID':>7} {'RESTARTS':>8}  LAST EXIT / ERRORS")
    for child in result["children"]:
        extra = child.get("last_exit") or ""
        modules = child.get("modules") or {}
        if child["role"] == "module":
            extra = f"lag {child.get('lag', 0)}" + (f", {extra}" if extra else "")
        name = child["name"]
        if len(modules) > 1:  # a shared host: its name lists them all, shown below instead
            name = f"{name.rsplit('/', 1)[0]}/({len(modules)} modules)"
        typer.echo(f"{name:44} {child['state']:9} {child['pid'] or '-':>7} "
                   f"{child['restarts']:>8}  {extra}")
        for module, stats in modules.items():
            error = f" ({stats['last_error']})" if stats.get("last_error") else ""
            typer.echo(f"    {module:40} processed {stats.get('processed', 0)}, "
                       f"errors {stats.get('errors', 0)}{error}")
    if result["runs"]:
        typer.echo("")
        for run in result["runs"]:
            typer.echo(f"run {run['id']}  {run['state']}  {run['source']}  -> {run['output']}")
            typer.echo(f"    flows {run['flows']:,} ({run['flows_per_second']:,.0f}/s)  "
                       f"profiles {run['profiles']:,}  evidence {run['evidence']:,}  "
                       f"alerts {run['alerts']:,}")


@app.command(help=COMMANDS["analyze"].help)
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


def _interrupted(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


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


@app.command(help=COMMANDS["alerts"].help)
def alerts(
    run: Optional[str] = typer.Option(None, "--run", help="run id"),
    limit: int = typer.Option(100, "--limit", help="at most this many, the newest"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new alerts"),
    socket: Optional[str] = SOCKET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    args: dict[str, Any] = {"limit": limit}
    if run:
        args["run"] = run
    if follow:
        _follow_alerts(socket, args, as_json)
        return
    result = _ask(socket, "alerts", args)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"run {result['run']}: {len(result['alerts'])} alert(s)")
    _print_alerts(result["alerts"])


def _follow_alerts(socket: Optional[str], args: dict[str, Any], as_json: bool) -> None:
    """Print new alerts as they are raised, until interrupted (Ctrl-C, SIGTERM)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupted)
    seen: set[str] = set()
    try:
        while True:
            fresh = [a for a in _ask(socket, "alerts", args)["alerts"] if a["id"] not in seen]
            seen.update(a["id"] for a in fresh)
            if as_json:
                for alert in fresh:
                    typer.echo(json.dumps(alert))
            else:
                _print_alerts(fresh)
            sys.stdout.flush()
            time.sleep(FOLLOW_SECONDS)
    except (KeyboardInterrupt, SystemExit):
        return


def _print_alerts(alerts: list[dict[str, Any]]) -> None:
    for alert in alerts:
        types = sorted({e["type"] for e in alert["evidence"]})
        typer.echo(f"ALERT {alert['profile']} window {alert['tw']} score {alert['score']:.2f}: "
                   f"{', '.join(types)}")
        for item in alert["evidence"]:
            typer.echo(f"    {item['type']} -> {item['victim'] or '-'}: {item['description']}")


def _ask(socket: Optional[str], cmd: str, args: Optional[dict[str, Any]] = None,
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


@app.command(help=COMMANDS["runs"].help)
def runs(socket: Optional[str] = SOCKET_OPTION, as_json: bool = JSON_OPTION) -> None:
    result = _ask(socket, "runs", {})
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for run in result["runs"]:
        typer.echo(f"{run['id']:34} {run['state']:9} {_when(run['started'])}  {run['source']}"
                   f"  -> {run['output']}" + (f"  ({run['problem']})" if run["problem"] else ""))


@app.command(help=COMMANDS["profiles"].help)
def profiles(
    run: Optional[str] = typer.Option(None, "--run", help="run id"),
    sort: str = typer.Option("score", "--sort", help="score, flows or ip"),
    alerted: bool = typer.Option(False, "--alerted", help="only profiles with alerts"),
    limit: int = typer.Option(50, "--limit", help="at most this many"),
    socket: Optional[str] = SOCKET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    args: dict[str, Any] = {"sort": sort, "alerted": alerted, "limit": limit}
    if run:
        args["run"] = run
    result = _ask(socket, "profiles", args)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"run {result['run']}")
    typer.echo(f"{'PROFILE':40} {'FLOWS':>9} {'SCORE':>6} {'ALERTS':>6}  LAST SEEN")
    for row in result["profiles"]:
        typer.echo(f"{row['ip']:40} {row['flows']:>9,} {row['score']:>6.2f} {row['alerts']:>6}"
                   f"  {_when(row['last_seen'])}")


@app.command(help=COMMANDS["profile"].help)
def profile(
    ip: str = typer.Argument(..., help="the profile's IP address"),
    run: Optional[str] = typer.Option(None, "--run", help="run id"),
    socket: Optional[str] = SOCKET_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    args: dict[str, Any] = {"ip": ip}
    if run:
        args["run"] = run
    result = _ask(socket, "profile", args)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"profile {ip} in run {result['run']}: {result.get('flows', 0)} flows, "
               f"seen {_when(float(result.get('first_seen', 0)))} to "
               f"{_when(float(result.get('last_seen', 0)))}")
    for key, value in result.get("ip_info", {}).items():
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        typer.echo(f"  {key}: {shown}")
    for window in result["windows"]:
        typer.echo(f"  window {window['tw']}: {window['flows']} flows out, "
                   f"{window['flows_in']} in, {window['sbytes']:,} bytes sent")
        for item in window["evidence"]:
            typer.echo(f"    {item['type']} -> {item['victim'] or '-'}: {item['description']}")
        for alert in window["alerts"]:
            typer.echo(f"    ALERT score {alert['score']:.2f}")


@app.command()
def version(socket: Optional[str] = SOCKET_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Versions of slipsctl and, when it answers, of the running slipsd."""
    path = socket or default_socket_path()
    hello: dict[str, Any] | None = None
    try:
        with Client(path, timeout=5) as client:
            hello = client.call("hello")
    except (OSError, ProtocolError):
        hello = None
    if as_json:
        typer.echo(json.dumps({"slipsctl": package_version("slips"), "slipsd": hello}))
        return
    typer.echo(f"slipsctl {package_version('slips')}")
    if hello is None:
        typer.echo(f"slipsd: not running on {path}")
    else:
        typer.echo(f"slipsd {hello['version']} (protocol {hello['protocol']})")


modules_app = typer.Typer(help=COMMANDS["modules"].help)
app.add_typer(modules_app, name="modules")
PERSIST_OPTION = typer.Option(False, "--persist", help="also write the change into slips.d")


@modules_app.callback(invoke_without_command=True)
def modules_list(ctx: typer.Context, socket: Optional[str] = SOCKET_OPTION,
                 as_json: bool = JSON_OPTION) -> None:
    if ctx.invoked_subcommand is not None:
        return
    result = _ask(socket, "modules", {})
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for module in result["modules"]:
        state = "enabled" if module["enabled"] else "disabled"
        live = f"  live: {module['live']}" if module["live"] else ""
        why = f"  NOT STARTED: {module['unavailable']}" if module.get("unavailable") else ""
        typer.echo(f"{module['name']:18} {state:9}{live}  ({module['origin']}){why}")


def _module_action(action: str, name: str, persist: bool, socket: Optional[str]) -> None:
    result = _ask(socket, "module", {"action": action, "name": name, "persist": persist})
    if action == "restart":
        typer.echo(f"restarted {name}")
        return
    done = result.get("modules_started") or result.get("modules_stopped")
    typer.echo(f"{name} {action}d" if done else f"{name} was already {action}d")
    if result.get("persisted"):
        typer.echo(f"written to {result['persisted']}")


@modules_app.command("enable")
def modules_enable(name: str, persist: bool = PERSIST_OPTION,
                   socket: Optional[str] = SOCKET_OPTION) -> None:
    """Enable a module now (the live run starts its host)."""
    _module_action("enable", name, persist, socket)


@modules_app.command("disable")
def modules_disable(name: str, persist: bool = PERSIST_OPTION,
                    socket: Optional[str] = SOCKET_OPTION) -> None:
    """Disable a module now (the live run stops its host)."""
    _module_action("disable", name, persist, socket)


@modules_app.command("restart")
def modules_restart(name: str, socket: Optional[str] = SOCKET_OPTION) -> None:
    """Restart a module's host in the live run."""
    _module_action("restart", name, False, socket)


@app.command(help=COMMANDS["reload"].help)
def reload(socket: Optional[str] = SOCKET_OPTION, as_json: bool = JSON_OPTION) -> None:
    # Restarting readers of the live run can take a while.
    result = _ask(socket, "reload", timeout=120)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if not result["changed"]:
        typer.echo("configuration unchanged")
        return
    for key, values in result["changed"].items():
        typer.echo(f"{key}: {values['old']!r} -> {values['new']!r}")
    for label in ("modules_started", "modules_stopped", "modules_reconfigured",
                  "sensors_added", "sensors_removed", "needs_restart"):
        if result[label]:
            typer.echo(f"{label.replace('_', ' ')}: {', '.join(result[label])}")


@app.command(help=COMMANDS["stop"].help)
def stop(socket: Optional[str] = SOCKET_OPTION, as_json: bool = JSON_OPTION) -> None:
    _ask(socket, "stop")
    typer.echo(json.dumps({"stopping": True}) if as_json else "slipsd is stopping")


@app.command(help=COMMANDS["hello"].help)
def hello(socket: Optional[str] = SOCKET_OPTION) -> None:
    result = _ask(socket, "hello")
    typer.echo(f"slipsd {result['version']} (pid {result['pid']}, protocol {result['protocol']})")
