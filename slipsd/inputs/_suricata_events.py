"""Suricata eve.json events -> Zeek-like slips events (conn, http, ssl, ssh, files).

Each function takes one decoded eve object and returns the event, or raises
ValueError / TypeError / KeyError with a short reason when a field it needs is
unusable. DNS, whose queries and answers are separate eve lines, is joined in
_suricata_dns.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from slipsd.inputs._flowstate import tcp_history, tcp_payload, tcp_state, udp_state

Event = dict[str, Any]

_PROTOS = {"ipv6-icmp": "icmp", "icmpv6": "icmp", "1": "icmp", "58": "icmp", "6": "tcp",
           "17": "udp"}
# Suricata's app-layer names where Zeek's service names differ; "failed" is Suricata
# saying it could not tell, which Zeek writes as no service.
_SERVICES = {"tls": "ssl", "dcerpc": "dce_rpc", "krb5": "krb", "failed": "", "unknown": ""}


def iso_time(value: Any, name: str = "timestamp") -> float:
    """'2021-06-06T15:59:46.457984+0200' -> epoch seconds; a time without offset is UTC."""
    if not isinstance(value, str):
        raise ValueError(f"{name}: missing or not a string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} {value!r}: not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def uid_of(obj: Event, lineno: int, line: str) -> str:
    """The same uid for all records of one flow (as Zeek's uid links its logs)."""
    flow_id = obj.get("flow_id")
    seed = f"f{flow_id}" if type(flow_id) is int else f"l{lineno}\t{line}"
    return "S" + hashlib.blake2b(seed.encode(), digest_size=8).hexdigest()


def _int(obj: Event, key: str, default: int = 0) -> int:
    value = obj.get(key, default)
    if type(value) is not int:
        if value is None:
            return default
        raise ValueError(f"field {key!r}: not an integer: {value!r}")
    return value


def _str(obj: Event, key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"field {key!r}: not a string: {value!r}")
    return value


def _section(obj: Event, key: str) -> Event:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"no {key!r} object")
    return value


def proto_of(obj: Event) -> str:
    value = obj.get("proto")
    text = str(value).lower() if isinstance(value, str | int) else ""
    return _PROTOS.get(text, text)


def common(obj: Event, lineno: int, line: str) -> Event:
    """ts, uid and the connection's addresses and ports, Zeek's names."""
    saddr, daddr = _str(obj, "src_ip"), _str(obj, "dest_ip")
    if not saddr or not daddr:
        raise ValueError("missing src_ip or dest_ip")
    return {
        "ts": iso_time(obj.get("timestamp")), "uid": uid_of(obj, lineno, line),
        "saddr": saddr, "sport": _int(obj, "src_port"),
        "daddr": daddr, "dport": _int(obj, "dest_port"),
    }


def _hex_flags(tcp: Event, key: str) -> int | None:
    value = tcp.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"field tcp.{key}: not hex flags: {value!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise ValueError(f"field tcp.{key}: not hex flags: {value!r}") from None


def flow(obj: Event, lineno: int, line: str) -> Event:
    ev = common(obj, lineno, line)
    info = _section(obj, "flow")
    proto = proto_of(obj)
    start = info.get("start")
    if start is not None:
        ev["ts"] = iso_time(start, "flow.start")
    end = info.get("end")
    if end is not None:
        duration = max(0.0, iso_time(end, "flow.end") - ev["ts"])
    else:
        duration = float(_int(info, "age"))
    spkts, dpkts = _int(info, "pkts_toserver"), _int(info, "pkts_toclient")
    sbytes, dbytes = _int(info, "bytes_toserver"), _int(info, "bytes_toclient")
    payload = sbytes, dbytes
    if proto == "tcp":
        tcp = obj.get("tcp")
        tcp = tcp if isinstance(tcp, dict) else {}
        orig, resp = _hex_flags(tcp, "tcp_flags_ts"), _hex_flags(tcp, "tcp_flags_tc")
        if orig is None or resp is None:
            # Only the flags of both directions together: the responder gets them
            # too when it sent anything (a rough guess, see the docs).
            both = _hex_flags(tcp, "tcp_flags") or 0
            orig, resp = both, both if dpkts else 0
        state, history = tcp_state(orig, resp), tcp_history(orig, resp)
        payload = tcp_payload(orig, sbytes), tcp_payload(resp, dbytes)
    elif proto == "udp":
        state, history = udp_state(dpkts > 0)
    else:
        state, history = "OTH", ""
        if proto == "icmp":
            ev["sport"], ev["dport"] = _int(obj, "icmp_type"), _int(obj, "icmp_code")
    app = _str(obj, "app_proto").lower()
    ev.update({
        "proto": proto, "service": _SERVICES.get(app, app), "duration": duration,
        "sbytes": payload[0], "dbytes": payload[1], "spkts": spkts, "dpkts": dpkts,
        "state": state, "history": history,
        "orig_ip_bytes": sbytes, "resp_ip_bytes": dbytes,
    })
    return ev


