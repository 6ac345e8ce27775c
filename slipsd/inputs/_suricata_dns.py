"""Suricata DNS eve lines -> one Zeek-like dns.log record per transaction.

Suricata logs a query and its answer as separate lines (in eve format 1 even one
line per answer record); Zeek logs one record per transaction, with the query's
time. Lines are joined by flow and DNS transaction id: the line that opens a
transaction becomes the record, the lines merged into it are counted as meta.
Formats understood: 1 (one answer record per line: rdata, ttl), 2 (Suricata
4.1-7: "answers" list and/or "grouped" by type) and 3 (Suricata 8: "queries",
"answers", type request/response).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from slipsd.inputs._suricata_events import Event, common, proto_of

# Transactions waiting for (more of) their answer; the oldest goes out beyond it.
PENDING_LIMIT = 10_000
QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "NULL": 10, "PTR": 12, "HINFO": 13, "MX": 15,
          "TXT": 16, "AAAA": 28, "SRV": 33, "NAPTR": 35, "OPT": 41, "DS": 43, "RRSIG": 46,
          "NSEC": 47, "DNSKEY": 48, "SVCB": 64, "HTTPS": 65, "AXFR": 252, "ANY": 255}
RCODES = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
          "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10}
_FLAGS = {"aa": "AA", "tc": "TC", "rd": "RD", "ra": "RA"}


def _question(dns: dict[str, Any]) -> tuple[str, str]:
    name, kind = dns.get("rrname"), dns.get("rrtype")
    queries = dns.get("queries")
    if name is None and isinstance(queries, list) and queries and isinstance(queries[0], dict):
        name, kind = queries[0].get("rrname"), queries[0].get("rrtype")
    return (name if isinstance(name, str) else "", kind if isinstance(kind, str) else "")


def _add_answers(ev: Event, dns: dict[str, Any]) -> bool:
    """Add the answer records of one line; True when the line holds the whole answer."""
    answers = dns.get("answers")
    if isinstance(answers, list):
        for rr in answers:
            if isinstance(rr, dict) and isinstance(rr.get("rdata"), str):
                ev["answers"].append(rr["rdata"])
                ttl = rr.get("ttl")
                ev["TTLs"].append(float(ttl) if isinstance(ttl, int | float) else 0.0)
        return True
    grouped = dns.get("grouped")
    if isinstance(grouped, dict):
        # Only the data, no TTLs, in this format: TTLs stays shorter than answers.
        for values in grouped.values():
            if isinstance(values, list):
                ev["answers"].extend(v for v in values if isinstance(v, str))
        return True
    if isinstance(dns.get("rdata"), str):  # format 1: one record per line
        ev["answers"].append(dns["rdata"])
        ttl = dns.get("ttl")
        ev["TTLs"].append(float(ttl) if isinstance(ttl, int | float) else 0.0)
        return False
    return "version" in dns  # format 2 or 3 without answers (NXDOMAIN...): complete


class _Tx:
    """One transaction being joined; ``answering`` once format-1 answer lines arrive."""

    __slots__ = ("answering", "ev")

    def __init__(self, ev: Event) -> None:
        self.ev = ev
        self.answering = False


class DnsJoiner:
    """Joins query and answer lines; ``feed`` says whether a line opened a record.

    Queries with the same flow and id (a retransmission, or a packet captured
    twice) wait in line, and each answer goes to the oldest one still waiting.
    """

    def __init__(self) -> None:
        self.pending: dict[Hashable, list[_Tx]] = {}
        self.size = 0

    def feed(self, obj: Event, lineno: int, line: str) -> tuple[bool, list[Event]]:
        dns = obj.get("dns")
        if not isinstance(dns, dict):
            raise ValueError("no 'dns' object")
        kind = dns.get("type")
        if kind not in ("query", "answer", "request", "response"):
            raise ValueError(f"dns.type {kind!r} is neither a query nor an answer")
        key = self._key(obj, dns)
        done: list[Event] = []
        waiting = self.pending.setdefault(key, [])
        if kind in ("query", "request"):
            waiting.append(_Tx(self._record(obj, dns, lineno, line)))
            self.size += 1
            opened = True
        else:
            tx = next((t for t in waiting if t.answering), None) or next(iter(waiting), None)
            opened = tx is None
            if tx is None:
                tx = _Tx(self._record(obj, dns, lineno, line))
                _client_side(tx.ev)
                waiting.append(tx)
                self.size += 1
            ev = tx.ev
            rcode = dns.get("rcode")
            if isinstance(rcode, str):
                ev["rcode_name"] = rcode
                ev["rcode"] = RCODES.get(rcode, -1)
            for flag, name in _FLAGS.items():
                if isinstance(dns.get(flag), bool):
                    ev[name] = dns[flag]
            if _add_answers(ev, dns):
                waiting.remove(tx)
                self.size -= 1
                done.append(ev)
            else:
                tx.answering = True
        if not waiting:
            del self.pending[key]
        while self.size > PENDING_LIMIT:
            oldest = next(iter(self.pending))
            done.append(self.pending[oldest].pop(0).ev)
            self.size -= 1
            if not self.pending[oldest]:
                del self.pending[oldest]
        return opened, done

    def flush(self) -> list[Event]:
        done = [tx.ev for waiting in self.pending.values() for tx in waiting]
        self.pending.clear()
        self.size = 0
        return done

    @staticmethod
    def _key(obj: Event, dns: dict[str, Any]) -> Hashable:
        flow_id = obj.get("flow_id")
        if type(flow_id) is int:
            return flow_id, dns.get("id")
        ends = sorted([(str(obj.get("src_ip")), str(obj.get("src_port"))),
                       (str(obj.get("dest_ip")), str(obj.get("dest_port")))])
        return tuple(ends), dns.get("id")

    @staticmethod
    def _record(obj: Event, dns: dict[str, Any], lineno: int, line: str) -> Event:
        ev = common(obj, lineno, line)
        query, qtype = _question(dns)
        trans_id = dns.get("id")
        ev.update({
            "proto": proto_of(obj),
            "trans_id": trans_id if type(trans_id) is int else 0,
            "query": query, "qtype_name": qtype, "qtype": QTYPES.get(qtype, 0),
            "rcode_name": "", "answers": [], "TTLs": [],
        })
        return ev


def _client_side(ev: Event) -> None:
    """Older Suricata wrote answers from the server's side; Zeek's record is the client's."""
    if ev["sport"] == 53 and ev["dport"] != 53:
        ev["saddr"], ev["daddr"] = ev["daddr"], ev["saddr"]
        ev["sport"], ev["dport"] = ev["dport"], ev["sport"]
