"""The live flowmeter: NFStream capturing on an interface, Zeek JSON logs appended as flows end.

Where Zeek is not installed (or ``[sensors] sensor = flowmeter``), each live interface
gets one supervised child, ``python -m slipsd.child flowmeter SPEC`` (see
``live_flowmeter_spec``), working in the interface's sensor folder like a live Zeek.
``run_live_flowmeter`` meters the interface with NFStream and the same plugin and
record conversion as the pcap flowmeter (``_flowmeter_plugin``, ``_flowmeter_conn``),
and appends each flow's records to conn.log, dns.log, http.log, ssl.log, ssh.log and
dhcp.log as soon as NFStream hands the flow over (``LiveLogs``, _flowmeter_live_logs).
The live ingest follows those files (``slipsd/inputs/follow.py``), so every line is
written whole, in one ``write``, and nothing is buffered in this process.

Timeouts. A flow is handed over once it has been idle for the idle timeout
(``SLIPS_FLOWMETER_IDLE_TIMEOUT`` in the environment, whole seconds, default 30; the
pcap flowmeter uses 300 s, but live detections would then lag five minutes), or
once it has lasted the active timeout (300 s): a long connection is therefore
reported while it lasts, as several flows of at most 5 minutes each. The later parts
keep the side that began the connection as originator (the plugin remembers it
across the cut), but have their own uid and, having seen no handshake, TCP state OTH.

Stopping. SIGTERM ends NFStream's iteration the way Ctrl-C does (its meters are
terminated and joined), never in the middle of writing a flow; flows still open in
the meters then are not logged. An interface that disappears (or is re-created) is
noticed within WATCH_SECONDS and the sensor exits, so that the supervisor restarts
it on the interface of that name, or gives up when there is none.

Not seen live: ARP (NFStream meters IP only; the pcap flowmeter reads ARP from the
capture file, which a live capture does not have), so arp.log is not written.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from slipsd.config import ConfigError
from slipsd.sensors._flowmeter_live_logs import LiveLogs
from slipsd.sensors.zeek import STOP_ORDER
from slipsd.supervision import ProcessSpec, Restart

# NFStream (and the plugin and conversion modules that import it, pandas along) are
# imported where a flowmeter runs: the daemon imports this module for
# live_flowmeter_spec only and stays without them.

__all__ = ["IDLE_TIMEOUT_ENV", "LiveLogs", "idle_timeout", "live_flowmeter_spec",
           "run_live_flowmeter"]

log = logging.getLogger(__name__)

IDLE_TIMEOUT_ENV = "SLIPS_FLOWMETER_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = 30
ACTIVE_TIMEOUT = 300
# NFStream's live default is a meter process per CPU but one; each holds its own flow
# cache and nDPI, per interface, which on a large host would be dozens of processes.
MAX_METERS = 4
# A DHCP exchange spans flows (the client's broadcasts, the server's replies) that NFStream
# hands over one by one, each an idle timeout after its last packet: an exchange is
# written once no message of it has come for the idle timeout plus this margin.
DHCP_MARGIN = 5.0
EX_NOINPUT = 66  # sysexits: the interface cannot be captured on (restarts may help)
WATCH_SECONDS = 5.0  # how often the interface is checked to be still there
_PR_SET_PDEATHSIG = 1


def live_flowmeter_spec(interface: str, log_dir: Path, *, bpf_filter: str) -> ProcessSpec:
    """One supervised live flowmeter capturing on ``interface``, writing into ``log_dir``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    spec = {"interface": interface, "log_dir": str(log_dir), "bpf_filter": bpf_filter}
    return ProcessSpec(
        name=f"sensor/{interface}",
        argv=[sys.executable, "-m", "slipsd.child", "flowmeter", json.dumps(spec)],
        role="sensor",
        cwd=str(log_dir),  # like a live Zeek: the sensor's folder is its working directory
        # A live sensor is never done: any exit, even 0, is a capture that stopped.
        restart=Restart.ALWAYS,
        # Before the ingest, so that the lines written last are still read.
        stop_order=STOP_ORDER,
    )


