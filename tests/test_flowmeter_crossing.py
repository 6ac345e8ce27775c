"""What the flowmeter's meters hand over, and how they read NFStream's C packet."""

from __future__ import annotations

import pickle
import random
from types import SimpleNamespace

from nfstream.engine import create_engine  # type: ignore[import-untyped]

from slipsd.sensors._flowmeter_cpacket import KIND_BITS, packet_reader
from slipsd.sensors._flowmeter_ended import ENDED_FIELDS, EndedFlow, ended_reduction
from slipsd.sensors._flowmeter_track import Track


def a_track() -> Track:
    track = Track()
    track.hist, track.ipb0, track.ipb1, track.icmp = "ShADadFf", 1200, 53_000, None
    query = {"ts": 5, "trans_id": 7, "query": "example.org"}
    track.add("dns", query)
    track.pending[7] = query  # the same dict as the message: it must stay one object
    track.errors, track.orig = 2, ("10.0.0.1", 40000)
    return track


def test_a_track_pickles_whole() -> None:
    track = a_track()
    copy = pickle.loads(pickle.dumps(track))
    assert all(getattr(copy, name) == getattr(track, name) for name in Track.__slots__)
    assert copy.pending[7] is copy.msgs[0][1]


def test_an_ended_flow_crosses_as_the_fields_the_logs_read() -> None:
    values = {name: f"value of {name}" for name in ENDED_FIELDS}
    flow = SimpleNamespace(**values, udps=SimpleNamespace(track=a_track()),
                           src_oui="not needed", requested_server_name="not needed")
    rebuild, args = ended_reduction(flow)
    ended = pickle.loads(pickle.dumps(rebuild(*args)))
    assert isinstance(ended, EndedFlow)
    assert {name: getattr(ended, name) for name in ENDED_FIELDS} == values
    assert ended.udps.track.hist == "ShADadFf" and ended.udps.track.msgs == flow.udps.track.msgs
    ended.id = 12  # the streamer renumbers what it hands out
    assert not hasattr(ended, "src_oui")


def test_the_packet_reader_reads_what_cffi_reads() -> None:
    ffi, _ = create_engine()
    reader = packet_reader(ffi)
    assert reader is not None  # else the flowmeter meters on NFStream's slower plugin path
    rng = random.Random(8)
    pkt = ffi.new("struct nf_packet *")
    for _ in range(300):
        for name in ("syn", "ack", "fin", "rst", "psh", "urg", "ece", "cwr"):
            setattr(pkt, name, rng.randrange(2))
        pkt.direction, pkt.ip_size, pkt.payload_size = (
            rng.randrange(2), rng.randrange(1 << 16), rng.randrange(1 << 16))
        pkt.time, pkt.raw_size, pkt.transport_size = rng.randrange(1 << 40), 77, 99
        direction, flags, ip_size, payload_size = reader.unpack(ffi.buffer(pkt, reader.size))
        assert (direction, ip_size, payload_size) == (pkt.direction, pkt.ip_size,
                                                      pkt.payload_size)
        assert reader.kinds[flags] == sum(getattr(pkt, name) << bit
                                          for name, bit in KIND_BITS.items())
