"""A dpkt pass over the capture for what NFStream never sees: ARP, and the packet count.

NFStream only meters IP, so ARP packets are read here straight from the pcap or
pcapng records (Ethernet, Linux cooked v1 and v2). The pass also counts packets
and notices a capture that ends in the middle of a record (libpcap, under NFStream,
silently stops there).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

log = logging.getLogger(__name__)

PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
ETH_ARP = b"\x08\x06"
VLAN_TAGS = (b"\x81\x00", b"\x88\xa8", b"\x91\x00")
LINK_ETHERNET, LINK_SLL, LINK_SLL2 = 1, 113, 276
ARP_OPERATIONS = {1: "request", 2: "reply"}
MAX_RECORD = 1 << 26  # larger packet records mean the file is damaged, not a jumbo frame


class CaptureError(Exception):
    """The file is not a capture the flowmeter can read at all."""


@dataclass
class CaptureScan:
    packets: int = 0
    arp: int = 0
    damage: str = ""  # why reading stopped before the end of the file, "" if it did not


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _arp_offset(link: int, buf: bytes) -> tuple[int, bytes, bytes]:
    """(offset of the ARP header or -1, source MAC, destination MAC) of a link-layer frame."""
    if link == LINK_ETHERNET:
        off = 12
        while buf[off : off + 2] in VLAN_TAGS:
            off += 4
        if buf[off : off + 2] == ETH_ARP:
            return off + 2, buf[6:12], buf[0:6]
    elif link == LINK_SLL and buf[14:16] == ETH_ARP:
        return 16, buf[6 : 6 + min(8, buf[5])], b""  # cooked captures have no destination MAC
    elif link == LINK_SLL2 and buf[0:2] == ETH_ARP:
        return 20, buf[12 : 12 + min(8, buf[11])], b""
    return -1, b"", b""


def arp_record(ts: float, link: int, buf: bytes) -> dict[str, Any] | None:
    """The arp.log record of an Ethernet/IPv4 ARP request or reply frame, else None."""
    off, src, dst = _arp_offset(link, buf)
    if off < 0:
        return None
    arp = buf[off : off + 28]
    # hardware type any, protocol IPv4, 6-byte MACs, 4-byte addresses: the only ARP in use.
    if len(arp) < 28 or arp[2:6] != b"\x08\x00\x06\x04":
        return None
    operation = ARP_OPERATIONS.get(int.from_bytes(arp[6:8], "big"))
    if operation is None:
        return None
    return {
        "ts": ts,
        "operation": operation,
        "src_mac": _mac(src),
        "dst_mac": _mac(dst),
        "orig_h": socket.inet_ntop(socket.AF_INET, arp[14:18]),
        "resp_h": socket.inet_ntop(socket.AF_INET, arp[24:28]),
        "orig_hw": _mac(arp[8:14]),
        "resp_hw": _mac(arp[18:24]),
    }


class _Damage:
    reason = ""


Records = Iterator[tuple[float, bytes]]


def _pcap_records(handle: IO[bytes], damage: _Damage) -> tuple[int, Records]:
    """(link type, records) of a pcap file; read here, not with dpkt, which hands out a
    last record cut short as if it were whole."""
    header = handle.read(24)
    order = "<" if header[:4] in (PCAP_MAGICS[0], PCAP_MAGICS[2]) else ">"
    if len(header) < 24:
        raise CaptureError("pcap file header cut short")
    divisor = 1e9 if header[:4] in (PCAP_MAGICS[2], PCAP_MAGICS[3]) else 1e6
    link = struct.unpack_from(order + "I", header, 20)[0] & 0xFFFF
    record = struct.Struct(order + "IIII")

    def records() -> Records:
        read = handle.read
        unpack = record.unpack
        while head := read(16):
            if len(head) < 16:
                damage.reason = "the file ends inside a packet record header"
                return
            sec, frac, caplen, _ = unpack(head)
            if caplen > MAX_RECORD:
                damage.reason = f"implausible packet record length {caplen}"
                return
            buf = read(caplen)
            if len(buf) < caplen:
                damage.reason = f"the file ends {caplen - len(buf)} bytes before the packet's end"
                return
            yield sec + frac / divisor, buf

    return link, records()


def _pcapng_records(handle: IO[bytes], damage: _Damage) -> tuple[int, Records]:
    import dpkt  # type: ignore[import-untyped]  # here: sniffing must not pay for importing it

    try:
        reader = dpkt.pcapng.Reader(handle)
    except (ValueError, dpkt.Error) as exc:
        raise CaptureError(f"unreadable pcapng header: {exc}") from exc

    def records() -> Records:
        try:
            for ts, buf in reader:
                yield float(ts), buf
        except (ValueError, struct.error, dpkt.Error) as exc:
            damage.reason = f"unreadable pcapng block: {exc}"

    return reader.datalink(), records()


def scan_capture(handle: IO[bytes], on_arp: Callable[[dict[str, Any]], None]) -> CaptureScan:
    """Read every packet record of ``handle`` (rewound first); ARP frames go to ``on_arp``."""
    return _scan(*_open(handle), on_arp, None)


class BackgroundScan:
    """scan_capture in a thread, so that it runs while NFStream meters the same file.

    The file header is read (and a file that is no capture refused with CaptureError)
    before the thread starts; ``on_arp`` is called from the thread.
    """

    def __init__(self, handle: IO[bytes], on_arp: Callable[[dict[str, Any]], None]) -> None:
        opened = _open(handle)
        self._stop = threading.Event()
        self._scan: CaptureScan | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(*opened, on_arp),
                                        name="flowmeter-scan", daemon=True)
        self._thread.start()

    def _run(self, link: int, records: Records, damage: _Damage,
             on_arp: Callable[[dict[str, Any]], None]) -> None:
        try:
            self._scan = _scan(link, records, damage, on_arp, self._stop)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> CaptureScan:
        """The scan once it is over; raises what the scan raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._scan is not None
        return self._scan

    def cancel(self) -> None:
        """Stop reading soon and wait for the thread (on_arp is not called afterwards)."""
        self._stop.set()
        self._thread.join()


def _open(handle: IO[bytes]) -> tuple[int, Records, _Damage]:
    handle.seek(0)
    magic = handle.read(4)
    handle.seek(0)
    damage = _Damage()
    if magic == PCAPNG_MAGIC:
        link, records = _pcapng_records(handle, damage)
    elif magic in PCAP_MAGICS:
        link, records = _pcap_records(handle, damage)
    else:
        raise CaptureError("not a pcap or pcapng capture")
    return link, records, damage


def _scan(link: int, records: Records, damage: _Damage,
          on_arp: Callable[[dict[str, Any]], None], stop: threading.Event | None) -> CaptureScan:
    scan = CaptureScan()
    arp_capable = link in (LINK_ETHERNET, LINK_SLL, LINK_SLL2)
    for ts, buf in records:
        scan.packets += 1
        if not scan.packets & 0xFFFF and stop is not None and stop.is_set():
            break
        if arp_capable and (buf[12:14] == ETH_ARP or buf[14:16] == ETH_ARP
                            or buf[0:2] == ETH_ARP or buf[12:14] in VLAN_TAGS):
            rec = arp_record(ts, link, buf)
            if rec is not None:
                scan.arp += 1
                on_arp(rec)
    if damage.reason:
        scan.damage = f"capture cut short after packet {scan.packets}: {damage.reason}"
    return scan
