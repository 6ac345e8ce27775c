"""From one NFStream flow and its Track to Zeek conn.log, dns, http, ssl and ssh records."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from slipsd.sensors._flowmeter_dns import QCLASSES, QTYPES, RCODES
from slipsd.sensors._flowmeter_track import Track

Record = dict[str, Any]
PROTOS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}  # Zeek logs ICMPv6 as icmp too
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_PAIRS = tuple(_B62[n % 62] + _B62[n // 62] for n in range(62 * 62))  # low digit first
_NO_MAC = ("", "00:00:00:00:00:00")
# Request -> reply types: Zeek puts the reply type in id.resp_p, the code otherwise.
ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17, 10: 9, 9: 10}
ICMP6_PAIRS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130}
# nDPI master protocol -> the service name Zeek's analyzer for it logs.
SERVICES = {
    "HTTP": "http", "HTTP_Proxy": "http", "HTTP_Connect": "http", "TLS": "ssl", "DTLS": "dtls",
    "QUIC": "quic", "DNS": "dns", "MDNS": "dns", "LLMNR": "dns",
    "SSH": "ssh", "DHCP": "dhcp", "NTP": "ntp", "SMTP": "smtp", "SMTPS": "ssl",
    "FTP_CONTROL": "ftp", "FTP_DATA": "ftp-data", "IMAP": "imap", "IMAPS": "ssl",
    "POP3": "pop3", "POPS": "ssl", "SNMP": "snmp", "IRC": "irc", "SIP": "sip", "RDP": "rdp",
    "SMBv1": "smb", "SMBv23": "smb", "Kerberos": "krb", "LDAP": "ldap", "MySQL": "mysql",
    "Syslog": "syslog", "Radius": "radius", "SOCKS": "socks", "Modbus": "modbus",
    "DNP3": "dnp3", "DCE_RPC": "dce_rpc", "MQTT": "mqtt", "XMPP": "xmpp", "RFB": "rfb",
}
_OWN_SERVICE = {"http": "http", "ssl": "ssl", "ssh": "ssh", "dns": "dns", "dhcp": "dhcp"}


def make_uid(prefix: str, *parts: object) -> str:
    """A Zeek-looking uid (prefix + 17 base62 chars) that only depends on ``parts``."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=13).digest()
    number = int.from_bytes(digest, "big")
    chars = [prefix]
    for _ in range(8):  # two base62 digits a step (a uid per flow: the loop shows in profiles)
        number, rest = divmod(number, 3844)
        chars.append(_B62_PAIRS[rest])
    chars.append(_B62[number % 62])  # the 17th and last digit (least significant first)
    return "".join(chars)


def tcp_state(hist: str, orig_pkts: int, resp_pkts: int) -> str:
    """Zeek's conn_state from the history letters (uppercase: originator)."""
    if "S" in hist:
        if "h" not in hist:
            if "r" in hist:
                return "REJ"
            if "R" in hist:
                return "RSTOS0"
            if resp_pkts:
                return "OTH"  # the responder answered without a SYN-ACK: nothing to trust
            return "SH" if "F" in hist else "S0"
        resets = [c for c in hist if c in "Rr"]
        if resets:
            return "RSTO" if resets[0] == "R" else "RSTR"
        if "F" in hist:
            return "SF" if "f" in hist else "S2"
        return "S3" if "f" in hist else "S1"
    if "h" in hist:  # the SYN-ACK without the SYN: the capture began mid-handshake
        if "r" in hist:
            return "RSTRH"
        if "f" in hist:
            return "SHR"
    return "OTH"


def service(flow: Any, track: Track) -> str:
    for kind, _ in track.msgs:
        if kind in _OWN_SERVICE:
            return _OWN_SERVICE[kind]
    if flow.application_is_guessed:
        return ""  # a guess from the port alone: Zeek names a service only once it parsed it
    return SERVICES.get(str(flow.application_name).split(".", 1)[0], "")


