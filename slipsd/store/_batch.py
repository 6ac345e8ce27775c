"""The bus's batches: how a list of events becomes one stream entry, and back.

A batch is written column-wise, the key names of each event shape once and then one
row of values per event, in MessagePack when its C extension is installed (JSON
otherwise): every module host decodes every batch of its channels, so decoding is the
bus's main per-event cost. An analysis keeps every entry until it ends, so batches are
stored compressed: Zstandard in entry field ``s`` when Debian's python3-zstandard is
installed, else zlib in ``z``; small messages stay plain in ``d``. Readers accept all three.
"""

from __future__ import annotations

import json
import threading
import zlib
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Final

from slipsd.events import MESSAGE_VERSION

try:
    import msgpack
except ImportError:  # pragma: no cover - Debian's python3-msgpack is a dependency
    msgpack = None
# Written in MessagePack only by its C extension: msgpack's pure-Python fallback (what pip
# builds of 1.0.3 on Python 3.11) is ten times slower than JSON. Either is read.
_PACK = msgpack is not None and msgpack.Packer.__module__ == "msgpack._cmsgpack"

try:
    import zstandard
except ImportError:  # pragma: no cover - Debian's python3-zstandard is a dependency
    zstandard = None  # type: ignore[assignment]

EOS: Final = "eos"
# Entry fields: "d" holds a message as it is, "s" the same message Zstandard-compressed,
# "z" zlib-compressed (without python3-zstandard).
PLAIN: Final = "d"
ZSTD: Final = "s"
COMPRESSED: Final = "z"
COMPRESS_FROM: Final = 256  # bytes: smaller messages gain nothing from compression
# Both at their fastest level: a batch shrinks to about a third (addresses, names and key
# strings repeat). Zstandard's is 3.5x quicker than zlib's to write and to read, and 10 %
# smaller (gen_zeek batches: 0.33 against 1.14 us per event written, 0.11 against 0.39 read,
# 45 against 50 bytes), so writer and readers spend 5 s less CPU per million flows.
COMPRESS_LEVEL: Final = 1
# (De)compressors keep state between calls and must not be shared between threads.
_codecs = threading.local()


def _zstd_compress(data: bytes) -> bytes:
    compressor = getattr(_codecs, "compressor", None)
    if compressor is None:
        compressor = _codecs.compressor = zstandard.ZstdCompressor(level=COMPRESS_LEVEL)
    packed: bytes = compressor.compress(data)
    return packed


def _zstd_decompress(data: bytes) -> bytes:
    decompressor = getattr(_codecs, "decompressor", None)
    if decompressor is None:
        decompressor = _codecs.decompressor = zstandard.ZstdDecompressor()
    plain: bytes = decompressor.decompress(data)
    return plain


@dataclass(frozen=True)
class Entry:
    """One batch of one channel, kept as it came from Redis until its events are asked for.

    ``events`` decodes on every access and keeps nothing: a lagging reader holds up to
    ``Consumer.count`` entries per channel at once, several times larger as dicts than
    packed (decoded on read, a module host held up to 270,000 events at once). Read it
    once per entry and let it go when the batch is handled."""

    channel: str
    id: str
    fields: dict[Any, Any]
    eos: bool = False

    @property
    def seq(self) -> int:
        return _seq(self.id)

    @property
    def events(self) -> list[dict[str, Any]]:
        return _events(self.channel, self.id, _body(self.fields))


