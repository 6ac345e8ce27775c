"""Argus binetflow lines (ra's comma- or tab-separated output) -> Zeek-like conn events."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slipsd.inputs._flowstate import (
    argus_tcp_flags,
    tcp_history,
    tcp_payload,
    tcp_state,
    udp_state,
)

REQUIRED = ("starttime", "proto", "srcaddr", "dstaddr")
_PROTOS = {"ipv6-icmp": "icmp", "icmp6": "icmp", "1": "icmp", "58": "icmp", "6": "tcp",
           "17": "udp"}
# Records that are not IP flows: Argus management records and ARP.
_NOT_IP_PROTOS = frozenset({"man", "arp", "rarp"})
_MAC = re.compile(r"[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){5}")
# ra's direction column: arrows and question marks ("->", "<?>", "<->"), "who" for ARP.
_DIRECTION = re.compile(r"[<>?|\-]*|who|is-at")
_CACHE_LIMIT = 100_000


class MetaLine(Exception):  # not an error: the line is counted as meta
    """A line that is valid but not an IP flow (management, ARP, other layer 2)."""


@dataclass
class Columns:
    """Where each field is in a line, from the header's names (any order, any subset)."""

    sep: str
    count: int
    index: dict[str, int]

    @classmethod
    def from_header(cls, line: str) -> Columns | None:
        """The columns of a header line, None when the line is not an Argus header."""
        sep = "\t" if "\t" in line else ","
        names = [p.strip().lower() for p in line.rstrip("\r\n").split(sep)]
        if not {"starttime", "srcaddr", "dstaddr"} <= set(names):
            return None
        return cls(sep, len(names), {n: i for i, n in enumerate(names) if n})

    def missing(self) -> list[str]:
        return [n for n in REQUIRED if n not in self.index]

    def get(self, name: str) -> int:
        return self.index.get(name, -1)


