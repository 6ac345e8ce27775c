"""An ended flow as the flowmeter's meters hand it over: the NFlow fields the logs need.

NFStream's meters put each ended NFlow on a multiprocessing queue, and the default
pickle of that slotted class writes all ~100 slots, names included (1.4 kB a flow on
bench/flowmeter.py's capture). Most flows of a capture end together when the file ends,
so pickling in the meter and unpickling in the caller ran serially after metering. A
flowmeter's FastFlow (_flowmeter_fast) pickles instead as the values of ENDED_FIELDS,
rebuilt as an ``EndedFlow``: the same attribute names, for what the logs are made of
(_flowmeter_conn.flow_records and the flowmeter's own bookkeeping).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from slipsd.sensors._flowmeter_track import Track

# NFlow attributes an EndedFlow keeps; "id" is NFStream's event id (the streamer reads and
# renumbers it), "track" the plugin's Track (NFlow.udps.track).
ENDED_FIELDS = (
    "id", "expiration_id", "src_ip", "src_mac", "src_port", "dst_ip", "dst_mac", "dst_port",
    "protocol", "vlan_id", "tunnel_id", "bidirectional_first_seen_ms",
    "bidirectional_last_seen_ms", "src2dst_packets", "src2dst_bytes", "dst2src_packets",
    "dst2src_bytes", "application_name", "application_is_guessed",
)


class EndedFlow:
    """The fields of an ended NFlow that the flowmeter reads, and its Track."""

    __slots__ = (*ENDED_FIELDS, "track")
    track: Track

    @property
    def udps(self) -> EndedFlow:
        """The flow itself, so that ``flow.udps.track`` reads as on an NFlow."""
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return ended_flow, (_values(self), self.track)


def ended_flow(values: tuple[Any, ...], track: Track) -> EndedFlow:
    """An EndedFlow of ENDED_FIELDS' ``values`` (what pickles of one are rebuilt with)."""
    flow = EndedFlow()
    for name, value in zip(ENDED_FIELDS, values, strict=True):
        setattr(flow, name, value)
    flow.track = track
    return flow


def ended_reduction(flow: Any) -> tuple[Any, ...]:
    """What an ended NFlow with a Track pickles as: rebuilt as an EndedFlow."""
    return ended_flow, (_values(flow), flow.udps.track)


_values = attrgetter(*ENDED_FIELDS)
