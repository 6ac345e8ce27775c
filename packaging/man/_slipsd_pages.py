"""slipsd(8), checked against slipsd's own --help, and slips.conf(5) from the config schema."""

from __future__ import annotations

import contextlib
import io
import re
import sys

from _roff import bold, esc, header, ital, item, para, section

from slipsd import __main__ as slipsd_main
from slipsd.config import SCHEMA

# --- slipsd(8) ----------------------------------------------------------------------------

SLIPSD_OPTIONS = {
    "-c": (f"{bold('-c')}, {bold('--config')} {ital('FILE')}",
           "The main configuration file. Default: $SLIPS_CONFIG, else slips.conf in "
           "$CONFIGURATION_DIRECTORY (set by systemd), else /etc/slips/slips.conf. "
           "slips.local and slips.d/*.conf beside it are read after it."),
    "--set": (f"{bold('--set')} {ital('SECTION.KEY=VALUE')}",
              "Override one configuration key, over every file (repeatable)."),
    "--check-config": (bold("--check-config"),
                       "Validate the configuration and the enabled modules, print a summary "
                       "and exit: 0 when valid, 1 when not."),
    "--version": (bold("--version"), "Print the version and exit."),
    "-h": (f"{bold('-h')}, {bold('--help')}", "Print a short help and exit."),
}