def http(obj: Event, lineno: int, line: str) -> Event:
    ev = common(obj, lineno, line)
    info = _section(obj, "http")
    protocol = _str(info, "protocol")
    tx_id = obj.get("tx_id")
    content_type = _str(info, "http_content_type").split(";", 1)[0].strip()
    ev.update({
        "trans_depth": tx_id + 1 if type(tx_id) is int else 1,
        "method": _str(info, "http_method"),
        "host": _str(info, "hostname"),
        "uri": _str(info, "url"),
        "referrer": _str(info, "http_refer"),
        "version": protocol.partition("/")[2] if "/" in protocol else protocol,
        "user_agent": _str(info, "http_user_agent"),
        "status_code": _int(info, "status"),
        "response_body_len": _int(info, "length"),
        "resp_mime_types": [content_type] if content_type else [],
    })
    return ev


def _tls_version(text: str) -> str:
    """Suricata's 'TLS 1.2' is Zeek's 'TLSv12'; 'SSLv3' is the same in both."""
    if text.startswith("TLS "):
        return "TLSv" + text[4:].replace(".", "")
    return "" if text == "UNDETERMINED" else text


def _hash(info: Event, key: str) -> str:
    value = info.get(key)
    if isinstance(value, dict):
        return _str(value, "hash")
    return ""


def tls(obj: Event, lineno: int, line: str) -> Event:
    ev = common(obj, lineno, line)
    info = _section(obj, "tls")
    ev.update({
        "server_name": _str(info, "sni"),
        "version": _tls_version(_str(info, "version")),
        "subject": _str(info, "subject"),
        "issuer": _str(info, "issuerdn"),
        "serial": _str(info, "serial"),
        "not_valid_before": _str(info, "notbefore"),
        "not_valid_after": _str(info, "notafter"),
        "resumed": info.get("session_resumed") is True,
        "ja3": _hash(info, "ja3"),
        "ja3s": _hash(info, "ja3s"),
    })
    return ev


def _ssh_banner(side: Event) -> str:
    proto, software = _str(side, "proto_version"), _str(side, "software_version")
    return f"SSH-{proto}-{software}" if proto or software else ""


def _ssh_version(client: Event, server: Event) -> int:
    """Zeek's ssh.log version: 2 when either side speaks 2.0 ("1.99" servers speak both)."""
    texts = [_str(client, "proto_version"), _str(server, "proto_version")]
    if any(t.startswith("2") for t in texts):
        return 2
    major = next((t for t in texts if t), "").partition(".")[0]
    return int(major) if major.isdigit() else 0


def ssh(obj: Event, lineno: int, line: str) -> Event:
    ev = common(obj, lineno, line)
    info = _section(obj, "ssh")
    client = info.get("client")
    server = info.get("server")
    client = client if isinstance(client, dict) else {}
    server = server if isinstance(server, dict) else {}
    ev.update({
        "client": _ssh_banner(client),
        "server": _ssh_banner(server),
        "version": _ssh_version(client, server),
        "hassh": _hash(client, "hassh"),
        "hasshServer": _hash(server, "hassh"),
    })
    return ev


def fileinfo(obj: Event, lineno: int, line: str) -> Event:
    ev = common(obj, lineno, line)
    info = _section(obj, "fileinfo")
    size = _int(info, "size")
    app = _str(obj, "app_proto")
    content_type = ""
    if isinstance(obj.get("http"), dict):
        content_type = _str(obj["http"], "http_content_type").split(";", 1)[0].strip()
    fid = info.get("file_id", info.get("fileid", ""))
    fuid = hashlib.blake2b(f"{ev['uid']}\t{fid}\t{lineno}".encode(), digest_size=8).hexdigest()
    ev.update({
        "fuid": "F" + fuid,
        # Suricata gives the file's direction: the source sent it.
        "tx_hosts": [ev["saddr"]], "rx_hosts": [ev["daddr"]], "conn_uids": [ev["uid"]],
        "source": app.upper(),
        "filename": _str(info, "filename"),
        "mime_type": content_type,
        "total_bytes": size, "seen_bytes": size,
        "md5": _str(info, "md5"), "sha1": _str(info, "sha1"), "sha256": _str(info, "sha256"),
    })
    return ev