class LineParser:
    """Turns the fields of one data line into a conn event; ValueError says why it cannot."""

    def __init__(self, columns: Columns) -> None:
        self.columns = columns
        c = columns.get
        self.i_start, self.i_last, self.i_dur = c("starttime"), c("lasttime"), c("dur")
        self.i_proto, self.i_saddr, self.i_daddr = c("proto"), c("srcaddr"), c("dstaddr")
        self.i_sport, self.i_dport, self.i_dir = c("sport"), c("dport"), c("dir")
        self.i_state = c("state")
        self.i_totpkts, self.i_spkts, self.i_dpkts = c("totpkts"), c("srcpkts"), c("dstpkts")
        self.i_totbytes, self.i_sbytes, self.i_dbytes = c("totbytes"), c("srcbytes"), c("dstbytes")
        self.i_sapp, self.i_dapp = c("sappbytes"), c("dappbytes")
        self.i_smac, self.i_dmac, self.i_label = c("srcmac"), c("dstmac"), c("label")
        # A label (the last column in CTU captures) may itself hold the separator.
        self.label_last = self.i_label == columns.count - 1

    def fields(self, line: str) -> list[str]:
        parts = line.rstrip("\r\n").split(self.columns.sep)
        count = self.columns.count
        if len(parts) > count and self.label_last:
            parts[count - 1 :] = [self.columns.sep.join(parts[count - 1 :])]
        if len(parts) != count:
            raise ValueError(f"expected {count} fields, got {len(parts)}")
        return parts

    def parse(self, parts: list[str], lineno: int, line: str) -> dict[str, Any]:
        proto = parts[self.i_proto].strip().lower()
        if proto in _NOT_IP_PROTOS:
            raise MetaLine
        proto = _PROTOS.get(proto, proto)
        saddr = parts[self.i_saddr].strip()
        daddr = parts[self.i_daddr].strip()
        _check_address("SrcAddr", saddr)
        _check_address("DstAddr", daddr)
        ts = parse_time(parts[self.i_start].strip())
        duration = self._duration(parts, ts)
        direction = parts[self.i_dir].strip() if self.i_dir >= 0 else ""
        if not _DIRECTION.fullmatch(direction):
            raise ValueError(f"Dir {parts[self.i_dir]!r} is not an Argus direction")
        sport_text = _field(parts, self.i_sport)
        dport_text = _field(parts, self.i_dport)
        if proto == "icmp":
            sport, dport = icmp_type_code(sport_text, dport_text)
        else:
            sport, dport = _port("Sport", sport_text), _port("Dport", dport_text)
        sbytes, dbytes, spkts, dpkts = self._counts(parts)
        state_text = _field(parts, self.i_state)
        answered = dbytes > 0 or dpkts > 0
        payload = sbytes, dbytes
        if proto == "tcp":
            orig, resp = argus_tcp_flags(state_text, direction, answered, spkts, dpkts)
            state, history = tcp_state(orig, resp), tcp_history(orig, resp)
            payload = tcp_payload(orig, sbytes), tcp_payload(resp, dbytes)
        elif proto == "udp":
            state, history = udp_state(answered)
        else:
            state, history = "OTH", ""
        ev: dict[str, Any] = {
            "ts": ts,
            "uid": "A" + hashlib.blake2b(f"{lineno}\t{line}".encode(), digest_size=8).hexdigest(),
            "saddr": saddr, "sport": sport, "daddr": daddr, "dport": dport,
            "proto": proto, "service": "", "duration": duration,
            "sbytes": payload[0], "dbytes": payload[1], "spkts": spkts, "dpkts": dpkts,
            "state": state, "history": history,
            "orig_ip_bytes": sbytes, "resp_ip_bytes": dbytes,
        }
        if self.i_sapp >= 0:
            ev["sbytes"] = _count("SAppBytes", parts[self.i_sapp])
        if self.i_dapp >= 0:
            ev["dbytes"] = _count("DAppBytes", parts[self.i_dapp])
        if self.i_smac >= 0 and (smac := parts[self.i_smac].strip()):
            ev["smac"] = smac
        if self.i_dmac >= 0 and (dmac := parts[self.i_dmac].strip()):
            ev["dmac"] = dmac
        if self.i_label >= 0:
            ev["label"] = parts[self.i_label].strip()
        return ev

    def _duration(self, parts: list[str], ts: float) -> float:
        if self.i_dur >= 0 and (text := parts[self.i_dur].strip()):
            try:
                duration = float(text)
            except ValueError:
                raise ValueError(f"Dur {text!r} is not a number") from None
        elif self.i_last >= 0 and (text := parts[self.i_last].strip()):
            duration = parse_time(text) - ts
        else:
            return 0.0
        if not 0.0 <= duration < float("inf"):  # also NaN
            raise ValueError(f"negative or invalid duration {duration!r}")
        return duration

    def _counts(self, parts: list[str]) -> tuple[int, int, int, int]:
        """Bytes and packets per side; the responder's are totals minus the source's."""
        total_bytes = _count("TotBytes", _field(parts, self.i_totbytes))
        total_pkts = _count("TotPkts", _field(parts, self.i_totpkts))
        if self.i_sbytes >= 0:
            sbytes = _count("SrcBytes", parts[self.i_sbytes])
            if self.i_dbytes >= 0:
                dbytes = _count("DstBytes", parts[self.i_dbytes])
            elif total_bytes >= sbytes:
                dbytes = total_bytes - sbytes
            else:
                raise ValueError(f"TotBytes {total_bytes} is less than SrcBytes {sbytes}")
        else:
            # No split at all: everything is counted for the source.
            sbytes = total_bytes
            dbytes = _count("DstBytes", _field(parts, self.i_dbytes))
        if self.i_spkts >= 0:
            spkts = _count("SrcPkts", parts[self.i_spkts])
            if self.i_dpkts >= 0:
                dpkts = _count("DstPkts", parts[self.i_dpkts])
            elif total_pkts >= spkts:
                dpkts = total_pkts - spkts
            else:
                raise ValueError(f"TotPkts {total_pkts} is less than SrcPkts {spkts}")
        elif self.i_dpkts >= 0:
            dpkts = _count("DstPkts", parts[self.i_dpkts])
            spkts = max(0, total_pkts - dpkts)
        else:
            spkts, dpkts = split_packets(total_pkts, sbytes, dbytes)
        return sbytes, dbytes, spkts, dpkts