def _seq(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


# Message versions: 1 is {"v": 1, "events": [...]} (or eos), JSON; 2 is the
# column-wise batch {"v": 2, "keys": [[key, ...], ...], "rows": [[value, ..., shape], ...]}.
COLUMNS_VERSION: Final = 2


def encode_events(events: list[dict[str, Any]] | None) -> bytes | str:
    if events is None:
        return json.dumps({"v": MESSAGE_VERSION, EOS: True})
    # Events of one log type share their keys: naming them once per batch halves the
    # bytes held in Redis and spares every reader the per-event key strings.
    shapes: dict[tuple[str, ...], int] = {}
    rows: list[list[Any]] = []
    for event in events:
        shape = tuple(event)
        index = shapes.get(shape)
        if index is None:
            index = shapes[shape] = len(shapes)
        # The shape goes last so that zip(names, row) stops before it without a copy.
        rows.append([*event.values(), index])
    body = {"v": COLUMNS_VERSION, "keys": list(shapes), "rows": rows}
    if _PACK:
        try:
            packed: bytes = msgpack.packb(body)
            return packed
        except (TypeError, ValueError, OverflowError):
            pass  # beyond MessagePack (ints over 64 bits, lone surrogates): JSON says why
    return json.dumps(body, separators=(",", ":"))


def entry_fields(events: list[dict[str, Any]] | None,
                  compress: bool = True) -> dict[str, bytes | str]:
    """The stream entry of one batch (None: the end-of-stream marker).

    Streams hold every entry until the analysis ends (restarted readers replay it all):
    compressing batches keeps Redis' memory well under that of the input files."""
    body = encode_events(events)
    if compress and len(body) >= COMPRESS_FROM:
        data = body.encode() if isinstance(body, str) else body
        if zstandard is not None:
            packed, field = _zstd_compress(data), ZSTD
        else:
            packed, field = zlib.compress(data, COMPRESS_LEVEL), COMPRESSED
        if len(packed) < len(data):
            return {field: packed}
    return {PLAIN: body}


def _loads(data: bytes | str) -> Any:
    # JSON text always starts with "{"; a MessagePack map never does (0x80-0x8f, 0xde).
    if msgpack is not None and isinstance(data, bytes) and data[:1] != b"{":
        return msgpack.unpackb(data, strict_map_key=False)
    return json.loads(data)


EOS_MAX_BYTES: Final = 64  # an eos message is far smaller; a batch of events rarely is


def decode_entry(channel: str, entry_id: str, fields: dict[Any, Any]) -> Entry:
    """The entry of a stream reply; only a small plain message is looked into (for eos)."""
    raw = fields.get(b"d")
    if raw is None:
        raw = fields.get(PLAIN)
    eos = raw is not None and len(raw) <= EOS_MAX_BYTES and bool(_loads(raw).get(EOS))
    return Entry(channel, entry_id, fields, eos)


def _body(fields: dict[Any, Any]) -> Any:
    # Fields come as bytes from Redis, as str from a caller holding what it wrote.
    packed = fields.get(b"s")
    if packed is None:
        packed = fields.get(ZSTD)
    if packed is not None:
        if zstandard is None:
            raise ValueError("a Zstandard-compressed batch, and python3-zstandard is missing")
        return _loads(_zstd_decompress(packed))
    packed = fields.get(b"z")
    if packed is None:
        packed = fields.get(COMPRESSED)
    if packed is not None:
        return _loads(zlib.decompress(packed))
    raw = fields.get(b"d")
    return _loads(raw if raw is not None else fields[PLAIN])


def _events(channel: str, entry_id: str, body: Any) -> list[dict[str, Any]]:
    version = body.get("v")
    if version == COLUMNS_VERSION:
        shapes, rows = body["keys"], body["rows"]
        # map(zip, ...) rather than zip(names, row, strict=False) per row: the keyword
        # alone nearly doubles the cost of building an event. A row of several shapes
        # ends with its shape's index, which zip leaves out.
        if len(shapes) == 1:
            return list(map(dict, map(zip, repeat(shapes[0]), rows)))
        return list(map(dict, map(zip, [shapes[row[-1]] for row in rows], rows)))
    if version != MESSAGE_VERSION:
        raise ValueError(f"{channel} entry {entry_id}: unsupported message version {version}")
    if body.get(EOS):
        return []
    events: list[dict[str, Any]] = body["events"]
    return events
