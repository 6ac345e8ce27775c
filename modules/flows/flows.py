"""Connection-level detections from conn.log alone.

UNKNOWN_PORT, MULTIPLE_RECONNECTION_ATTEMPTS, PORT_0_CONNECTION,
PRIVATE_IP_OUTSIDE_LOCALNET, DATA_UPLOAD and CONNECTION_TO_MULTIPLE_PORTS.
All state lives in one ``Window`` per (profile, window), dropped when the
window closes; every evidence is reported at most once per (type, victim, key)
in a window, and at most ``evidence_limit`` times per type in a window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slipsd.events import Flow, TwClosed
from slipsd.module import Module, Option
from slipsd.netinfo import LocalNetworks, is_public, load_ports

from .helpers import (
    ESTABLISHED_STATES,
    MAX_KEYS,
    UNCLEAR_STATES,
    Tally,
    Window,
    is_broadcast_like,
    is_odd_private_target,
    ports_by_proto,
    put,
)

MB = 1_000_000
_PENDING_KEYS = ("ts", "uid", "saddr", "daddr", "sport", "dport", "proto", "service", "state",
                 "tw", "profile")
_FTP_CONTROL = 21


class Flows(Module):
    name = "flows"
    description = ("Unusual connections: unknown ports, reconnections, port 0, private "
                   "addresses outside the LAN, big uploads, many ports of one host")
    channels = ("new_flow",)
    evidence_types = (
        "UNKNOWN_PORT", "MULTIPLE_RECONNECTION_ATTEMPTS", "PORT_0_CONNECTION",
        "PRIVATE_IP_OUTSIDE_LOCALNET", "DATA_UPLOAD", "CONNECTION_TO_MULTIPLE_PORTS",
    )
    options = {
        "ports_file": Option(str, "", "CSV of port,proto,name well-known services; "
                                      "empty: the bundled etc/ports.csv"),
        "scanner_threshold": Option(int, 10, "distinct unanswered (IP, port) destinations in "
                                             "a window that make a source a scanner"),
        "reconnections": Option(int, 5, "rejected connections to one IP and port in a window"),
        "flow_upload_mb": Option(float, 100.0, "MB sent in one flow to a public address"),
        "window_upload_mb": Option(float, 500.0, "MB sent to one public address in a window"),
        "ports": Option(int, 5, "distinct unnamed ports of one host with established TCP"),
        "evidence_limit": Option(int, 5, "most evidence of one type per source and window"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.known = load_ports(config["ports_file"])
        # proto -> known ports: a set lookup per flow instead of a (port, proto) tuple
        self.known_ports = ports_by_proto(self.known)
        self.scanner_threshold = max(1, config["scanner_threshold"])
        self.reconnections = max(1, config["reconnections"])
        self.flow_bytes = int(config["flow_upload_mb"] * MB)
        self.window_bytes = int(config["window_upload_mb"] * MB)
        self.ports = max(1, config["ports"])
        self.limit = config["evidence_limit"]
        self.local = LocalNetworks(self.ctx.home_networks)
        self.windows: dict[tuple[str, int], Window] = {}

    def on_tw_closed(self, event: TwClosed) -> None:
        w = self.windows.pop((event["profile"], event["tw"]), None)
        if w is not None:
            self._flush_pending(w)

    def shutdown(self) -> None:
        # Windows of late records are never closed; their pending reports still count.
        for key in sorted(self.windows):
            self._flush_pending(self.windows.pop(key))

    def on_new_flow(self, flow: Flow) -> None:
        f: Mapping[str, Any] = flow
        saddr = f["saddr"]
        if not saddr:
            return  # no source, no profile: nothing to attribute the evidence to
        # Learn first, so the first flow of a host already counts it as local.
        if saddr not in self.local.sources:
            self.local.learn(saddr)
        key = (f["profile"], f["tw"])
        w = self.windows.get(key)
        if w is None:
            w = self.windows[key] = Window()
        proto = f["proto"]
        if proto == "tcp" or proto == "udp":
            self._transport(w, f, proto)
        daddr = f["daddr"]
        if is_odd_private_target(daddr):
            self._private_outside(w, f)
        sent = f["sbytes"]
        # Zeek derives orig_bytes from sequence numbers, so a broken stream can claim
        # gigabytes; the IP bytes actually seen cap that.
        ip_bytes = f.get("orig_ip_bytes")
        if isinstance(ip_bytes, int) and 0 < ip_bytes < sent:
            sent = ip_bytes
        if sent > 0 and is_public(daddr):
            self._upload(w, f, sent)

    def _transport(self, w: Window, f: Mapping[str, Any], proto: str) -> None:
        """The TCP and UDP detections.

        Established: a handshake completed, or (when Zeek saw no handshake) data flowed.
        Data letters alone do not count for S0/REJ/SH...: a one-way UDP packet is S0 with
        history 'D', an unanswered attempt. Rejected: REJ, or a responder reset before
        any data. Both inline: this runs for nearly every flow."""
        state, history = f["state"], f["history"]
        data = "D" in history or "d" in history
        established = state in ESTABLISHED_STATES or (state in UNCLEAR_STATES and data)
        dport = f["dport"]
        if not established and len(w.unanswered) < self.scanner_threshold \
                and not is_broadcast_like(f["daddr"]):
            w.unanswered.add((f["daddr"], dport))
            if len(w.unanswered) >= self.scanner_threshold:
                w.pending.clear()  # a scanner: its unknown ports are not news
        if f["sport"] == 0 or dport == 0:
            self._port_zero(w, f)
        if proto == "tcp" and established and dport == _FTP_CONTROL \
                and len(w.ftp_servers) < MAX_KEYS:
            w.ftp_servers.add(f["daddr"])
        if state == "REJ" or ("r" in history and not data):
            self._reconnection(w, f)
        if dport != 0 and dport not in self.known_ports.get(proto, ()):
            self._unknown_port(w, f, established)
        if proto == "tcp" and established:
            self._many_ports(w, f)

    def _report(self, w: Window, f: Mapping[str, Any], type_: str, key: str, threat: str,
                confidence: float, description: str, uids: list[str] | None = None) -> None:
        seen = (type_, f["daddr"], key)
        if seen in w.reported or w.per_type.get(type_, 0) >= self.limit:
            return
        w.reported.add(seen)
        w.per_type[type_] = w.per_type.get(type_, 0) + 1
        self.ctx.evidence(
            type_, attacker=f["saddr"], victim=f["daddr"], threat_level=threat,
            confidence=round(confidence, 3), description=description, ts=f["ts"], tw=f["tw"],
            profile=f["profile"], uids=tuple(uids if uids is not None else [f["uid"]]), key=key,
        )

    def _port_zero(self, w: Window, f: Mapping[str, Any]) -> None:
        side = "from source port 0" if f["sport"] == 0 else "to destination port 0"
        self._report(w, f, "PORT_0_CONNECTION", "", "medium", 0.8,
                     f"{f['proto']} connection {side}: {f['saddr']}:{f['sport']} -> "
                     f"{f['daddr']}:{f['dport']} (state {f['state'] or '-'})")

    def _reconnection(self, w: Window, f: Mapping[str, Any]) -> None:
        tally = put(w.rejected, (f["daddr"], f["dport"], f["proto"]), Tally)
        if tally is None:
            return
        tally.add(f["uid"])
        threshold = self.reconnections
        while threshold < tally.count:
            threshold *= 10
        if tally.count != threshold:
            return
        # The first report may be a client retrying a service that is down; ten
        # times as many is not, so it weighs much more.
        first = threshold == self.reconnections
        level, confidence = ("low", 0.5) if first else ("medium", 1.0)
        self._report(w, f, "MULTIPLE_RECONNECTION_ATTEMPTS",
                     f"{f['dport']}/{f['proto']}/{threshold}", level, confidence,
                     f"{f['saddr']} was rejected {tally.count} times connecting to "
                     f"{f['daddr']}:{f['dport']}/{f['proto']} in this window",
                     tally.uids)

    def _unknown_port(self, w: Window, f: Mapping[str, Any], established: bool) -> None:
        proto, sport, dport = f["proto"], f["sport"], f["dport"]
        if is_broadcast_like(f["daddr"]):  # port 0 and known ports: tested by the caller
            return
        if proto == "udp" and sport > 1024 and dport > 1024:
            return  # peer-to-peer and media traffic lives on high UDP ports at both ends
        if (sport, proto) in self.known and dport > 1024:
            return  # a service's reply that Zeek logged from the server side
        if proto == "tcp" and dport > 1024 and f["daddr"] in w.ftp_servers:
            return  # passive FTP data connection
        if len(w.unanswered) >= self.scanner_threshold:
            return  # scanners hit unknown ports by the thousand; scan modules judge them
        if established:
            self._report_unknown(w, f, True)
            return
        # Whether the source is a scanner is only known at the end of the window.
        slot = (f["daddr"], dport, proto)
        if slot not in w.pending and len(w.pending) < MAX_KEYS:
            w.pending[slot] = {k: f[k] for k in _PENDING_KEYS}

    def _flush_pending(self, w: Window) -> None:
        for f in w.pending.values():
            self._report_unknown(w, f, False)
        w.pending.clear()

    def _report_unknown(self, w: Window, f: Mapping[str, Any], established: bool) -> None:
        proto, dport = f["proto"], f["dport"]
        service = f" (Zeek saw {f['service']})" if f["service"] else ""
        what = "established connection" if established else "failed connection attempt"
        self._report(w, f, "UNKNOWN_PORT", f"{dport}/{proto}",
                     "medium" if established else "low", 0.5,
                     f"{what} from {f['saddr']} to {f['daddr']}:{dport}/{proto}, a port of no "
                     f"well-known service{service} (state {f['state'] or '-'})")

    def _many_ports(self, w: Window, f: Mapping[str, Any]) -> None:
        dport, daddr = f["dport"], f["daddr"]
        if dport == 0 or dport in self.known_ports.get("tcp", ()) or daddr in w.ftp_servers:
            return
        ports = put(w.unnamed_ports, daddr, set)
        if ports is None or len(ports) >= self.ports:
            return
        ports.add(dport)
        if len(ports) == self.ports:
            listed = ", ".join(str(p) for p in sorted(ports))
            self._report(w, f, "CONNECTION_TO_MULTIPLE_PORTS", "", "medium", 0.5,
                         f"{f['saddr']} had established TCP connections to {len(ports)} "
                         f"ports of {daddr} with no well-known service: {listed}")

    def _private_outside(self, w: Window, f: Mapping[str, Any]) -> None:
        daddr = f["daddr"]  # an odd private target: tested by the caller
        if self.local.contains(daddr) or not self.local.contains(f["saddr"]):
            return
        # Guessed networks are /24s: a bigger LAN makes its neighbours look "outside".
        guessed = self.local.guessing
        where = "the learnt /24 (/64) networks" if guessed else "home_networks"
        self._report(w, f, "PRIVATE_IP_OUTSIDE_LOCALNET", "", "low", 0.4 if guessed else 0.8,
                     f"local host {f['saddr']} connected to private address {daddr}:"
                     f"{f['dport']}/{f['proto']}, which is outside {where}")

    def _upload(self, w: Window, f: Mapping[str, Any], sent: int) -> None:
        """``sent`` bytes (more than 0) went to a public address."""
        single = sent >= self.flow_bytes
        if single:
            where = f"{f['daddr']}:{f['dport']}/{f['proto']}"
            self._report(w, f, "DATA_UPLOAD", f["uid"], "medium",
                         min(1.0, 0.5 * sent / self.flow_bytes),
                         f"{f['saddr']} sent {sent / MB:.1f} MB to {where} in one connection "
                         f"(threshold {self.flow_bytes / MB:g} MB)")
        uploads = w.uploads
        tally = uploads.get(f["daddr"])
        if tally is None:  # helpers.put, inline: most flows go to a destination seen
            if len(uploads) >= MAX_KEYS:
                return
            tally = uploads[f["daddr"]] = Tally()
        before = tally.total
        tally.add(f["uid"], sent)
        if not before < self.window_bytes <= tally.total or (single and tally.count == 1):
            return  # one flow that big is already reported on its own
        self._report(w, f, "DATA_UPLOAD", "window", "medium",
                     min(1.0, 0.5 * tally.total / self.window_bytes),
                     f"{f['saddr']} sent {tally.total / MB:.1f} MB to {f['daddr']} in "
                     f"{tally.count} connections in this window "
                     f"(threshold {self.window_bytes / MB:g} MB)", tally.uids)
