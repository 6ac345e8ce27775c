"""The flowmeter's per-packet path through NFStream without NFStream's per-packet plugin toll.

With any plugin, NFStream's meter turns every packet into a 28-field NFPacket (copying
the IP packet into bytes) and copies the flow's counters out of C before calling the
plugin. Measured on bench/flowmeter.py's capture, that alone cost 0.9 CPU s, more than
half of NFStream's own time, while ZeekTracker reads six fields of most packets and the
payload of a few. ``fast_meters()`` has the meters NFStream forks create ``FastFlow``s
instead of NFlows: the same flow, whose update hands ZeekTracker NFStream's C packet
(same field names) and builds the NFPacket only for packets an application handler
reads (not for a flow's first packet without payload, nor for TLS packets whose first
byte says all _tls needs), and skips the per-packet copy of the flow's fields out of C:
NFlow.expire copies them all at the end, as it does for NFStream without plugins, so what
the flow carries out is unchanged. The fields count() needs are read from the C packet in one
unpack (_flowmeter_cpacket), and an ended FastFlow crosses to the streamer's process as an
EndedFlow, the fields the logs are made of (_flowmeter_ended).

This leans on NFStream internals (meter.consume creating flows as ``meter.NFlow``,
NFlow.__init__'s and NFlow.update's arguments, the C packet's fields), so it is used only
with the NFStream versions it was checked against, and only while a flowmeter meters: any
other version gets the plain plugin path, which writes the same logs
(tests/test_flowmeter.py compares the two).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import nfstream  # type: ignore[import-untyped]
from nfstream import engine as nf_engine
from nfstream import flow as nf_flow
from nfstream import meter as nf_meter

from slipsd.sensors._flowmeter_apps import TLS_HANDSHAKE
from slipsd.sensors._flowmeter_cpacket import packet_reader
from slipsd.sensors._flowmeter_ended import ended_reduction
from slipsd.sensors._flowmeter_handlers import HTTP, NONE, TLS, TLS_PACKETS
from slipsd.sensors._flowmeter_plugin import (
    HEAD_BYTES,
    ZeekTracker,
    history,
    http_start,
    inspect_payload,
    payload_head,
)
from slipsd.sensors._flowmeter_track import Track

CHECKED_VERSIONS = ("6.5.", "6.6.")
_UPDATE_ARGS = ("self", "packet", "idle_timeout", "active_timeout", "ffi", "lib", "udps", "sync",
                "accounting_mode", "n_dissections", "statistics", "splt", "dissector")
_INIT_ARGS = ("self", "packet", "ffi", "lib", "udps", "sync", "accounting_mode", "n_dissections",
              "statistics", "splt", "dissector", "decode_tunnels", "system_visibility_mode")
_ICMP = (1, 58)
_TLS_CCS_OR_DATA = (0x14, 0x17)  # ChangeCipherSpec, application data: see _tls
_pythonize = nf_flow.pythonize_packet
# The C packet's fields count() reads, in one unpack (None: not this NFStream's layout, which
# supported() refuses).
_READER = packet_reader(nf_engine.create_engine()[0])
if _READER is not None:
    _read, _READ_SIZE, _KINDS = _READER.unpack, _READER.size, _READER.kinds


class FastFlow(nf_flow.NFlow):  # type: ignore[misc]
    """An NFlow whose per-packet update skips the NFPacket unless a plugin needs one."""

    __slots__ = ()

    def __init__(self, packet: Any, ffi: Any, lib: Any, udps: Any, sync: bool,
                 accounting_mode: int, n_dissections: int, statistics: bool, splt: int,
                 dissector: Any, decode_tunnels: bool, system_visibility_mode: int) -> None:
        rest = (accounting_mode, n_dissections, statistics, splt, dissector, decode_tunnels,
                system_visibility_mode)
        if udps is not _checked[0] and not _check(udps, statistics, splt):
            super().__init__(packet, ffi, lib, udps, sync, *rest)
            return
        # No plugins for NFlow's own on_init call (it builds an NFPacket for it): ZeekTracker's
        # on_init reads a first packet without payload only as count() does, so the C packet
        # does for it (ICMP excepted: its type and code are read from the packet's bytes).
        super().__init__(packet, ffi, lib, (), sync, *rest)
        first = packet
        if packet.payload_size or packet.protocol in _ICMP:
            first = _pythonize(packet, ffi, self)
        udps[0].on_init(first, self)

    def update(self, packet: Any, idle_timeout: int, active_timeout: int, ffi: Any, lib: Any,
               udps: Any, sync: bool, accounting_mode: int, n_dissections: int, statistics: bool,
               splt: int, dissector: Any) -> Any:
        if udps is not _checked[0] and not _check(udps, statistics, splt):
            # not a flowmeter's streamer: NFStream's own way
            return super().update(packet, idle_timeout, active_timeout, ffi, lib, udps, sync,
                                  accounting_mode, n_dissections, statistics, splt, dissector)
        ret = lib.meter_update_flow(self._C, packet, idle_timeout, active_timeout,
                                    accounting_mode, statistics, splt, n_dissections, dissector,
                                    sync)
        if ret > 0:  # idle or active timeout: ends here, as in NFlow.update
            self.expiration_id = ret - 1  # type: ignore[misc]  # an NFlow slot (untyped base)
            return self.expire(udps, sync, n_dissections, statistics, splt, ffi, lib, dissector)
        # No self.sync() here: it copies counters and nDPI's findings out of C, and expire()
        # copies them all again (NFStream's meter_expire_flow marks detection done to force
        # that copy: it is how NFStream without plugins gets them), so only the last copy counts.
        # Then ZeekTracker.on_update for the C packet, with count() inline (keep the two alike):
        # this runs for every packet, where two calls more cost about as much as the counting.
        track = self.udps.track
        direction, flags, ip_size, payload_size = _read(ffi.buffer(packet, _READ_SIZE))
        if direction:
            track.ipb1 += ip_size
        else:
            track.ipb0 += ip_size
        if track.tcp:
            key = 1 << (direction | _KINDS[flags] | (payload_size > 0) << 5)
            if not track.hkeys & key:
                track.hkeys |= key
                history(track, packet, direction)
        if track.app and payload_size:
            _on_payload(packet, ffi, self, track)
        return None  # (ZeekTracker never ends a flow itself: no expiration_id -1 to check)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # How the meter hands an ended flow over: on a flowmeter's meter, as an EndedFlow
        # (the fields the logs are made of, see _flowmeter_ended), NFStream's way elsewhere.
        if _checked[0] is None:
            return super().__reduce_ex__(protocol)
        return ended_reduction(self)


# The plugin list of this meter once _check found it to be the flowmeter's: the check is then
# an identity test per packet (a meter's streamer options never change).
_checked: list[Any] = [None]


def _check(udps: Any, statistics: bool, splt: int) -> bool:
    if statistics or splt or len(udps) != 1 or type(udps[0]) is not ZeekTracker:
        return False
    _checked[0] = udps
    return True


def _on_payload(cpkt: Any, ffi: Any, flow: Any, track: Track) -> None:
    """The rest of ZeekTracker.on_update for a C packet with payload, in a flow still read."""
    app = track.app
    if app == HTTP and not track.buf and not http_start(_c_head(cpkt, ffi, flow)):
        return  # body bytes (see ZeekTracker.on_update)
    if app == TLS and track.msgs and _tls_after_hello(track, cpkt):
        return
    inspect_payload(track, _pythonize(cpkt, ffi, flow))


def _tls_after_hello(track: Track, cpkt: Any) -> bool:
    """_tls for a packet after the ClientHello, from its first payload byte; False (nothing
    done) when _tls needs the payload itself: a ServerHello to parse, or no such byte.

    Most packets of a TLS flow that are still looked at come here (the server's certificate
    and key exchange segments): without it each would become an NFPacket for one byte."""
    off = cpkt.ip_size - cpkt.payload_size
    if not 0 <= off < cpkt.ip_content_len:
        return False  # _payload slices from the end or finds nothing: _tls's own way
    first = cpkt.ip_content[off]
    from_client = cpkt.direction == track.client
    rec = track.msgs[0][1]
    if not from_client and "version" not in rec and first == TLS_HANDSHAKE:
        return False
    # What _flowmeter_handlers._tls does for the packet: these lines must stay its mirror.
    track.seen += 1
    if track.seen > TLS_PACKETS:
        track.app = NONE
    elif from_client and "version" in rec and first in _TLS_CCS_OR_DATA:
        rec["established"] = True
        track.app = NONE
    return True


def _c_head(cpkt: Any, ffi: Any, flow: Any) -> bytes:
    """payload_head of the NFPacket of ``cpkt``, copying only those bytes."""
    size = cpkt.payload_size
    off = cpkt.ip_size - size
    if off < 0:
        return payload_head(_pythonize(cpkt, ffi, flow))
    return ffi.buffer(cpkt.ip_content, cpkt.ip_content_len)[off : off + min(size, HEAD_BYTES)]  # type: ignore[no-any-return]


def supported() -> bool:
    """Whether this NFStream is one FastFlow was checked against."""
    version = str(getattr(nfstream, "__version__", ""))
    if (not version.startswith(CHECKED_VERSIONS) or nf_meter.NFlow is not nf_flow.NFlow
            or _READER is None):
        return False
    update = tuple(inspect.signature(nf_flow.NFlow.update).parameters)
    init = tuple(inspect.signature(nf_flow.NFlow.__init__).parameters)
    return (update == _UPDATE_ARGS and init == _INIT_ARGS
            and callable(getattr(nf_meter, "consume", None)))


@contextlib.contextmanager
def fast_meters(enabled: bool = True) -> Iterator[bool]:
    """While inside, meters NFStream forks from this process create FastFlows (if supported).

    Yields whether they do. NFStream forks its meters when its streamer is first iterated,
    so the iteration must begin inside.
    """
    if not enabled or not supported():
        yield False
        return
    nf_meter.NFlow = FastFlow
    try:
        yield True
    finally:
        nf_meter.NFlow = nf_flow.NFlow
