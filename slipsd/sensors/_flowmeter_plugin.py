"""The NFStream plugin of the flowmeter: per-packet work NFStream itself does not do.

NFStream calls it, in its meter process, for every packet of every flow (on_update, or
where the NFStream version allows, _flowmeter_fast's cheaper path to ``count`` and
``inspect_payload``, which on_update calls too). It keeps IP
bytes per direction, the Zeek history letters in the order they first happen, the
ICMP type and code, and the application messages slips logs (DNS, DHCP, HTTP, TLS
hellos, SSH banners), all in one picklable ``Track`` per flow that travels back with
the flow. A TCP flow stops being inspected once its protocol is known and its
messages are read, so bulk transfers cost only the counters. What each protocol's
payloads do to the Track is in _flowmeter_handlers.

Nothing here may raise: an exception would kill NFStream's meter process and leave
the streamer waiting for it forever, so every parse is guarded.
"""

from __future__ import annotations

from typing import Any

import nfstream  # type: ignore[import-untyped]

from slipsd.sensors._flowmeter_apps import HTTP_METHODS, HTTP_RESPONSE
from slipsd.sensors._flowmeter_handlers import (
    DHCP,
    DNS,
    HANDLERS,
    HTTP,
    SNIFF,
    TLS,
    client_hello,
    http_request,
)
from slipsd.sensors._flowmeter_track import Track

DNS_PORTS = frozenset({53, 137, 5353, 5355})
DHCP_PORTS = frozenset({67, 68})
_LETTERS = ("SHDFRA", "shdfra")  # Zeek history letters: originator, responder
# Payload bytes enough to tell whether it starts an HTTP message (longest method: "PROPPATCH ").
HEAD_BYTES = 16
_ACTIVE_EXPIRY = 1  # NFlow.expiration_id of a flow ended by the active timeout (0: idle)


def _payload(pkt: Any) -> bytes:
    size = pkt.payload_size
    off = pkt.ip_size - size
    return pkt.ip_packet[off : off + size]  # type: ignore[no-any-return]


def _endpoints(flow: Any) -> tuple[Any, ...]:
    """What NFStream keys a flow by, whichever way its first packet went."""
    ends = sorted(((flow.src_ip, flow.src_port), (flow.dst_ip, flow.dst_port)))
    return (flow.protocol, flow.vlan_id, flow.tunnel_id, *ends)


class ZeekTracker(nfstream.NFPlugin):  # type: ignore[misc]
    """NFPlugin filling ``flow.udps.track``."""

    # (endpoints, originator) of the flow the active timeout just ended. NFStream opens the
    # flow that continues it with the very packet that ended it, so the next on_init of the
    # same meter is that continuation (live capture only: captures have no active timeout).
    _cut: tuple[tuple[Any, ...], tuple[str, int]] | None = None

    def on_init(self, pkt: Any, flow: Any) -> None:
        track = flow.udps.track = Track()
        proto = flow.protocol
        try:
            if self._cut is not None:
                ends, orig = self._cut
                self._cut = None
                if ends == _endpoints(flow):
                    track.orig = orig
            if proto == 6:
                track.tcp = True
                track.app = SNIFF
            elif proto == 17:
                ports = (flow.src_port, flow.dst_port)
                if DNS_PORTS.intersection(ports):
                    track.app = DNS
                elif DHCP_PORTS.issuperset(ports):
                    track.app = DHCP
            elif proto in (1, 58):
                raw = pkt.ip_packet
                off = pkt.ip_size - pkt.transport_size
                track.icmp = (raw[off], raw[off + 1])
        except Exception:  # never let a packet kill the meter process (see above)
            track.errors += 1
        self.on_update(pkt, flow)

    def on_update(self, pkt: Any, flow: Any) -> None:
        track: Track = flow.udps.track
        count(track, pkt)
        app = track.app
        if app and pkt.payload_size:
            if app == HTTP and not track.buf and not http_start(payload_head(pkt)):
                return  # body bytes: _http would do nothing with them
            inspect_payload(track, pkt)

    def on_expire(self, flow: Any) -> None:
        track: Track = flow.udps.track
        if flow.expiration_id == _ACTIVE_EXPIRY:
            try:
                self._cut = (_endpoints(flow), _originator(flow, track))
            except Exception:  # never let a packet kill the meter process (see above)
                track.errors += 1
        if not track.buf:
            return
        try:  # a message head still being gathered when the flow ended: log what came
            if track.app == HTTP:
                http_request(track)
            elif track.app == TLS:
                client_hello(track)
        except Exception:  # never let a packet kill the meter process (see above)
            track.errors += 1


def count(track: Track, pkt: Any) -> None:
    """IP bytes and history letters of one packet: an NFPacket, or NFStream's C packet, which
    has the same fields under the same names (_flowmeter_fast, whose FastFlow.update does the
    same inline for every packet after a flow's first: change both)."""
    direction = pkt.direction
    if direction:
        track.ipb1 += pkt.ip_size
    else:
        track.ipb0 += pkt.ip_size
    if track.tcp:
        # The letters a packet adds depend only on its direction, flags and whether it carries
        # data, and each letter is written once: a second packet of the same kind adds nothing.
        key = 1 << (direction | pkt.syn << 1 | pkt.ack << 2 | pkt.fin << 3 | pkt.rst << 4
                    | (pkt.payload_size > 0) << 5)
        if not track.hkeys & key:
            track.hkeys |= key
            history(track, pkt, direction)


def inspect_payload(track: Track, pkt: Any) -> None:
    """Hand a payload packet (an NFPacket) to the flow's application handler."""
    try:
        HANDLERS[track.app](track, pkt, _payload(pkt))
    except Exception:  # a malformed message must not kill the meter (see above)
        track.errors += 1


def payload_head(pkt: Any) -> bytes:
    """_payload(pkt)[:HEAD_BYTES] without copying the rest of the payload."""
    size = pkt.payload_size
    off = pkt.ip_size - size
    if off < 0:  # a bogus IP length: slices from the end, as _payload's does
        return _payload(pkt)[:HEAD_BYTES]
    return pkt.ip_packet[off : off + min(size, HEAD_BYTES)]  # type: ignore[no-any-return]


def http_start(head: bytes) -> bool:
    """Whether a payload beginning with ``head`` (HEAD_BYTES of it) starts a request or reply."""
    return head.startswith(HTTP_METHODS) or head.startswith(HTTP_RESPONSE)


def _originator(flow: Any, track: Track) -> tuple[str, int]:
    """(address, port) of the side that began the connection, as conn_record decides it."""
    if track.orig is not None:
        return track.orig
    if track.tcp and track.hist.startswith("H"):  # first seen: the SYN-ACK
        return flow.dst_ip, flow.dst_port
    return flow.src_ip, flow.src_port


def history(track: Track, pkt: Any, direction: int) -> None:
    """Add the history letters of a TCP packet of a kind (see count) new to the flow."""
    letters = _LETTERS[direction]
    hist = track.hist
    if pkt.syn:
        letter = letters[1] if pkt.ack else letters[0]
        if letter not in hist:
            hist += letter
    if pkt.payload_size:
        if letters[2] not in hist:
            hist += letters[2]
    elif pkt.ack and not (pkt.syn or pkt.fin or pkt.rst) and letters[5] not in hist:
        hist += letters[5]
    if pkt.fin and letters[3] not in hist:
        hist += letters[3]
    if pkt.rst and letters[4] not in hist:
        hist += letters[4]
    track.hist = hist
