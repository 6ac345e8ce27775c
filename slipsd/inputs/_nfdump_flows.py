"""nfdump text records -> Zeek-like conn events: parsing a line, and the event of a connection.

A connection is an originator record and a reply record (see _nfdump_pair), either
possibly missing. nfdump gives IP bytes and the TCP flags OR-ed over each record;
payload bytes, conn_state and history are derived from them (docs/architecture.md,
"Input: nfdump", has the table).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slipsd.events import NEW_FLOW
from slipsd.inputs._common import LineError

Event = dict[str, Any]
Record = tuple[float, str, Event]
OnError = Callable[[LineError], None]

# The nfdump output format: one record a line, '|' never occurs in any field.
# %ter is avoided: nfdump 1.7.1 prints its milliseconds wrongly; %td is exact.
FIELDS = ("tsr", "td", "pr", "sa", "sp", "da", "dp", "flg", "ipkt", "ibyt", "opkt", "obyt",
          "it", "ic", "ismc", "idmc")
FORMAT = "fmt:" + "|".join("%" + f for f in FIELDS)
# Lines nfdump prints around the records (header, "No matching flows", statistics).
META_PREFIXES = ("Date first seen", "No matching flows", "Summary:", "Time window:",
                 "Total flows processed:", "Sys:")

TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
PROTO_NAMES = {TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMP6: "icmp"}
# Older or other nfdump builds may print protocol names even with -N.
PROTO_NUMBERS = {"TCP": TCP, "UDP": UDP, "ICMP": ICMP, "ICMP6": ICMP6, "IPV6-ICMP": ICMP6}
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_FLAG_BITS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK, "U": 0x20, "E": 0x40, "C": 0x80}
_NO_MAC = "00:00:00:00:00:00"


@dataclass(slots=True)
class Half:
    """One nfdump record: usually one direction of a connection."""

    start: int  # ms since the epoch
    end: int
    proto: int
    saddr: str
    sport: int
    daddr: str
    dport: int
    flags: int
    pkts: int
    byts: int
    opkts: int  # reverse counters: only biflow exporters (NSEL, IPFIX) fill them
    obyts: int
    smac: str
    dmac: str
    lineno: int
    line: str


_flag_cache: dict[str, int] = {}


def _flags(text: str) -> int:
    bits = _flag_cache.get(text)
    if bits is None:
        bits = 0
        for char in text.strip():
            if char in _FLAG_BITS:
                bits |= _FLAG_BITS[char]
            elif char != ".":
                raise ValueError(f"field 'flg': not TCP flags: {text.strip()!r}")
        if len(_flag_cache) < 1024:
            _flag_cache[text] = bits
    return bits


def _int(parts: list[str], i: int) -> int:
    try:
        return int(parts[i])
    except ValueError:
        raise ValueError(f"field {FIELDS[i]!r}: not an integer: {parts[i].strip()!r}") from None


def _ms(parts: list[str], i: int) -> int:
    try:
        return round(float(parts[i]) * 1000)
    except ValueError:
        raise ValueError(f"field {FIELDS[i]!r}: not a number: {parts[i].strip()!r}") from None


def _proto(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    number = PROTO_NUMBERS.get(text.upper())
    if number is None:
        raise ValueError(f"field 'pr': unknown protocol: {text!r}")
    return number


def parse_line(line: str, lineno: int) -> Half:
    """One record line of FORMAT; ValueError with a short reason when it is not one."""
    parts = line.rstrip("\r\n").split("|")
    if len(parts) != len(FIELDS):
        raise ValueError(f"expected {len(FIELDS)} fields, got {len(parts)}")
    start = _ms(parts, 0)
    proto = _proto(parts[2])
    if proto in (ICMP, ICMP6):
        # Zeek's convention: the ICMP type in the source port, the code in the destination.
        sport, dport = _int(parts, 12), _int(parts, 13)
    else:
        sport, dport = _int(parts, 4), _int(parts, 6)
    return Half(
        start=start, end=start + _ms(parts, 1), proto=proto,
        saddr=parts[3].strip(), sport=sport, daddr=parts[5].strip(), dport=dport,
        flags=_flags(parts[7]), pkts=_int(parts, 8), byts=_int(parts, 9),
        opkts=_int(parts, 10), obyts=_int(parts, 11),
        smac=parts[14].strip(), dmac=parts[15].strip(), lineno=lineno, line=line,
    )


def server_side(h: Half) -> bool:
    """A record from a well-known port to an ephemeral one: a reply (Zeek flips these too)."""
    return h.sport < 1024 <= h.dport


def orig_first(a: Half, b: Half) -> bool:
    """Whether ``a`` (started no later than ``b``) is the originator of the pair."""
    if a.proto == TCP:
        a_syn = a.flags & (SYN | ACK) == SYN
        b_syn = b.flags & (SYN | ACK) == SYN
        if a_syn != b_syn:
            return a_syn  # the side that sent a bare SYN opened the connection
    if a.start != b.start:
        return True
    return not server_side(a)


def _payload(proto: int, flags: int, pkts: int, byts: int, v6: bool) -> int:
    """Estimated payload bytes: nfdump counts IP bytes, Zeek's orig/resp_bytes exclude headers."""
    if proto == TCP:
        # A segment with data nearly always carries PSH somewhere in the flow; without it
        # the bytes are handshake and ACKs, whatever the TCP options made them weigh.
        if not flags & PSH:
            return 0
        header = 60 if v6 else 40
    elif proto in (UDP, ICMP, ICMP6):
        header = 48 if v6 else 28
    else:
        header = 40 if v6 else 20
    return max(0, byts - pkts * header)


