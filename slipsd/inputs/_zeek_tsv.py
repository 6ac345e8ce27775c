"""Zeek TSV (LogAscii) headers and the per-header row converters."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slipsd.inputs._zeek_norm import Event, Schema

Converter = Callable[[str], Any]

_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_BOOLS = {"T": True, "F": False}
_INT_TYPES = frozenset({"count", "int", "port", "counter"})
_FLOAT_TYPES = frozenset({"double", "interval", "time"})


def unescape(text: str) -> str:
    """Undo Zeek's \\xNN escaping; the escaped bytes are usually UTF-8 pieces."""
    if "\\x" not in text:
        return text
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(text):
        out += text[pos : match.start()].encode("utf-8", "surrogateescape")
        out.append(int(match.group(1), 16))
        pos = match.end()
    out += text[pos:].encode("utf-8", "surrogateescape")
    # Bytes that are not UTF-8 go back to Zeek's own \xNN spelling.
    return out.decode("utf-8", "backslashreplace")


def _bool(text: str) -> bool:
    return _BOOLS[text]


def _element_converter(zeek_type: str, escaped: bool) -> Converter:
    if zeek_type in _INT_TYPES:
        return int
    if zeek_type in _FLOAT_TYPES:
        return float
    if zeek_type == "bool":
        return _bool
    return unescape if escaped else str


def _what(zeek_type: str) -> str:
    inner = _inner_type(zeek_type) or zeek_type
    if inner in _INT_TYPES:
        return "not an integer"
    if inner in _FLOAT_TYPES:
        return "not a number"
    if inner == "bool":
        return "not a bool (T/F)"
    return "cannot convert"


def _inner_type(zeek_type: str) -> str | None:
    for prefix in ("set[", "vector["):
        if zeek_type.startswith(prefix) and zeek_type.endswith("]"):
            return zeek_type[len(prefix) : -1]
    return None


def _converter(
    zeek_type: str, unset: str, empty: str, set_sep: str, default: Any, escaped: bool
) -> Converter:
    """One closure per column so the per-line loop does no type dispatch."""
    inner = _inner_type(zeek_type)
    if inner is not None:
        element = _element_converter(inner, escaped)
        fresh_list = isinstance(default, tuple)

        def container(text: str) -> Any:
            if text == unset:
                return [] if fresh_list else default
            if text == empty:
                return []
            return [element(part) for part in text.split(set_sep)]

        return container

    if isinstance(default, tuple):
        # A list-valued key in a column not declared as a container: leave it unset
        # here so the schema check reports it.
        default = None
    scalar = _element_converter(zeek_type, escaped)
    if scalar is str:

        def string(text: str) -> Any:
            if text == unset:
                return default
            if text == empty:
                return ""
            return text

        return string

    if scalar is unescape:

        def escaped_string(text: str) -> Any:
            if text == unset:
                return default
            if text == empty:
                return ""
            return unescape(text)

        return escaped_string

    def typed(text: str) -> Any:
        if text == unset:
            return default
        return scalar(text)

    return typed


@dataclass
class RowParser:
    """Turns the fields of one data line into an event, for one header block."""

    fields: list[str]
    types: list[str]
    keys: tuple[str, ...]
    plain: tuple[Converter, ...]
    escaped: tuple[Converter, ...]  # used only on lines containing a backslash
    absent: dict[str, Any]  # required keys this header has no column for

    def diagnose(self, parts: list[str], escaped: bool) -> str:
        convs = self.escaped if escaped else self.plain
        for name, zeek_type, conv, text in zip(self.fields, self.types, convs, parts, strict=True):
            try:
                conv(text)
            except (ValueError, KeyError):
                return f"field {name!r}: {_what(zeek_type)}: {text!r}"
        return "cannot convert line"

    def parse(self, parts: list[str], escaped: bool) -> Event:
        convs = self.escaped if escaped else self.plain
        ev = {k: conv(v) for k, conv, v in zip(self.keys, convs, parts, strict=True)}
        if self.absent:
            ev.update(self.absent)
        return ev


def build_parser(header: TsvHeader, schema: Schema) -> RowParser:
    """Raises ValueError when the header block cannot describe data lines."""
    if not header.fields:
        raise ValueError("data line before any '#fields' header")
    types = header.types
    if not types:
        types = ["string"] * len(header.fields)
    elif len(types) != len(header.fields):
        raise ValueError(f"header has {len(header.fields)} '#fields' but {len(types)} '#types'")
    keys = tuple(schema.key_for(f) for f in header.fields)
    plain: list[Converter] = []
    escaped: list[Converter] = []
    for key, zeek_type in zip(keys, types, strict=True):
        default = schema.defaults.get(key)
        args = (zeek_type, header.unset, header.empty, header.set_separator, default)
        plain.append(_converter(*args, escaped=False))
        escaped.append(_converter(*args, escaped=True))
    absent = {k: v for k, v in schema.prefill.items() if k not in keys}
    return RowParser(list(header.fields), types, keys, tuple(plain), tuple(escaped), absent)


@dataclass
class TsvHeader:
    """Header values in force; later '#' blocks (concatenated rotations) replace them."""

    separator: str = "\t"
    set_separator: str = ","
    empty: str = "(empty)"
    unset: str = "-"
    path: str = ""
    fields: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    def update(self, line: str) -> bool:
        """Apply one '#' line; True when it changes how data lines are read."""
        text = line.lstrip().rstrip("\r\n")
        if text.startswith("#separator"):
            # The separator line is the one header whose value follows a space.
            self.separator = unescape(text[len("#separator") :].strip()) or "\t"
            return True
        name, _, value = text[1:].partition(self.separator)
        if name == "fields":
            self.fields = value.split(self.separator)
        elif name == "types":
            self.types = value.split(self.separator)
        elif name == "set_separator":
            self.set_separator = unescape(value)
        elif name == "empty_field":
            self.empty = unescape(value)
        elif name == "unset_field":
            self.unset = unescape(value)
        elif name == "path":
            self.path = value.strip()
            return False
        else:
            return False
        return True