def slipsd_options() -> set[str]:
    """The options slipsd's own --help lists (short ones stand for their long twin)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        slipsd_main.main(["--help"])
    found: set[str] = set()
    for match in re.finditer(r"^\s+(-[\w-]+)", out.getvalue(), re.MULTILINE):
        found.add(match.group(1))
    return found


def slipsd_page() -> str:
    missing = slipsd_options() ^ set(SLIPSD_OPTIONS)
    if missing:
        sys.exit(f"genman: slipsd options and slipsd(8) differ: {sorted(missing)}")
    lines = header("slipsd", 8, "slips network intrusion detection daemon")
    lines += section(
        "SYNOPSIS", f"{bold('slipsd')} [{bold('-c')} {ital('FILE')}] "
        f"[{bold('--set')} {ital('SECTION.KEY=VALUE')}]... [{bold('--check-config')}]")
    lines += section("DESCRIPTION") + para(
        "slipsd is the slips daemon: a behavioural network intrusion detection system. It "
        "reads packet captures, Zeek logs, Argus, Suricata and nfdump flows, builds a "
        "profile per host cut into time windows, runs detection modules over those profiles "
        "and turns the evidence they report into alerts.",
        "It runs in the foreground and logs to standard error (the journal, under systemd). "
        "It owns an embedded redis-server on a private Unix socket (unless [database] url "
        "names another), the message bus and every worker process: module hosts, readers, "
        "and the live sensors (zeek, or the flowmeter built on NFStream) for the interfaces "
        "of [sensors] interfaces. It is controlled with slipsctl(8) through the control "
        "socket slipsd.sock in its runtime directory.",
        "Under systemd (slipsd.service) it is Type=notify: it sends READY=1 once the socket "
        "is bound and live capture has started, STATUS= lines, WATCHDOG=1 pings and "
        "STOPPING=1. The Debian package runs it as the system user slips.",
    )
    lines += section("OPTIONS")
    for tag, text in SLIPSD_OPTIONS.values():
        lines += item(tag, text)
    lines += section("SIGNALS")
    lines += item(bold("SIGHUP"), "Re-read the configuration, as slipsctl reload: an invalid "
                  "one is rejected and the running one stays.")
    lines += item(f"{bold('SIGTERM')}, {bold('SIGINT')}",
                  "Stop every child within [supervision] stop_timeout, then exit.")
    lines += section("EXIT STATUS")
    lines += item(bold("0"), "stopped on request")
    lines += item(bold("1"), "failed to start or to run")
    lines += item(bold("78"), "invalid configuration (EX_CONFIG; systemd does not restart it)")
    lines += section("ENVIRONMENT")
    for name, text in (
        ("SLIPS_CONFIG", "the main configuration file, when -c is not given"),
        ("CONFIGURATION_DIRECTORY", "set by systemd: slips.conf is read from there"),
        ("RUNTIME_DIRECTORY", "set by systemd: the runtime directory when [daemon] "
                              "runtime_dir is empty (else /run/slips)"),
        ("STATE_DIRECTORY", "set by systemd: the state directory when [daemon] state_dir is "
                            "empty (else /var/lib/slips)"),
        ("NOTIFY_SOCKET", "set by systemd: where the sd_notify messages go"),
    ):
        lines += item(bold(name), text)
    lines += section("FILES")
    for path, text in (
        ("/etc/slips/slips.conf", "the shipped defaults (do not edit)"),
        ("/etc/slips/slips.local", "local changes, read after slips.conf"),
        ("/etc/slips/slips.d/*.conf", "drop-ins, read last, in name order"),
        ("/run/slips/", "the control socket slipsd.sock and the embedded Redis socket"),
        ("/var/lib/slips/", "state; output/<run id>/ holds each run's alerts.log, "
                            "alerts.json and profiles/"),
        ("/usr/share/slips/modules/", "the detection modules shipped with slips "
                                      "([modules] directories = builtin)"),
        ("/usr/share/slips/", "shipped data: well-known ports, Zeek scripts, "
                              "organisations' networks and other lists"),
        ("/lib/systemd/system/slipsd.service", "the systemd unit; local changes belong in a "
                                               "drop-in (systemctl edit slipsd)"),
    ):
        lines += item(bold(path), text)
    lines += section(
        "SEE ALSO", "\\fBslipsctl\\fR(8), \\fBslips.conf\\fR(5), \\fBsystemd.exec\\fR(5), "
        "\\fBredis-server\\fR(1), \\fBzeek\\fR(8); /usr/share/doc/slips/")
    return "\n".join(lines) + "\n"


# --- slips.conf(5) ------------------------------------------------------------------------


def slips_conf_page() -> str:
    lines = header("slips.conf", 5, "configuration of slipsd")
    lines += section("SYNOPSIS", ".nf", "/etc/slips/slips.conf", "/etc/slips/slips.local",
                     "/etc/slips/slips.d/*.conf", ".fi")
    lines += section("DESCRIPTION") + para(
        "slipsd(8) reads an INI file, slips.conf, then slips.local beside it, then every "
        "*.conf file of the folder slips.d beside it in name order; a key in a later file "
        "overrides the same key of an earlier one, and slipsd --set overrides them all. "
        "slips.conf holds the shipped defaults with every key: leave it as it is and put "
        "changes in slips.local or in slips.d.",
        "Every key is checked: an unknown key, a bad value or an unreadable file is reported "
        "with its file, section and key, and the whole configuration is then rejected (at "
        "start, slipsd exits with status 78; on reload the running configuration stays). "
        "slipsd --check-config validates without starting.",
        "Sections other than those below configure detection modules; their keys are "
        "checked against the options each module declares.",
        "Booleans are yes/no, true/false, on/off or 1/0. Lists are separated by commas or "
        "new lines.",
    )
    for name, keys in SCHEMA.items():
        lines += section(f"[{esc(name)}]")
        for key, spec in keys.items():
            default = spec.default if spec.default != "" else "(empty)"
            lines += item(f"{bold(key)} = {ital(default)}", spec.help[:1].upper() + spec.help[1:]
                          + ".")
    lines += section("FILES")
    lines += item(bold("/etc/slips/slips.d/10-debian.conf"), "Debian's drop-in: sets "
                  "[daemon] admin_group = slips-admin")
    lines += item(bold("/etc/slips/whitelist.conf"), "the whitelist, when [whitelist] file is "
                  "empty")
    lines += section("EXAMPLES") + [".nf"] + [esc(x) for x in (
        "# /etc/slips/slips.d/50-live.conf: capture on eth0",
        "[sensors]",
        "interfaces = eth0",
        "",
        "[profiles]",
        "home_networks = 192.168.1.0/24",
    )] + [".fi"]
    lines += section("SEE ALSO", "\\fBslipsd\\fR(8), \\fBslipsctl\\fR(8); "
                     "/usr/share/doc/slips/configuration.md.gz")
    return "\n".join(lines) + "\n"