def conn_record(flow: Any, track: Track) -> tuple[Record, bool]:
    """The conn.log record of a TCP, UDP or ICMP flow, and whether orig/resp were swapped.

    Like Zeek, a TCP flow whose first packet is a SYN-ACK is logged from the side
    that sent the SYN (history starts with '^').
    """
    proto = PROTOS[flow.protocol]
    orig = [flow.src_ip, flow.src_port, flow.src2dst_bytes, flow.src2dst_packets, track.ipb0,
            flow.src_mac]
    resp = [flow.dst_ip, flow.dst_port, flow.dst2src_bytes, flow.dst2src_packets, track.ipb1,
            flow.dst_mac]
    hist = track.hist
    if track.orig is not None:
        # The rest of a connection cut by the active timeout (live only): its first packet
        # may be the responder's, so the side that began the connection decides.
        flipped = track.orig != (flow.src_ip, flow.src_port)
    else:
        flipped = proto == "tcp" and hist.startswith("H")
    if flipped:
        orig, resp = resp, orig
        hist = "^" + hist.swapcase()
    if proto == "icmp":
        kind, code = track.icmp or (0, 0)
        pairs = ICMP6_PAIRS if flow.protocol == 58 else ICMP4_PAIRS
        orig[1], resp[1] = kind, pairs.get(kind, code)
        state = "OTH"  # what Zeek logs for every ICMP "connection"
        hist = ""
    elif proto == "udp":
        state = "SF" if resp[3] else "S0"
        hist = ("D" if orig[2] else "") + ("d" if resp[2] else "")
    else:
        state = tcp_state(hist, orig[3], resp[3])
    first = flow.bidirectional_first_seen_ms
    uid = make_uid("C", first, proto, orig[0], orig[1], resp[0], resp[1], flow.vlan_id,
                   flow.tunnel_id)
    rec: Record = {
        "ts": first / 1000,
        "uid": uid,
        "id.orig_h": orig[0],
        "id.orig_p": orig[1],
        "id.resp_h": resp[0],
        "id.resp_p": resp[1],
        "proto": proto,
    }
    name = service(flow, track)
    if name:
        rec["service"] = name
    rec.update({
        "duration": (flow.bidirectional_last_seen_ms - first) / 1000,
        "orig_bytes": orig[2],
        "resp_bytes": resp[2],
        "conn_state": state,
        "missed_bytes": 0,
        "history": hist,
        "orig_pkts": orig[3],
        "orig_ip_bytes": orig[4],
        "resp_pkts": resp[3],
        "resp_ip_bytes": resp[4],
    })
    if flow.vlan_id:
        rec["vlan"] = flow.vlan_id
    if orig[5] not in _NO_MAC:
        rec["orig_l2_addr"] = orig[5]
    if resp[5] not in _NO_MAC:
        rec["resp_l2_addr"] = resp[5]
    return rec, flipped


def flow_records(flow: Any, track: Track) -> list[tuple[str, Record]]:
    """(log, record) of one flow: its conn.log record first, then its dns, http, ssl and
    ssh records; [] for a flow of another IP protocol (conn.log has no place for it).

    DHCP messages (``track.msgs`` of kind "dhcp") are not among them: an exchange spans
    flows, so the caller groups them with the conn uid (DhcpLog).
    """
    if flow.protocol not in PROTOS:
        return []
    conn, flipped = conn_record(flow, track)
    return [("conn", conn), *app_records(conn, track, flipped)]


def app_records(conn: Record, track: Track, flipped: bool) -> Iterator[tuple[str, Record]]:
    """dns, http, ssl and ssh records of the flow (dhcp is gathered across flows elsewhere)."""
    ident = {k: conn[k] for k in ("uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")}
    for kind, msg in track.msgs:
        if kind == "dhcp":
            continue
        rec: Record = {"ts": msg["ts"] / 1000, **ident}
        if kind == "dns":
            rec.update(_dns_fields(conn["proto"], msg))
        elif kind == "ssh":
            client, server = ("dir1", "dir0") if flipped else ("dir0", "dir1")
            banner = msg.get(client) or msg.get(server) or ""
            rec["version"] = 1 if banner.startswith("SSH-1.") and "1.99" not in banner else 2
            if client in msg:
                rec["client"] = msg[client]
            if server in msg:
                rec["server"] = msg[server]
        else:
            rec.update((k, v) for k, v in msg.items() if k != "ts")
        yield kind, rec


def _dns_fields(proto: str, msg: dict[str, Any]) -> Record:
    out: Record = {"proto": proto, "trans_id": msg["trans_id"]}
    if "rtt" in msg:
        out["rtt"] = msg["rtt"]
    if "query" in msg:
        out["query"] = msg["query"]
    if "qtype" in msg:
        qclass, qtype = msg["qclass"], msg["qtype"]
        out.update(qclass=qclass, qclass_name=QCLASSES.get(qclass, f"qclass-{qclass}"),
                   qtype=qtype, qtype_name=QTYPES.get(qtype, f"query-{qtype}"))
    if "rcode" in msg:
        out.update(rcode=msg["rcode"], rcode_name=RCODES.get(msg["rcode"], f"rcode-{msg['rcode']}"))
    out.update((k, msg[k]) for k in ("AA", "TC", "RD", "RA", "Z"))
    if "rcode" in msg:
        out.update(answers=msg["answers"], TTLs=msg["TTLs"])
    return out
