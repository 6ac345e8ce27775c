"""The zeek sensor: find Zeek, choose between it and the flowmeter, build its command lines.

Zeek is run as a program of its own, never imported: one supervised ``zeek -i``
per live interface, and ``zeek -r`` for a capture to analyze. Zeek writes its logs
into its working directory, so each process gets a folder of its own as cwd. The
command line (see ``live_spec`` and ``read_argv``) is built from these parts:

``-C``
    ignore bad checksums. NICs that offload checksums hand the capture packets
    whose checksums were never filled in; without -C Zeek drops them all.
``-i INTERFACE`` / ``-r CAPTURE``
    live capture on an interface, or read a pcap/pcapng file to its end.
``-f FILTER``
    a BPF capture filter ([sensors] bpf_filter), only when one is configured.
``LogAscii::use_json=T``
    a script-level redef on the command line: logs are JSON, one object a line,
    as the Zeek reader and the flowmeter expect.
``tcp_inactivity_timeout=<n>sec``
    ([sensors] tcp_inactivity_timeout) how long an idle TCP connection stays open
    before Zeek logs it as ended; live only, as in a capture time is the packets'.
``<scripts>/slips.zeek``
    the project's own Zeek script (etc/zeek/slips.zeek: arp.log).

This module only knows paths and argv; the daemon starts and supervises them.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from slipsd.netinfo import shipped_data
from slipsd.supervision import ProcessSpec, Restart

__all__ = ["SensorError", "choose_sensor", "find_zeek", "live_spec", "read_argv",
           "scripts_dir"]

log = logging.getLogger(__name__)

SENSORS = ("auto", "zeek", "flowmeter")
# Zeek on the way out flushes its logs; the sensor stops before the readers of those
# logs (ingest) so that their last lines are still read.
STOP_ORDER = 5


class SensorError(Exception):
    """The sensor configuration cannot work (missing zeek, unknown sensor)."""


def scripts_dir() -> Path:
    """The folder holding slips.zeek: the checkout's etc/zeek, else the installed copy."""
    return shipped_data("zeek")


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_zeek(configured: str = "",
              fallbacks: Sequence[str] = ("/opt/zeek/bin/zeek",)) -> str | None:
    """The zeek program: [sensors] zeek when set, else PATH, else the first fallback found.

    A configured program that is missing or not executable is an error rather than
    a reason to look elsewhere: the user asked for that one, and silently running
    another zeek (or the flowmeter) would hide the mistake.
    """
    if configured:
        # A bare name ("zeek-6.0") is looked up on PATH, a path is taken as it is.
        found = shutil.which(configured) if os.sep not in configured else (
            configured if _executable(configured) else None)
        if found is not None:
            return found
        if os.sep not in configured:
            raise SensorError(f"[sensors] zeek = {configured}: not found on PATH")
        if os.path.exists(configured):
            raise SensorError(f"[sensors] zeek = {configured}: not an executable file")
        raise SensorError(f"[sensors] zeek = {configured}: no such file")
    on_path = shutil.which("zeek")
    if on_path is not None:
        return on_path
    for candidate in fallbacks:
        if _executable(candidate):
            return candidate
    return None


def choose_sensor(config_value: str, zeek: str | None) -> str:
    """"zeek" or "flowmeter" for [sensors] sensor = auto | zeek | flowmeter."""
    if config_value not in SENSORS:
        raise SensorError(f"[sensors] sensor = {config_value}: expected one of "
                          f"{', '.join(SENSORS)}")
    if config_value == "flowmeter":
        return "flowmeter"
    if zeek is not None:
        return "zeek"
    if config_value == "zeek":
        raise SensorError("[sensors] sensor = zeek, but no zeek program was found (set "
                          "[sensors] zeek, put zeek on PATH, or use sensor = auto to fall "
                          "back to the flowmeter)")
    log.info("zeek not found: the flowmeter sensor is used")
    return "flowmeter"


def _interval(seconds: float) -> str:
    # A Zeek interval constant. Plain decimal digits: Zeek's scanner has no use for
    # Python's exponent notation, and "3600.0" reads worse than "3600".
    if float(seconds).is_integer():
        return f"{int(seconds)}sec"
    return f"{seconds:.6f}".rstrip("0") + "sec"


def live_spec(zeek: str, interface: str, log_dir: Path, *, bpf_filter: str,
              tcp_inactivity_timeout: float, scripts: Path) -> ProcessSpec:
    """One supervised zeek capturing on ``interface``, writing its logs into ``log_dir``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [zeek, "-C", "-i", interface]
    if bpf_filter:
        argv += ["-f", bpf_filter]
    argv += ["LogAscii::use_json=T",
             f"tcp_inactivity_timeout={_interval(tcp_inactivity_timeout)}",
             str(scripts / "slips.zeek")]
    return ProcessSpec(
        name=f"sensor/{interface}",
        argv=argv,
        role="sensor",
        cwd=str(log_dir),  # Zeek writes its logs into its working directory
        # Zeek is chatty on stderr (checksum offloading, dropped packets): those lines
        # are warnings for the journal, not signs that it failed.
        log_output=True,
        # A live sensor is never done: any exit, even 0, is a capture that stopped.
        restart=Restart.ALWAYS,
        stop_order=STOP_ORDER,
    )


def read_argv(zeek: str, capture: Path, scripts: Path) -> list[str]:
    """``zeek -r capture``: the capture's logs are written into the process's cwd."""
    return [zeek, "-C", "-r", str(capture), "LogAscii::use_json=T",
            str(scripts / "slips.zeek")]
