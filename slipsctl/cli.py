"""slipsctl: the command-line client of slipsd. Help texts come from the protocol's command table.

Parameters are spelt ``Optional[X]``, not ``X | None``, because typer 0.7 (Debian 12)
does not understand the latter.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from importlib.metadata import version as package_version
from typing import Any, Optional

import typer

from slipsctl._analyze import analyze, progress_line
from slipsctl._common import (
    FOLLOW_SECONDS,
    JSON_OPTION,
    SOCKET_OPTION,
    _ask,
    _interrupted,
    _when,
)
from slipsd.protocol import COMMANDS, Client, ProtocolError, default_socket_path

__all__ = ["app", "progress_line"]

app = typer.Typer(add_completion=True, no_args_is_help=True,
                  help="Control slipsd, the slips intrusion detection daemon.")
app.command(help=COMMANDS["analyze"].help)(analyze)


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
