"""slipsctl(8): the commands and their options from slipsctl's click tree, the prose here."""

from __future__ import annotations

import click
import typer.main
from _roff import bold, esc, header, ital, item, para, section

from slipsctl.cli import app

COMMON = ("--socket", "--json")


def option_tag(param: click.Option, short: bool = True) -> str:
    opts = sorted(param.opts, key=len)
    names = ", ".join(bold(opt) for opt in (opts if short else opts[-1:]))
    if param.is_flag:
        return names
    metavar = "N" if isinstance(param.type, click.types.IntParamType) else "VALUE"
    if param.name in ("output", "config", "socket"):
        metavar = {"output": "DIR", "config": "FILE", "socket": "PATH"}[param.name]
    elif param.name == "run":
        metavar = "ID"
    return f"{names} {ital(metavar)}"


def option_help(param: click.Option) -> str:
    text = param.help or ""
    if not param.is_flag and param.default not in (None, "") and "[default" not in text:
        text += f" (default: {param.default})"
    return text


def synopsis_of(path: str, command: click.Command) -> str:
    parts = [bold(f"slipsctl {path}")]
    for param in command.params:
        if isinstance(param, click.Argument):
            parts.append(ital(param.name.upper() if param.name else "ARG"))
        elif isinstance(param, click.Option) and param.opts[0] not in COMMON:
            parts.append(f"[{option_tag(param, short=False)}]")
    return " ".join(parts)


def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        out.append((prefix + name, command))
        if isinstance(command, click.Group):
            out += commands(command, prefix + name + " ")
    return out


def slipsctl_page() -> str:
    root = typer.main.get_command(app)
    assert isinstance(root, click.Group)
    lines = header("slipsctl", 8, "control slipsd, the slips network intrusion detection daemon")
    lines += section("SYNOPSIS", f"{bold('slipsctl')} {ital('COMMAND')} [{ital('OPTIONS')}]")
    lines += section("DESCRIPTION") + para(
        "slipsctl is the command-line client of slipsd(8). It talks to the daemon over its "
        "control socket, /run/slips/slipsd.sock by default.",
        "analyze reads a packet capture (pcap, pcapng), a Zeek log file or folder (TSV or "
        "JSON, plain or gzipped), Suricata eve.json, Argus binetflow text, an nfdump file, or "
        "Zeek JSON lines on standard input (-), recognised by content. Captures are read with "
        "zeek -r where Zeek is installed, else with the flowmeter sensor (NFStream). It "
        "waits until the analysis is complete and prints a summary; the alerts are in the "
        "output folder: alerts.log, alerts.json (IDMEF v2) and profiles/<ip>/tw<N>.txt.",
        "When no daemon answers, analyze starts a private slipsd for that one job (in a "
        "temporary runtime directory, with its own embedded Redis) and stops it afterwards; "
        "its output then goes to -o DIR, or to ./slips_output/<run id>/. The other commands "
        "need a running daemon.",
    )
    lines += section("COMMANDS")
    for path, command in commands(root):
        lines += [".TP", synopsis_of(path, command), esc(" ".join((command.help or "").split()))]
        for param in command.params:
            if isinstance(param, click.Argument) and param.name == "path":
                lines += [".RS", ".TP", ital("PATH"), esc(" ".join((getattr(param, "help", "")
                                                                     or "").split())), ".RE"]
            elif isinstance(param, click.Option) and param.opts[0] not in COMMON:
                lines += [".RS", *item(option_tag(param), option_help(param)), ".RE"]
    lines += section("COMMON OPTIONS")
    seen: dict[str, click.Option] = {}
    for _, command in commands(root):
        for param in command.params:
            if isinstance(param, click.Option) and param.opts[0] in COMMON:
                seen.setdefault(param.opts[0], param)
    for name in COMMON:
        if name in seen:
            lines += item(option_tag(seen[name]), option_help(seen[name]) + (
                " (most commands)" if name == "--json" else " (every command)"))
    lines += item(bold("--help"), "show a command's options and exit")
    lines += section("PERMISSIONS") + para(
        "The control socket admits root, the daemon's own user and the members of "
        "[daemon] socket_group (slips in the Debian package), who may use the read-only "
        "commands. analyze, reload, stop and modules enable/disable/restart also need root, "
        "the daemon's user or a member of [daemon] admin_group (slips-admin in the Debian "
        "package, see /etc/slips/slips.d/10-debian.conf).",
    )
    lines += section("EXIT STATUS")
    for code, text in ((0, "success"), (1, "failure"), (2, "usage error"),
                       (3, "no daemon running"), (4, "permission denied")):
        lines += item(bold(str(code)), text)
    lines += section("ENVIRONMENT")
    lines += item(bold("SLIPS_SOCKET"), "the control socket, instead of "
                  "$RUNTIME_DIRECTORY/slipsd.sock or /run/slips/slipsd.sock")
    lines += item(bold("SLIPS_CONFIG"), "the configuration of a private slipsd (as -c)")
    lines += section("FILES")
    lines += item(bold("/run/slips/slipsd.sock"), "the control socket of the system daemon")
    lines += item(bold("/var/lib/slips/output/"), "output folders of the system daemon's runs")
    lines += section("EXAMPLES") + [".nf"] + [esc(x) for x in (
        "slipsctl status",
        "slipsctl analyze capture.pcap -o /tmp/out",
        "zcat conn.log.gz | slipsctl analyze -",
        "slipsctl alerts --follow",
        "slipsctl profiles --alerted",
        "slipsctl modules disable arp --persist",
    )] + [".fi"]
    lines += section(
        "SEE ALSO", "\\fBslipsd\\fR(8), \\fBslips.conf\\fR(5), \\fBzeek\\fR(8), "
        "\\fBnfdump\\fR(1); /usr/share/doc/slips/")
    return "\n".join(lines) + "\n"
