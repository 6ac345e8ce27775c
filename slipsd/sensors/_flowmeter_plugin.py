"""The NFStream plugin of the flowmeter: per-packet work NFStream itself does not do.

NFStream calls it, in its meter process, for every packet of every flow (on_update, or
where the NFStream version allows, _flowmeter_fast's cheaper path to ``count`` and
``inspect_payload``, which on_update calls too). It keeps IP
bytes per direction, the Zeek history letters in the order they first happen, the
ICMP type and code, and the application messages slips logs (DNS, DHCP, HTTP, TLS
hellos, SSH banners), all in one picklable ``Track`` per flow that travels back with
the flow. A TCP flow stops being inspected once its protocol is known and its
messages are read, so bulk transfers cost only the counters.

Nothing here may raise: an exception would kill NFStream's meter process and leave
the streamer waiting for it forever, so every parse is guarded.
"""

from __future__ import annotations

from typing import Any

import nfstream  # type: ignore[import-untyped]

from slipsd.sensors._flowmeter_apps import (
    HEADERS_END,
    HTTP_METHODS,
    HTTP_RESPONSE,
    MAX_HEADERS,
    parse_client_hello,
    parse_http_request,
    parse_http_response,
    parse_server_hello,
    ssh_banner,
    tls_record_size,
)
from slipsd.sensors._flowmeter_dns import parse_dhcp, parse_dns
from slipsd.sensors._flowmeter_track import Track

DNS_PORTS = frozenset({53, 137, 5353, 5355})
DHCP_PORTS = frozenset({67, 68})
MAX_PENDING = 256  # DNS queries per flow waiting for their answer
SNIFF_PACKETS = 4  # payload packets of a TCP flow looked at to find its protocol
TLS_PACKETS = 12  # payload packets after the ClientHello looked at for the rest
SSH_PACKETS = 6
_LETTERS = ("SHDFRA", "shdfra")  # Zeek history letters: originator, responder
# Payload bytes enough to tell whether it starts an HTTP message (longest method: "PROPPATCH ").
HEAD_BYTES = 16
_ACTIVE_EXPIRY = 1  # NFlow.expiration_id of a flow ended by the active timeout (0: idle)

# Application handlers (ints so that a Track pickles without references to code).
NONE, SNIFF, HTTP, TLS, SSH, DNS, DNS_TCP, DHCP = range(8)


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
                _http_request(track)
            elif track.app == TLS:
                _client_hello(track)
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
        _HANDLERS[track.app](track, pkt, _payload(pkt))
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


def _sniff(track: Track, pkt: Any, data: bytes) -> None:
    if data.startswith(HTTP_METHODS) or data.startswith(HTTP_RESPONSE):
        track.app = HTTP
        _http(track, pkt, data)
    elif data[:1] == b"\x16" and tls_record_size(data) and data[5] == 1:
        track.app = TLS
        track.client = pkt.direction
        track.seen = 0
        _tls(track, pkt, data)
    elif data.startswith(b"SSH-"):
        track.app = SSH
        track.seen = 0
        _ssh(track, pkt, data)
    elif pkt.src_port == 53 or pkt.dst_port == 53:
        track.app = DNS_TCP
        _dns_tcp(track, pkt, data)
    else:
        track.seen += 1
        if track.seen >= SNIFF_PACKETS:
            track.app = NONE


def _http(track: Track, pkt: Any, data: bytes) -> None:
    # NFStream hands over at most ~1.5 kB of an IP packet: a longer (offloaded) segment
    # is cut, and what follows it in the stream never comes, so a cut head is complete.
    cut = len(data) < pkt.payload_size
    if track.buf and pkt.direction == track.client:
        track.buf += data
        if cut or HEADERS_END in track.buf or len(track.buf) >= MAX_HEADERS:
            _http_request(track)
        return
    if track.buf:
        _http_request(track)  # a head that never ended: log what was seen
    if data.startswith(HTTP_METHODS):
        track.client = pkt.direction
        track.buf = data
        track.buf_ts = pkt.time
        if cut or HEADERS_END in data or len(data) >= MAX_HEADERS:
            _http_request(track)
    elif data.startswith(HTTP_RESPONSE):
        reply = parse_http_response(data)
        if 100 <= reply["status_code"] < 200:
            return  # "100 Continue" and the like precede the real reply
        if track.answered < len(track.msgs):  # replies come in the order of the requests
            rec = track.msgs[track.answered][1]
            rec["status_code"] = reply["status_code"]
            rec["status_msg"] = reply["status_msg"]
            track.answered += 1


