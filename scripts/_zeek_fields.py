"""The columns of the Zeek logs slips reads, for zeekgen's TSV headers and conn records."""

from __future__ import annotations

_ID = [("id.orig_h", "addr"), ("id.orig_p", "port"), ("id.resp_h", "addr"), ("id.resp_p", "port")]


def _f(spec: str) -> list[tuple[str, str]]:
    """'ts:time uid:string @id x:count' -> field list; '@id' stands for the four id.* fields."""
    out: list[tuple[str, str]] = []
    for item in spec.split():
        if item == "@id":
            out.extend(_ID)
        else:
            name, _, zeek_type = item.partition(":")
            out.append((name, zeek_type))
    return out


# Field lists of the Zeek logs slips reads, in Zeek's column order (Zeek 5/6 defaults).
FIELDS: dict[str, list[tuple[str, str]]] = {
    "conn": _f(
        "ts:time uid:string @id proto:enum service:string duration:interval "
        "orig_bytes:count resp_bytes:count conn_state:string local_orig:bool local_resp:bool "
        "missed_bytes:count history:string orig_pkts:count orig_ip_bytes:count resp_pkts:count "
        "resp_ip_bytes:count tunnel_parents:set[string]"
    ),
    "dns": _f(
        "ts:time uid:string @id proto:enum trans_id:count rtt:interval query:string "
        "qclass:count qclass_name:string qtype:count qtype_name:string rcode:count "
        "rcode_name:string AA:bool TC:bool RD:bool RA:bool Z:count answers:vector[string] "
        "TTLs:vector[interval] rejected:bool"
    ),
    "http": _f(
        "ts:time uid:string @id trans_depth:count method:string host:string uri:string "
        "referrer:string version:string user_agent:string origin:string "
        "request_body_len:count response_body_len:count status_code:count status_msg:string "
        "info_code:count info_msg:string tags:set[enum] username:string password:string "
        "proxied:set[string] orig_fuids:vector[string] orig_filenames:vector[string] "
        "orig_mime_types:vector[string] resp_fuids:vector[string] "
        "resp_filenames:vector[string] resp_mime_types:vector[string]"
    ),
    "ssl": _f(
        "ts:time uid:string @id version:string cipher:string curve:string server_name:string "
        "resumed:bool last_alert:string next_protocol:string established:bool "
        "cert_chain_fuids:vector[string] client_cert_chain_fuids:vector[string] "
        "subject:string issuer:string client_subject:string client_issuer:string "
        "validation_status:string ja3:string ja3s:string"
    ),
    "ssh": _f(
        "ts:time uid:string @id version:count auth_success:bool auth_attempts:count "
        "direction:enum client:string server:string cipher_alg:string mac_alg:string "
        "compression_alg:string kex_alg:string host_key_alg:string host_key:string"
    ),
    "smtp": _f(
        "ts:time uid:string @id trans_depth:count helo:string mailfrom:string "
        "rcptto:set[string] date:string from:string to:set[string] subject:string "
        "last_reply:string path:vector[addr] user_agent:string tls:bool fuids:vector[string] "
        "is_webmail:bool"
    ),
    "dhcp": _f(
        "ts:time uids:set[string] client_addr:addr server_addr:addr mac:string "
        "host_name:string client_fqdn:string domain:string requested_addr:addr "
        "assigned_addr:addr lease_time:interval client_message:string server_message:string "
        "msg_types:vector[string] duration:interval"
    ),
    "arp": _f(
        "ts:time operation:string src_mac:string dst_mac:string orig_h:addr resp_h:addr "
        "orig_hw:string resp_hw:string"
    ),
    "notice": _f(
        "ts:time uid:string @id fuid:string file_mime_type:string file_desc:string proto:enum "
        "note:enum msg:string sub:string src:addr dst:addr p:port n:count peer_descr:string "
        "actions:set[enum] suppress_for:interval"
    ),
    "software": _f(
        "ts:time host:addr host_p:port software_type:enum name:string version.major:count "
        "version.minor:count version.minor2:count version.minor3:count version.addl:string "
        "unparsed_version:string"
    ),
    "files": _f(
        "ts:time fuid:string tx_hosts:set[addr] rx_hosts:set[addr] conn_uids:set[string] "
        "source:string depth:count analyzers:set[string] mime_type:string filename:string "
        "duration:interval local_orig:bool is_orig:bool seen_bytes:count total_bytes:count "
        "missing_bytes:count overflow_bytes:count timedout:bool parent_fuid:string md5:string "
        "sha1:string sha256:string"
    ),
    "weird": _f("ts:time uid:string @id name:string addl:string notice:bool peer:string"),
    "tunnel": _f("ts:time uid:string @id tunnel_type:enum action:enum"),
}