def idle_timeout(env: Mapping[str, str]) -> int:
    """Seconds a flow may be idle before it is logged: $SLIPS_FLOWMETER_IDLE_TIMEOUT or 30."""
    raw = env.get(IDLE_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_IDLE_TIMEOUT
    try:
        value = int(raw)  # NFStream takes whole seconds only
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError([f"{IDLE_TIMEOUT_ENV}={raw}: expected a whole number of seconds >= 1"])
    return value


class _Stopper:
    """SIGTERM/SIGINT stop the capture the way NFStream stops on Ctrl-C, never mid-write.

    NFStream's iteration ends cleanly (its meters terminated and joined) when a
    KeyboardInterrupt reaches it while it waits for a flow. The handler raises one
    while the capture is ``armed``, except during ``writing()``, which raises it on
    its way out instead so that no flow is half written. SIGUSR1 is the interface
    watcher's (``_watch``) way of stopping it: the interface is gone.
    """

    def __init__(self) -> None:
        self.requested = False
        self.lost = False  # stopped because the interface went away
        self.armed = False
        self._writing = False

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:
            self.lost = True
        elif not self.requested:
            log.info("%s: stopping the capture", signal.Signals(signum).name)
        self.requested = True
        if self.armed and not self._writing:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        self._writing = True
        try:
            yield
        finally:
            self._writing = False
        if self.requested and self.armed:
            raise KeyboardInterrupt


def _in_meter() -> None:
    # Runs in each meter process NFStream forks from here. Our SIGTERM handler would
    # turn NFStream's terminate() of its meters into a traceback: they get the default
    # action back. And should this process be killed, they must not run on.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _watch(interface: str, done: threading.Event) -> None:
    """Stop the capture (SIGUSR1 to this process) once ``interface`` is gone or re-created.

    libpcap keeps a capture on a deleted interface open and silent: NFStream would wait
    for packets forever while status says "running". Exiting instead lets the
    supervisor restart the sensor, which captures on the new interface of that name,
    or goes fatal if there is none.
    """
    try:
        index = socket.if_nametoindex(interface)
    except OSError:
        return  # a pcap pseudo-device ("any", "nflog"...): no index to watch
    while not done.wait(WATCH_SECONDS):
        try:
            now = socket.if_nametoindex(interface)
        except OSError:
            now = 0
        if now != index:
            log.error("%s is %s: stopping its capture", interface,
                      "gone" if not now else "a new interface now")
            os.kill(os.getpid(), signal.SIGUSR1)
            return


def _meters() -> int:
    return max(1, min(MAX_METERS, len(os.sched_getaffinity(0)) - 1))


def _stop_streamer(flows: Any) -> None:
    """Hand a KeyboardInterrupt that came between two flows to NFStream's iteration, which
    terminates its meters on it (suspended at its yield, it is inside its handler's reach)."""
    with contextlib.suppress(StopIteration, KeyboardInterrupt, ValueError):
        flows.throw(KeyboardInterrupt())


def run_live_flowmeter(spec: dict[str, Any]) -> int:
    """Capture on ``spec["interface"]`` until SIGTERM, appending Zeek logs to ``spec["log_dir"]``.

    Returns 0 when stopped, EX_NOINPUT when the interface cannot be captured on or went
    away, 1 when the capture ended by itself; raises ConfigError for a bad idle timeout.
    """
    import nfstream  # type: ignore[import-untyped]  # see the imports at the top

    from slipsd.sensors import flowmeter
    from slipsd.sensors._flowmeter_fast import fast_meters
    from slipsd.sensors._flowmeter_plugin import ZeekTracker

    interface = str(spec["interface"])
    log_dir = Path(spec["log_dir"])
    bpf_filter = str(spec.get("bpf_filter") or "") or None  # NFStream: None is no filter
    idle = idle_timeout(os.environ)
    stopper = _Stopper()
    stopper.install()
    os.register_at_fork(after_in_child=_in_meter)
    log_dir.mkdir(parents=True, exist_ok=True)
    meters = _meters()
    try:
        streamer = nfstream.NFStreamer(
            source=interface, bpf_filter=bpf_filter, idle_timeout=idle,
            active_timeout=ACTIVE_TIMEOUT, n_meters=meters, udps=[ZeekTracker()],
            **flowmeter.STREAMER_OPTIONS)
    except ValueError as exc:  # NFStream found neither such an interface nor such a file
        log.error("cannot capture on %s: no such network interface (NFStream: %s)", interface,
                  exc)
        return EX_NOINPUT
    logs = LiveLogs(log_dir, dhcp_quiet=idle + DHCP_MARGIN)
    log.info("capturing on %s%s into %s: idle timeout %d s, active timeout %d s, %d meter(s)",
             interface, f" (filter {bpf_filter})" if bpf_filter else "", log_dir, idle,
             ACTIVE_TIMEOUT, meters)
    started = time.monotonic()
    flows = iter(streamer)
    done = threading.Event()
    # A daemon thread: it neither holds locks the forked meters could inherit taken (it
    # sleeps in done.wait) nor keeps this process alive.
    threading.Thread(target=_watch, args=(interface, done), name="watch", daemon=True).start()
    # The meters are forked at the first next(flows): inside, they meter with FastFlows.
    with fast_meters(flowmeter.FAST_METERS):
        try:
            stopper.armed = True
            try:
                # A signal that came before arming was only noted: the meters must not start.
                while not stopper.requested and (flow := next(flows, None)) is not None:
                    with stopper.writing():
                        logs.add_flow(flow, time.monotonic())
            except KeyboardInterrupt:
                _stop_streamer(flows)
        except ValueError as exc:  # a meter could not open the capture (permissions, filter...)
            log.error("cannot capture on %s: %s", interface, exc)
            return EX_NOINPUT
        finally:
            done.set()
            stopper.armed = False
            logs.close()
            log.info("%s: %d flows in %.0f s (%d neither TCP, UDP nor ICMP, %d not logged), "
                     "records %s, %d unparsable messages", interface, logs.flows,
                     time.monotonic() - started, logs.other_proto_flows, logs.failed_flows,
                     logs.records, logs.parse_errors)
    if stopper.lost:
        return EX_NOINPUT
    if stopper.requested:
        return 0
    log.error("the capture on %s ended by itself (interface gone?)", interface)
    return 1
