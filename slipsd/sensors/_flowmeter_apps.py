"""Application messages the flowmeter logs from TCP payloads: HTTP, TLS hellos, SSH banners.

Each parser takes the bytes of one message as they start a TCP payload (possibly
gathered from a few segments) and raises ValueError/IndexError/struct.error when
they are not that message, so callers can try the next one.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from slipsd.sensors._flowmeter_dns import escape

HTTP_METHODS = tuple(
    m.encode() + b" "
    for m in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "TRACE", "PATCH",
              "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH")
)
HTTP_RESPONSE = b"HTTP/"
HEADERS_END = b"\r\n\r\n"
MAX_HEADERS = 16384  # bytes of request or response head gathered before giving up on its end
TLS_HANDSHAKE = 0x16
TLS_VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv10", 0x0302: "TLSv11", 0x0303: "TLSv12",
                0x0304: "TLSv13"}
_HTTP_HEADERS = {b"host": "host", b"user-agent": "user_agent", b"referer": "referrer",
                 b"origin": "origin"}


def _lines(head: bytes) -> list[bytes]:
    return head.split(HEADERS_END, 1)[0].replace(b"\r\n", b"\n").split(b"\n")


def parse_http_request(data: bytes) -> dict[str, Any]:
    lines = _lines(data)
    parts = lines[0].split(b" ")
    if len(parts) < 3 or not parts[-1].startswith(HTTP_RESPONSE):
        raise ValueError("not an HTTP request line")
    req: dict[str, Any] = {
        "method": escape(parts[0]),
        "uri": escape(b" ".join(parts[1:-1])),
        "version": escape(parts[-1][len(HTTP_RESPONSE):]),
    }
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        key = _HTTP_HEADERS.get(name.strip().lower()) if sep else None
        if key is not None and key not in req:
            req[key] = escape(value.strip())
    return req


def parse_http_response(data: bytes) -> dict[str, Any]:
    version, _, rest = _lines(data)[0].partition(b" ")
    code, _, msg = rest.partition(b" ")
    return {"status_code": int(code), "status_msg": escape(msg.strip()),
            "version": escape(version[len(HTTP_RESPONSE):])}


def tls_record_size(data: bytes) -> int:
    """Bytes of the TLS record ``data`` starts with (header included); 0 if not a handshake."""
    if len(data) < 5 or data[0] != TLS_HANDSHAKE or data[1] != 3:
        return 0
    return 5 + int.from_bytes(data[3:5], "big")


def _grease(value: int) -> bool:
    # RFC 8701 reserved values (0x0a0a, 0x1a1a, ...), left out of JA3 like every JA3 tool does.
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def _u16s(raw: bytes) -> list[int]:
    return [v for (v,) in struct.iter_unpack("!H", raw[: len(raw) & ~1])]


def _hello(data: bytes, kind: int) -> tuple[int, bytes, bool]:
    """(legacy version, body, whether the body is whole) of a handshake of ``kind``."""
    if data[5] != kind:
        raise ValueError("not the expected TLS handshake message")
    length = int.from_bytes(data[6:9], "big")
    body = data[9 : 9 + length]
    version = struct.unpack_from("!H", body)[0]
    return version, body, len(body) == length


def _extensions(body: bytes, off: int) -> list[tuple[int, bytes]]:
    if off + 2 > len(body):
        return []  # hellos may end without an extensions block
    end = min(len(body), off + 2 + struct.unpack_from("!H", body, off)[0])
    off += 2
    exts = []
    while off + 4 <= end:
        etype, elen = struct.unpack_from("!HH", body, off)
        exts.append((etype, body[off + 4 : off + 4 + elen]))
        off += 4 + elen
    return exts


def parse_client_hello(data: bytes) -> dict[str, Any]:
    """SNI and JA3 fingerprint of a ClientHello (no JA3 when the hello is not whole)."""
    version, body, whole = _hello(data, 1)
    off = 34 + 1 + body[34]  # after the random and the session id
    cipher_len = struct.unpack_from("!H", body, off)[0]
    ciphers = [c for c in _u16s(body[off + 2 : off + 2 + cipher_len]) if not _grease(c)]
    off += 2 + cipher_len
    off += 1 + body[off]  # compression methods
    exts = _extensions(body, off)
    hello: dict[str, Any] = {}
    groups: list[int] = []
    points: list[int] = []
    for etype, value in exts:
        if etype == 0 and len(value) > 5 and value[2] == 0:  # server_name, host_name type
            size = struct.unpack_from("!H", value, 3)[0]
            hello["server_name"] = escape(value[5 : 5 + size])
        elif etype == 10 and len(value) >= 2:
            groups = [g for g in _u16s(value[2:]) if not _grease(g)]
        elif etype == 11 and value:
            points = list(value[1 : 1 + value[0]])
    fields = [
        str(version),
        "-".join(map(str, ciphers)),
        "-".join(str(e) for e, _ in exts if not _grease(e)),
        "-".join(map(str, groups)),
        "-".join(map(str, points)),
    ]
    if whole:  # a JA3 of part of the extensions would name some other client
        hello["ja3"] = hashlib.md5(",".join(fields).encode(), usedforsecurity=False).hexdigest()
    return hello


def parse_server_hello(data: bytes) -> dict[str, Any]:
    """Negotiated version (TLS 1.3 says it in supported_versions) and JA3S of a ServerHello."""
    version, body, _ = _hello(data, 2)
    off = 34 + 1 + body[34]  # after the random and the session id
    cipher = struct.unpack_from("!H", body, off)[0]
    exts = _extensions(body, off + 3)
    chosen = version
    for etype, value in exts:
        if etype == 43 and len(value) == 2:
            chosen = struct.unpack("!H", value)[0]
    fields = [str(version), str(cipher), "-".join(str(e) for e, _ in exts)]
    return {
        "version": TLS_VERSIONS.get(chosen, f"unknown-{chosen}"),
        "ja3s": hashlib.md5(",".join(fields).encode(), usedforsecurity=False).hexdigest(),
    }


def ssh_banner(data: bytes) -> str:
    """The identification line an SSH peer sends first ('SSH-2.0-OpenSSH_9.6')."""
    if not data.startswith(b"SSH-"):
        raise ValueError("not an SSH banner")
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    return escape(line[:255])