def split_packets(total: int, sbytes: int, dbytes: int) -> tuple[int, int]:
    """Packets per side when only the total is known: shared in proportion to the bytes."""
    if not dbytes or total < 2:
        return total, 0
    if not sbytes:
        return 0, total
    spkts = min(total - 1, max(1, round(total * sbytes / (sbytes + dbytes))))
    return spkts, total - spkts


def icmp_type_code(sport: str, dport: str) -> tuple[int, int]:
    """ICMP type and code (Zeek's sport and dport) from Argus's ICMP "ports".

    Argus prints either the type and the code ("0x03", "0x03"), or the type and
    code packed into one 16-bit value (code in the high byte: "0x0303" is port
    unreachable) with the echo identifier as the other "port".
    """
    kind = _port("Sport", sport)
    if sport.startswith("0x") and len(sport) == 6:
        return kind & 0xFF, kind >> 8
    code = _port("Dport", dport)
    return kind, code if code <= 0xFF else 0


def _field(parts: list[str], index: int) -> str:
    return parts[index].strip() if index >= 0 else ""


def _count(name: str, text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"{name} {text!r} is not a count")
    return int(text)


def _port(name: str, text: str) -> int:
    if not text:
        return 0
    try:
        port = int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a port number") from None
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"{name} {text!r} is not a port number")
    return port


_ADDRESSES: dict[str, bool] = {}


def _check_address(name: str, text: str) -> None:
    known = _ADDRESSES.get(text)
    if known is None:
        try:
            ipaddress.ip_address(text)
            known = True
        except ValueError:
            known = False
        if len(_ADDRESSES) >= _CACHE_LIMIT:
            _ADDRESSES.clear()
        _ADDRESSES[text] = known
    if not known:
        if _MAC.fullmatch(text):
            raise MetaLine  # a layer-2 record (LLC, STP, ...): not an IP flow
        raise ValueError(f"{name} {text!r} is not an IP address")


_DAYS: dict[str, float] = {}


def parse_time(text: str) -> float:
    """'2013/08/15 09:26:51.123456' (or with '-', or epoch seconds) -> epoch, read as UTC."""
    if len(text) >= 19 and text[4] in "/-" and text[10] in " T":
        day = _DAYS.get(text[:10])
        if day is None:
            try:
                when = datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), tzinfo=UTC)
            except ValueError:
                raise ValueError(f"StartTime {text!r}: not a date") from None
            day = when.timestamp()
            if len(_DAYS) >= 4096:
                _DAYS.clear()
            _DAYS[text[:10]] = day
        try:
            hours, minutes, seconds = int(text[11:13]), int(text[14:16]), float(text[17:])
        except ValueError:
            hours = -1
        if text[13] != ":" or text[16] != ":" or not (
            0 <= hours < 24 and 0 <= minutes < 60 and 0.0 <= seconds < 61.0
        ):
            raise ValueError(f"StartTime {text!r}: not a time")
        return day + hours * 3600 + minutes * 60 + seconds
    try:
        epoch = float(text)
    except ValueError:
        if ":" in text and "/" not in text and "-" not in text:
            raise ValueError(f"time {text!r} has no date (print dates or epoch seconds "
                             "with ra, e.g. ra -u)") from None
        raise ValueError(f"time {text!r}: not a date and time") from None
    if not epoch >= 0.0 or epoch == float("inf"):
        raise ValueError(f"time {text!r}: not a date and time")
    return epoch
