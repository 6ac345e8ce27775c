"""DNS and DHCP message parsing for the flowmeter, with Zeek's names for codes.

DNS is parsed here rather than with dpkt.dns: dpkt rejects a whole message for one
record type it does not know (HTTPS, NSEC: common in mDNS) or one name that is not
UTF-8, and the answers would be lost. Like Zeek, only the answer section is logged.
"""

from __future__ import annotations

import re
import socket
import struct
from typing import Any

import dpkt  # type: ignore[import-untyped]

QTYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    28: "AAAA", 33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG",
    47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF",
    251: "IXFR", 252: "AXFR", 255: "*", 257: "CAA",
}
QCLASSES = {1: "C_INTERNET", 3: "C_CHAOS", 4: "C_HESIOD", 254: "C_NONE", 255: "C_ANY"}
RCODES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}
DHCP_TYPES = {
    1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE",
    8: "INFORM",
}
_NAME_TYPES = {2, 5, 12, 39}  # NS, CNAME, PTR, DNAME: the rdata is one domain name
_MAX_POINTERS = 32  # compression pointers followed in one name (a loop otherwise)
_PRINTABLE = frozenset(range(0x21, 0x7F)) - {ord("\\")}
# What escape() writes as \xNN: neither a space nor in _PRINTABLE.
_ESCAPED = re.compile(rb"[^\x20-\x5b\x5d-\x7e]")


def escape(raw: bytes) -> str:
    """Bytes as Zeek logs them: printable ASCII kept, the rest as \\xNN."""
    if _ESCAPED.search(raw) is None:  # the common case, without a Python loop over the bytes
        return raw.decode("ascii")
    return "".join(chr(b) if b in _PRINTABLE or b == 0x20 else f"\\x{b:02x}" for b in raw)


def _name(buf: bytes, off: int) -> tuple[str, int]:
    """A possibly compressed domain name at ``off``; returns it and the offset after it."""
    labels: list[str] = []
    end = -1
    jumps = 0
    while True:
        length = buf[off]
        if length == 0:
            off += 1
            break
        if length & 0xC0 == 0xC0:
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise ValueError("DNS name compression loop")
            if end < 0:
                end = off + 2
            off = ((length & 0x3F) << 8) | buf[off + 1]
            continue
        if length & 0xC0:
            raise ValueError(f"bad DNS label length {length:#x}")
        label = buf[off + 1 : off + 1 + length]
        if len(label) != length:
            raise ValueError("DNS name cut short")
        labels.append(escape(label))
        off += 1 + length
    return ".".join(labels), end if end >= 0 else off


def _answer(buf: bytes, rtype: int, start: int, rdata: bytes) -> str | None:
    if rtype == 1 and len(rdata) == 4:
        return socket.inet_ntop(socket.AF_INET, rdata)
    if rtype == 28 and len(rdata) == 16:
        return socket.inet_ntop(socket.AF_INET6, rdata)
    if rtype in _NAME_TYPES:
        return _name(buf, start)[0]
    if rtype == 15:  # MX: preference, then the exchange's name
        return _name(buf, start + 2)[0]
    if rtype == 33:  # SRV: priority, weight, port, then the target's name
        return _name(buf, start + 6)[0]
    if rtype == 16:  # TXT: Zeek writes every string of the record as "TXT <len> <text>"
        parts = []
        pos = 0
        while pos < len(rdata):
            size = rdata[pos]
            parts.append(f"TXT {size} {escape(rdata[pos + 1 : pos + 1 + size])}")
            pos += 1 + size
        return " ".join(parts)
    return None  # other types (SOA, OPT, DNSSEC ...): Zeek logs no answer text for them


def parse_dns(buf: bytes) -> dict[str, Any]:
    """The logged fields of one DNS message; ValueError/IndexError if it is not one."""
    if len(buf) < 12:
        raise ValueError("DNS message shorter than its header")
    trans_id, flags, qdcount, ancount = struct.unpack_from("!HHHH", buf)
    msg: dict[str, Any] = {
        "trans_id": trans_id,
        "qr": bool(flags & 0x8000),
        "AA": bool(flags & 0x0400),
        "TC": bool(flags & 0x0200),
        "RD": bool(flags & 0x0100),
        "RA": bool(flags & 0x0080),
        "Z": (flags >> 4) & 0x7,
        "rcode": flags & 0xF,
    }
    off = 12
    for i in range(qdcount):
        name, off = _name(buf, off)
        qtype, qclass = struct.unpack_from("!HH", buf, off)
        off += 4
        if i == 0:
            msg["query"] = name.lower()
            msg["qtype"] = qtype
            msg["qclass"] = qclass
    answers: list[str] = []
    ttls: list[float] = []
    first_owner = ""
    for i in range(ancount):
        owner, off = _name(buf, off)
        rtype, _, ttl, rdlen = struct.unpack_from("!HHIH", buf, off)
        off += 10
        rdata = buf[off : off + rdlen]
        if len(rdata) != rdlen:
            raise ValueError("DNS record cut short")
        if i == 0:
            first_owner = owner
        text = _answer(buf, rtype, off, rdata)
        if text is not None:
            answers.append(text)
            ttls.append(float(ttl))
        off += rdlen
    if "query" not in msg and first_owner:
        # mDNS announcements carry no question: Zeek names them after the first answer.
        msg["query"] = first_owner.lower()
    msg["answers"] = answers
    msg["TTLs"] = ttls
    return msg


def _ip(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw) if len(raw) == 4 else ""


def parse_dhcp(buf: bytes) -> dict[str, Any]:
    """The fields of one DHCP message Zeek's dhcp.log keeps (dpkt raises if it is not one)."""
    msg = dpkt.dhcp.DHCP(buf)
    info: dict[str, Any] = {
        "xid": msg.xid,
        "from_client": msg.op == dpkt.dhcp.DHCP_OP_REQUEST,
        "mac": ":".join(f"{b:02x}" for b in msg.chaddr[:6]) if msg.hln == 6 else "",
        "ciaddr": _ip(struct.pack("!I", msg.ciaddr)),
        "yiaddr": _ip(struct.pack("!I", msg.yiaddr)),
    }
    for code, value in msg.opts:
        if code == 53 and value:
            info["msg_type"] = DHCP_TYPES.get(value[0], f"TYPE-{value[0]}")
        elif code == 50:
            info["requested_addr"] = _ip(value)
        elif code == 54:
            info["server_id"] = _ip(value)
        elif code == 12:
            info["host_name"] = escape(value)
        elif code == 15:
            info["domain"] = escape(value.rstrip(b"\0"))
        elif code == 51 and len(value) == 4:
            info["lease_time"] = float(struct.unpack("!I", value)[0])
        elif code == 81 and len(value) > 3:
            info["client_fqdn"] = escape(value[3:])
        elif code == 56:
            info["message"] = escape(value)
    return info
