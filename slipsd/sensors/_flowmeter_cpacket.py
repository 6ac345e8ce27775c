"""NFStream's C packet read with one unpack: direction, TCP flags, IP and payload sizes.

The flowmeter counts every packet (_flowmeter_plugin.count: IP bytes per direction, the
kind of packet for the history letters) from six fields of NFStream's ``struct
nf_packet``. Read through cffi, each field costs about 60 ns, a bitfield as much as any,
so that reading them cost more than the counting. They sit at fixed offsets in the
struct (the TCP flags as bits of one byte), so one ``struct.unpack_from`` over a buffer
of the struct reads them together. The offsets and flag bits are taken from cffi's own
view of the struct, probed once; a layout this does not expect gives no reader, and the
flowmeter then meters on NFStream's plugin path (_flowmeter_fast.supported).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# count()'s packet kind: the bit each flag is shifted to (direction is bit 0, payload bit 5).
KIND_BITS = {"syn": 1, "ack": 2, "fin": 3, "rst": 4}
_SIZES = {"direction": 1, "ip_size": 2, "payload_size": 2}


@dataclass(frozen=True)
class PacketReader:
    """``unpack(buffer)`` -> (direction, flags byte, ip_size, payload_size) of a C packet whose
    first ``size`` bytes ``buffer`` holds; ``kinds[flags byte]``: its count() kind bits."""

    unpack: Callable[[Any], tuple[int, int, int, int]]
    size: int
    kinds: tuple[int, ...]


def packet_reader(ffi: Any) -> PacketReader | None:
    """A PacketReader for NFStream's struct nf_packet as ``ffi`` lays it out, or None."""
    try:
        fields = dict(ffi.typeof("struct nf_packet").fields)
        offsets = {name: fields[name].offset for name in _SIZES}
        if any(ffi.sizeof(fields[name].type) != size for name, size in _SIZES.items()):
            return None
        flag_byte, flag_bits = _flag_bits(ffi)
    except Exception:  # any layout the probe did not expect: no reader
        return None
    order = (offsets["direction"], flag_byte, offsets["ip_size"], offsets["payload_size"])
    if list(order) != sorted(set(order)):
        return None  # the fields overlap or come in another order
    fmt, at = "=", 0
    for offset, code in zip(order, "BBHH", strict=True):
        fmt += f"{offset - at}x{code}"
        at = offset + struct.calcsize(code)
    kinds = tuple(sum(1 << KIND_BITS[name] for name, bit in flag_bits.items() if value >> bit & 1)
                  for value in range(256))
    return PacketReader(struct.Struct(fmt).unpack_from, at, kinds)


def _flag_bits(ffi: Any) -> tuple[int, dict[str, int]]:
    """(offset of the byte holding the TCP flags, bit of each flag in it), found by setting
    each flag alone in a blank packet; ValueError when they are not bits of one byte."""
    probe = ffi.new("struct nf_packet *")
    blank = bytes(ffi.buffer(probe))
    places: dict[str, tuple[int, int]] = {}
    for name in KIND_BITS:
        setattr(probe, name, 1)
        now = bytes(ffi.buffer(probe))
        changed = [(i, a ^ b) for i, (a, b) in enumerate(zip(blank, now, strict=True)) if a != b]
        setattr(probe, name, 0)
        if len(changed) != 1 or changed[0][1] & (changed[0][1] - 1):
            raise ValueError(f"TCP flag {name} is not one bit")
        places[name] = (changed[0][0], changed[0][1].bit_length() - 1)
    offsets = {offset for offset, _ in places.values()}
    if len(offsets) != 1:
        raise ValueError("the TCP flags are not in one byte")
    return offsets.pop(), {name: bit for name, (_, bit) in places.items()}
