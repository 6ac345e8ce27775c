"""The flowmeter's application handlers: what a payload packet of a flow does to its Track.

``_flowmeter_plugin.inspect_payload`` calls the handler of the flow's ``track.app`` with
the packet and its payload. SNIFF looks at a TCP flow's first payloads to find its
protocol and hands over to that protocol's handler; each handler gathers its messages
(DNS queries and answers, DHCP, HTTP request heads and reply codes, TLS hellos, SSH
banners) in the track and sets ``track.app`` to NONE once nothing more is to be learnt,
so that the rest of the flow costs only the counters. The parsing itself is in
_flowmeter_apps and _flowmeter_dns; they run in NFStream's meter process, where the
plugin's guard catches what they raise.
"""

from __future__ import annotations

from typing import Any

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

MAX_PENDING = 256  # DNS queries per flow waiting for their answer
SNIFF_PACKETS = 4  # payload packets of a TCP flow looked at to find its protocol
TLS_PACKETS = 12  # payload packets after the ClientHello looked at for the rest
SSH_PACKETS = 6

# Application handlers (ints so that a Track pickles without references to code).
NONE, SNIFF, HTTP, TLS, SSH, DNS, DNS_TCP, DHCP = range(8)


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
            http_request(track)
        return
    if track.buf:
        http_request(track)  # a head that never ended: log what was seen
    if data.startswith(HTTP_METHODS):
        track.client = pkt.direction
        track.buf = data
        track.buf_ts = pkt.time
        if cut or HEADERS_END in data or len(data) >= MAX_HEADERS:
            http_request(track)
    elif data.startswith(HTTP_RESPONSE):
        reply = parse_http_response(data)
        if 100 <= reply["status_code"] < 200:
            return  # "100 Continue" and the like precede the real reply
        if track.answered < len(track.msgs):  # replies come in the order of the requests
            rec = track.msgs[track.answered][1]
            rec["status_code"] = reply["status_code"]
            rec["status_msg"] = reply["status_msg"]
            track.answered += 1


def http_request(track: Track) -> None:
    """Log the request head gathered in ``track.buf``, whole or as far as it came."""
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
        client_hello(track)
        return
    if not track.msgs:
        return
    rec = track.msgs[0][1]
    if pkt.direction != track.client and "version" not in rec and data[0] == 0x16:
        rec.update(parse_server_hello(data))
    elif pkt.direction == track.client and "version" in rec and data[0] in (0x14, 0x17):
        rec["established"] = True  # the client's Finished or its first application data
        track.app = NONE


def client_hello(track: Track) -> None:
    """Log the ClientHello gathered in ``track.buf``, whole or as far as it came."""
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


# track.app -> its handler, which _flowmeter_plugin.inspect_payload calls with the payload.
HANDLERS = {SNIFF: _sniff, HTTP: _http, TLS: _tls, SSH: _ssh, DNS: _dns, DNS_TCP: _dns_tcp,
             DHCP: _dhcp}
