"""The live flowmeter's Zeek logs: each flow's records appended as NFStream hands it over.

``LiveLogs`` is the writing side of ``flowmeter_live.run_live_flowmeter``: it turns a
flow into records (``_flowmeter_conn.flow_records``), holds DHCP messages until their
exchange has gone quiet (an exchange spans several flows, handed over one by one), and
appends each log's lines in one ``write`` to files opened with O_APPEND. The live ingest
follows those files (``slipsd/inputs/follow.py``), so it must never see half a line, and
nothing is buffered in this process.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipsd.sensors._flowmeter_dhcp import DhcpLog

if TYPE_CHECKING:
    from slipsd.sensors._flowmeter_track import Track

# Under the live flowmeter's name, as before this class had a file of its own: what the
# sensor logs keeps one source.
log = logging.getLogger("slipsd.sensors.flowmeter_live")

MAX_OPEN_EXCHANGES = 100_000  # DHCP exchanges waiting; a flood beyond is written at once
# Same form as the pcap flowmeter's logs (see _flowmeter_out).
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class LiveLogs:
    """The Zeek logs of one live sensor folder, appended to flow by flow."""

    def __init__(self, folder: Path, dhcp_quiet: float) -> None:
        # Imports NFStream: only where a flowmeter runs (see flowmeter_live's imports).
        from slipsd.sensors._flowmeter_conn import flow_records

        self._flow_records = flow_records
        self.folder = folder
        self.dhcp_quiet = dhcp_quiet
        self.flows = 0
        self.other_proto_flows = 0  # neither TCP, UDP nor ICMP: conn.log has no place for them
        self.failed_flows = 0
        self.parse_errors = 0
        self.records: dict[str, int] = {}
        self._fds: dict[str, int] = {}
        # (xid, client MAC) -> its messages so far, and when the last one came (monotonic).
        self._dhcp: dict[tuple[int, str], tuple[DhcpLog, float]] = {}
        self._dhcp_looked = 0.0  # when the open exchanges were last looked through
        self._fd("conn")  # a folder that cannot be written to fails now, not at the first flow

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            # O_APPEND: a restarted sensor adds to what the ingest is following (whose
            # position is saved) instead of truncating it.
            fd = self._fds[name] = os.open(self.folder / f"{name}.log",
                                           os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                                           0o644)
        return fd

    def add_flow(self, flow: Any, now: float) -> None:
        """Append the records of one flow NFStream handed over (``now``: time.monotonic())."""
        self.flows += 1
        track: Track = flow.udps.track
        self.parse_errors += track.errors
        try:
            records = self._flow_records(flow, track)
        except Exception:
            # One odd flow must not stop the capture; the traceback says what to fix.
            self.failed_flows += 1
            log.exception("flow %s:%s -> %s:%s not logged", flow.src_ip, flow.src_port,
                          flow.dst_ip, flow.dst_port)
            return
        if not records:
            self.other_proto_flows += 1
        else:
            uid = records[0][1]["uid"]
            for kind, msg in track.msgs:
                if kind == "dhcp":
                    key = (msg["xid"], msg.get("mac", ""))
                    group = self._dhcp.get(key)
                    messages = group[0] if group is not None else DhcpLog()
                    messages.add(uid, msg)
                    self._dhcp[key] = (messages, now)
            self.write(records)
        self.flush_dhcp(now)

    def flush_dhcp(self, now: float | None) -> None:
        """Write the DHCP exchanges quiet since ``dhcp_quiet`` seconds; all when ``now`` is None."""
        if now is not None and len(self._dhcp) < MAX_OPEN_EXCHANGES:
            if now - self._dhcp_looked < 1.0:
                return  # not at every flow: a busy link hands over thousands a second
            self._dhcp_looked = now
            due = [key for key, (_, last) in self._dhcp.items() if now - last >= self.dhcp_quiet]
        else:
            due = list(self._dhcp)
        records = [("dhcp", rec) for key in due for rec in self._dhcp.pop(key)[0].records()]
        if records:
            self.write(records)

    def write(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Append records, each log's lines in one write: a reader sees whole lines only."""
        lines: dict[str, list[str]] = {}
        for kind, rec in records:
            lines.setdefault(kind, []).append(_dumps(rec) + "\n")
        for kind, texts in lines.items():
            data = "".join(texts).encode("utf-8")
            fd = self._fd(kind)
            written = os.write(fd, data)
            while written < len(data):  # only on a full disk or a file size limit
                written += os.write(fd, data[written:])
            self.records[kind] = self.records.get(kind, 0) + len(texts)

    def close(self) -> None:
        """Write the DHCP exchanges still open and close the logs."""
        try:
            self.flush_dhcp(None)
        finally:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
