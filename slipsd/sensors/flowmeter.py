"""The flowmeter sensor: a capture in, Zeek-format JSON logs out, for hosts without Zeek.

``write_zeek_logs(capture, folder)`` meters the capture with NFStream (bidirectional
flows, nDPI application detection) plus a plugin of ours (history letters, IP bytes,
ICMP types, DNS/DHCP/HTTP/TLS/SSH messages, see _flowmeter_plugin), and reads ARP
with dpkt; it writes conn.log, dns.log, http.log, ssl.log, ssh.log, dhcp.log and
arp.log as Zeek would name and fill them, one JSON object a line, each sorted by
time. The same capture always gives the same bytes. docs/architecture.md
("Sensor: flowmeter") lists what it sees and what only Zeek sees.

NFStream opens captures by path. A capture given as a file descriptor is read
through ``/proc/self/fd/N`` (Linux; NFStream's meter processes are forked, so they
inherit the descriptor); when that cannot be opened it is copied to a temporary
file in the output folder first.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import nfstream  # type: ignore[import-untyped]

from slipsd.sensors._flowmeter_capture import BackgroundScan, CaptureError
from slipsd.sensors._flowmeter_conn import flow_records, make_uid
from slipsd.sensors._flowmeter_dhcp import DhcpLog
from slipsd.sensors._flowmeter_fast import fast_meters
from slipsd.sensors._flowmeter_out import SortedLog
from slipsd.sensors._flowmeter_plugin import ZeekTracker
from slipsd.sensors._flowmeter_track import Track

__all__ = ["CaptureError", "FlowmeterStats", "write_zeek_logs"]

log = logging.getLogger(__name__)

LOGS = ("conn", "dns", "http", "ssl", "ssh", "dhcp", "arp")
# Zeek ends idle TCP connections after 5 min (UDP and ICMP after 1): NFStream has one
# idle timeout, and cutting long quiet TCP sessions would hurt more than merging UDP.
IDLE_TIMEOUT = 300
ACTIVE_TIMEOUT = 10**9  # Zeek never cuts a connection for lasting long
# NFStreamer settings of every flowmeter, from a capture or live: tunnels decoded (flows of
# the inner addresses, as Zeek logs them), payload byte counts (accounting mode 3) as in
# Zeek's orig_bytes/resp_bytes, nDPI on the first 20 packets, no statistics (unused).
STREAMER_OPTIONS: dict[str, Any] = {"decode_tunnels": True, "accounting_mode": 3,
                                    "n_dissections": 20, "statistical_analysis": False}
# Meters hand ZeekTracker NFStream's C packets (_flowmeter_fast) where the NFStream version
# allows; False: NFStream's plugin path throughout (the same logs, slower; tests compare them).
FAST_METERS = True
_PR_SET_PDEATHSIG = 1
_metering = False  # true while NFStream may fork meter processes from this process


@dataclass
class FlowmeterStats:
    """What one capture gave."""

    capture_bytes: int = 0
    packets: int = 0
    flows: int = 0  # NFStream flows, including those of protocols conn.log has no place for
    other_proto_flows: int = 0  # neither TCP, UDP nor ICMP (IGMP, GRE, ...): not logged
    records: dict[str, int] = field(default_factory=dict)  # log -> records written
    parse_errors: int = 0  # application messages that could not be parsed
    damage: str = ""  # why the capture could not be read to its end, "" when it could
    seconds: float = 0.0


def _die_with_parent() -> None:
    # NFStream's meters are forked from here; should this process be killed they
    # must not run on and block forever on a queue nobody reads.
    if _metering:
        with contextlib.suppress(Exception):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


os.register_at_fork(after_in_child=_die_with_parent)


@contextlib.contextmanager
def _metering_run() -> Iterator[None]:
    """Fork guard on; CPU affinity restored afterwards (NFStream pins its caller to CPUs 0-1)."""
    global _metering
    affinity = os.sched_getaffinity(0)
    before = set(multiprocessing.active_children())
    _metering = True
    try:
        yield
    except BaseException:
        for child in multiprocessing.active_children():
            if child not in before:  # meters of the interrupted run only
                child.terminate()
        raise
    finally:
        _metering = False
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, affinity)


@contextlib.contextmanager
def _capture_path(capture: str | int, out_dir: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """A path NFStream can open and a file object of our own, both for ``capture``."""
    if isinstance(capture, str):
        with open(capture, "rb") as handle:
            yield capture, handle
        return
    handle = os.fdopen(os.dup(capture), "rb")
    copy: Path | None = None
    try:
        path = f"/proc/self/fd/{handle.fileno()}"
        try:
            os.close(os.open(path, os.O_RDONLY))
        except OSError:
            # No /proc, or the file is not ours to reopen (we only hold the caller's fd).
            copy = out_dir / ".capture"
            handle.seek(0)
            with open(copy, "wb") as out:
                shutil.copyfileobj(handle, out, 1 << 20)
            path = str(copy)
        yield path, handle
    finally:
        handle.close()
        if copy is not None:
            copy.unlink(missing_ok=True)


def write_zeek_logs(capture: str | int, out_dir: Path) -> FlowmeterStats:
    """Meter ``capture`` (a path, or a file descriptor the caller keeps) into ``out_dir``.

    Raises CaptureError when the file is not a readable pcap/pcapng capture.
    A capture that ends inside a packet is read up to there (``stats.damage``).
    """
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = FlowmeterStats()
    logs = {name: SortedLog(out_dir / f"{name}.log") for name in LOGS}
    dhcp = DhcpLog()
    try:
        with _capture_path(capture, out_dir) as (path, handle):
            stats.capture_bytes = os.fstat(handle.fileno()).st_size
            _meter(path, handle, logs, dhcp, stats)
        for rec in dhcp.records():
            logs["dhcp"].add(rec)
        for name, sorted_log in logs.items():
            if sorted_log.count or name == "conn":  # conn.log always: the folder is a Zeek one
                sorted_log.close()
                stats.records[name] = sorted_log.count
            else:
                sorted_log.discard()
    except BaseException:
        for sorted_log in logs.values():
            sorted_log.discard()
        raise
    stats.seconds = time.monotonic() - started
    log.info("flowmeter: %d packets, %d flows (%d neither TCP, UDP nor ICMP), records %s, "
             "%d unparsable messages, %.2f s%s", stats.packets, stats.flows,
             stats.other_proto_flows, stats.records, stats.parse_errors, stats.seconds,
             f"; {stats.damage}" if stats.damage else "")
    return stats


def _meter(path: str, handle: IO[bytes], logs: dict[str, SortedLog], dhcp: DhcpLog,
           stats: FlowmeterStats) -> None:
    arp_log = logs["arp"]

    def on_arp(rec: dict[str, Any]) -> None:
        arp_log.add({"ts": rec["ts"], "uid": make_uid("A", rec["ts"], arp_log.count), **rec})

    # A file that is no capture at all fails here with a clear reason before any meter
    # process is started; the rest of the pass runs while NFStream meters (a core of its own).
    scan = BackgroundScan(handle, on_arp)
    try:
        try:
            streamer = nfstream.NFStreamer(
                source=path, idle_timeout=IDLE_TIMEOUT, active_timeout=ACTIVE_TIMEOUT,
                udps=[ZeekTracker()], **STREAMER_OPTIONS)
        except ValueError as exc:
            raise CaptureError(str(exc)) from exc
        with _metering_run(), fast_meters(FAST_METERS):
            flows = iter(streamer)
            while (flow := _next_flow(flows)) is not None:
                _add_flow(flow, logs, dhcp, stats)
    except BaseException:
        scan.cancel()  # the logs are discarded next: the scan must no longer add to them
        raise
    scanned = scan.result()
    stats.packets = scanned.packets
    stats.damage = scanned.damage


def _next_flow(flows: Iterator[Any]) -> Any:
    try:
        return next(flows, None)
    except ValueError as exc:  # NFStream's way of saying libpcap could not read the file
        raise CaptureError(str(exc)) from exc


def _add_flow(flow: Any, logs: dict[str, SortedLog], dhcp: DhcpLog,
              stats: FlowmeterStats) -> None:
    stats.flows += 1
    track: Track = flow.udps.track
    stats.parse_errors += track.errors
    records = flow_records(flow, track)
    if not records:
        stats.other_proto_flows += 1
        return
    for kind, rec in records:
        logs[kind].add(rec)
    uid = records[0][1]["uid"]
    for kind, msg in track.msgs:
        if kind == "dhcp":
            dhcp.add(uid, msg)