def tcp_state(o: int, r: int, opkts: int, rpkts: int) -> str:
    """Zeek's conn_state from the OR-ed flags of each direction (see docs/architecture.md)."""
    if r & RST:
        if o & (SYN | ACK) == SYN:
            return "REJ"
        return "RSTRH" if not opkts else "RSTR"
    if o & RST:
        if not rpkts:
            return "RSTOS0" if o & (SYN | ACK | FIN | PSH) == SYN else "OTH"
        return "RSTO"
    if o & FIN and r & FIN:
        return "SF"
    if o & FIN:
        return "SH" if not rpkts else "S2"
    if r & FIN:
        return "SHR" if not opkts else "S3"
    if o & SYN and not rpkts:
        return "S0" if not o & ACK else "OTH"
    if o & SYN and r & SYN:
        return "S1"
    return "OTH"


def _tcp_history(o: int, r: int, op: int, rp: int, sdata: int, ddata: int) -> str:
    """Zeek history letters present, in Zeek's usual order: packet order is unknown."""

    def ack(flags: int, pkts: int) -> bool:
        # A pure ACK only when more packets were sent than SYN, FIN and RST explain.
        explained = bool(flags & SYN) + bool(flags & FIN) + bool(flags & RST)
        return bool(flags & ACK) and pkts > explained

    letters = (
        (o & SYN, "S"), (r & SYN, "h" if r & ACK else "s"), (ack(o, op), "A"), (sdata, "D"),
        (ack(r, rp), "a"), (ddata, "d"), (o & FIN, "F"), (r & FIN, "f"), (o & RST, "R"),
        (r & RST, "r"),
    )
    return "".join(letter for present, letter in letters if present)


def build_event(o: Half | None, r: Half | None) -> Record:
    """The conn event of an originator record and its reply record (either may be missing)."""
    halves = [h for h in (o, r) if h is not None]
    first = halves[0]
    proto = first.proto
    if o is not None:
        saddr, sport, daddr, dport = o.saddr, o.sport, o.daddr, o.dport
        of, spkts, sip, smac, dmac = o.flags, o.pkts, o.byts, o.smac, o.dmac
    else:
        saddr, sport, daddr, dport = first.daddr, first.dport, first.saddr, first.sport
        of = spkts = sip = 0
        smac, dmac = first.dmac, first.smac
    if r is not None:
        rf, dpkts, dip, dmac = r.flags, r.pkts, r.byts, r.smac
    elif o is not None and (o.opkts or o.obyts):
        # A biflow record: its one flags field is both directions' flags OR-ed.
        rf, dpkts, dip = (o.flags if o.opkts else 0), o.opkts, o.obyts
    else:
        rf = dpkts = dip = 0
    start = min(h.start for h in halves)
    duration = max(h.end for h in halves) - start
    v6 = ":" in saddr
    sbytes = _payload(proto, of, spkts, sip, v6)
    dbytes = _payload(proto, rf, dpkts, dip, v6)
    if proto == TCP:
        state = tcp_state(of, rf, spkts, dpkts)
        history = _tcp_history(of, rf, spkts, dpkts, sbytes, dbytes)
    elif proto == UDP:
        state = ("SF" if dpkts else "S0") if spkts else ("SHR" if dpkts else "OTH")
        history = ("D" if sbytes else "") + ("d" if dbytes else "")
    else:
        state, history = "OTH", ""
    digest = hashlib.blake2b(f"{first.lineno}|{first.line}".encode(), digest_size=9)
    ev: Event = {
        "ts": start / 1000, "uid": "N" + digest.hexdigest(), "saddr": saddr, "sport": sport,
        "daddr": daddr, "dport": dport, "proto": PROTO_NAMES.get(proto, "unknown_transport"),
        "service": "", "duration": duration / 1000, "sbytes": sbytes, "dbytes": dbytes,
        "spkts": spkts, "dpkts": dpkts, "state": state, "history": history,
        "orig_ip_bytes": sip, "resp_ip_bytes": dip,
    }
    if smac and smac != _NO_MAC:
        ev["smac"] = smac
    if dmac and dmac != _NO_MAC:
        ev["dmac"] = dmac
    return ev["ts"], NEW_FLOW, ev
