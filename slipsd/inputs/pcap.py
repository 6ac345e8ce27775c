"""Packet capture input (pcap, pcapng): metered by the flowmeter, then read as Zeek logs.

Recognised by the capture's magic number. Opening the input runs the flowmeter
sensor (slipsd.sensors.flowmeter) over the whole capture into a private temporary
folder of Zeek-format JSON logs (under $TMPDIR), then reads that folder with the
Zeek reader, so events are exactly those of Zeek logs. The folder is removed by
close(). A capture cut short in the middle of a packet is read up to there and
reported as one bad line of the capture itself.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from slipsd.inputs._common import FileStats, InputError, LineError
from slipsd.inputs._zeek_read import Record
from slipsd.inputs.zeek import ZeekInput
from slipsd.sensors._flowmeter_capture import PCAP_MAGICS, PCAPNG_MAGIC, CaptureError

if TYPE_CHECKING:
    from slipsd.sensors.flowmeter import FlowmeterStats

log = logging.getLogger(__name__)

NAME = "pcap"


def sniff(head: bytes, name: str) -> bool:
    """pcap (either byte order, micro- or nanosecond) or pcapng section header magic."""
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


class PcapInput:
    """The Zeek logs the flowmeter wrote for one capture, presented as one input."""

    # What the flowmeter writes (see ingest.input_info): no smtp, files, notice ... logs.
    log_types = frozenset({"conn", "dns", "http", "ssl", "ssh", "dhcp", "arp"})

    def __init__(self, name: str, folder: Path, logs: ZeekInput, stats: FlowmeterStats) -> None:
        self.name = name
        self.stats = stats
        self._logs = logs
        self._folder = folder
        for file_stats in logs.files:
            # Messages name the capture, not the temporary folder that vanishes on close.
            file_stats.name = f"{name}[{Path(file_stats.name).name}]"
        self.files: list[FileStats] = list(logs.files)
        self.ignored: list[str] = list(logs.ignored)
        self._damage: FileStats | None = None
        if stats.damage:
            # The capture itself counts as one line, bad, so that the run reports it.
            self._damage = FileStats(name=name, log_type="pcap", lines=1, bad=1)
            self.files.insert(0, self._damage)
        self._finalizer = weakref.finalize(self, _remove, logs, folder)

    def records(self, on_error: Callable[[LineError], None]) -> Iterator[Record]:
        if self._damage is not None:
            on_error(LineError(self.name, self.stats.packets + 1, self.stats.damage))
        return self._logs.records(on_error)

    def count_lines(self) -> int:
        return self._logs.count_lines() + (1 if self._damage is not None else 0)

    def close(self) -> None:
        """Remove the temporary logs (also done when the input is garbage collected)."""
        self._finalizer()

    def __enter__(self) -> PcapInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remove(logs: ZeekInput, folder: Path) -> None:
    logs.close()
    shutil.rmtree(folder, ignore_errors=True)


def _meter(source: str | int, name: str) -> PcapInput:
    # Imported here: NFStream drags pandas in, which every other input would pay for
    # when the format dispatcher imports this module to sniff.
    from slipsd.sensors.flowmeter import write_zeek_logs

    folder = Path(tempfile.mkdtemp(prefix="slips-pcap-"))
    try:
        stats = write_zeek_logs(source, folder)
        logs = ZeekInput.from_path(str(folder))
    except CaptureError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise InputError(f"{name}: {exc}") from exc
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if stats.damage:
        log.warning("%s: %s", name, stats.damage)
    return PcapInput(name, folder, logs, stats)


class ZeekPcapInput(PcapInput):
    """The logs ``zeek -r`` wrote for one capture: Zeek sees every protocol."""

    log_types = frozenset({"conn", "dns", "http", "ssl", "ssh", "smtp", "dhcp", "arp",
                           "notice", "software", "files", "weird", "tunnel", "x509"})


def _zeek_read(zeek: str, source: str | int, name: str) -> PcapInput:
    from slipsd.sensors.flowmeter import FlowmeterStats
    from slipsd.sensors.zeek import read_argv, scripts_dir

    folder = Path(tempfile.mkdtemp(prefix="slips-pcap-"))
    capture = Path(f"/dev/fd/{source}") if isinstance(source, int) else Path(source)
    argv = read_argv(zeek, capture, scripts_dir())
    try:
        proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True, check=False,
                              pass_fds=(source,) if isinstance(source, int) else ())
        for line in proc.stderr.splitlines():
            log.warning("zeek: %s", line)  # warnings are common and not a failure
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            raise InputError(f"{name}: zeek -r failed: {last[0]}")
        logs = ZeekInput.from_path(str(folder))
    except (OSError, InputError):
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return ZeekPcapInput(name, folder, logs, FlowmeterStats())


def from_fd(fd: int, name: str, zeek: str = "") -> PcapInput:
    """The capture open on ``fd`` (which stays the caller's), through ``zeek -r`` when a
    zeek program is given, else through the flowmeter."""
    return _zeek_read(zeek, fd, name) if zeek else _meter(fd, name)


def from_path(path: str, zeek: str = "") -> PcapInput:
    return _zeek_read(zeek, path, path) if zeek else _meter(path, path)