def _http_request(track: Track) -> None:
    data, track.buf = track.buf, b""
    rec = parse_http_request(data)
    rec["ts"] = track.buf_ts
    rec["trans_depth"] = len(track.msgs) + 1  # an HTTP flow holds only HTTP messages
    track.add("http", rec)


def _tls(track: Track, pkt: Any, data: bytes) -> None:
    # _flowmeter_fast._tls_after_hello repeats what this does after the hello: change both.
    track.seen += 1
    if track.seen > TLS_PACKETS:
        track.app = NONE
        return
    if pkt.direction == track.client and not track.msgs:
        track.buf += data  # the ClientHello may span several segments
        if not track.buf_ts:
            track.buf_ts = pkt.time
        cut = len(data) < pkt.payload_size  # see _http
        if not cut and len(track.buf) < min(tls_record_size(track.buf), MAX_HEADERS):
            return
        _client_hello(track)
        return
    if not track.msgs:
        return
    rec = track.msgs[0][1]
    if pkt.direction != track.client and "version" not in rec and data[0] == 0x16:
        rec.update(parse_server_hello(data))
    elif pkt.direction == track.client and "version" in rec and data[0] in (0x14, 0x17):
        rec["established"] = True  # the client's Finished or its first application data
        track.app = NONE


def _client_hello(track: Track) -> None:
    data, track.buf = track.buf, b""
    hello = parse_client_hello(data)
    hello["ts"] = track.buf_ts
    hello["established"] = False
    track.add("ssl", hello)


def _ssh(track: Track, pkt: Any, data: bytes) -> None:
    track.seen += 1
    if not track.msgs:
        track.add("ssh", {"ts": pkt.time})
    rec = track.msgs[0][1]
    side = f"dir{pkt.direction}"
    if side not in rec and data.startswith(b"SSH-"):
        rec[side] = ssh_banner(data)
    if ("dir0" in rec and "dir1" in rec) or track.seen >= SSH_PACKETS:
        track.app = NONE


def _dns(track: Track, pkt: Any, data: bytes) -> None:
    msg = parse_dns(data)
    msg["ts"] = pkt.time
    if not msg.pop("qr"):
        del msg["rcode"]  # a query has no answer code; its answer, if seen, brings one
        if len(track.pending) >= MAX_PENDING:
            track.pending.clear()  # already logged; they just will not get their answers
        msg["dir"] = pkt.direction
        track.pending[msg["trans_id"]] = msg
        track.add("dns", msg)
        return
    query = track.pending.get(msg["trans_id"])
    if query is None or query["dir"] == pkt.direction:
        # An answer whose query was not seen, or one that went the query's way
        # (mDNS hosts announce to the group they asked): logged on its own.
        track.add("dns", msg)
        return
    del track.pending[msg["trans_id"]]
    query["rtt"] = (pkt.time - query["ts"]) / 1000
    for key in ("AA", "TC", "RD", "RA", "Z", "rcode", "answers", "TTLs"):
        query[key] = msg[key]


def _dns_tcp(track: Track, pkt: Any, data: bytes) -> None:
    # Only messages whole in one segment; DNS over TCP is rare and mostly zone transfers.
    size = int.from_bytes(data[:2], "big")
    if size and len(data) >= size + 2:
        _dns(track, pkt, data[2 : 2 + size])


def _dhcp(track: Track, pkt: Any, data: bytes) -> None:
    info = parse_dhcp(data)
    info["ts"] = pkt.time
    info["src"] = pkt.src_ip
    info["dst"] = pkt.dst_ip
    track.add("dhcp", info)


_HANDLERS = {SNIFF: _sniff, HTTP: _http, TLS: _tls, SSH: _ssh, DNS: _dns, DNS_TCP: _dns_tcp,
             DHCP: _dhcp}
