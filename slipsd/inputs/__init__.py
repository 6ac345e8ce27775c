"""Readers that turn traffic logs into slips events; ``detect`` picks one by content."""

from slipsd.inputs._common import FileStats, InputError, LineError
from slipsd.inputs.detect import Input, known_formats, open_fd, open_path
from slipsd.inputs.zeek import ZeekInput

__all__ = [
    "FileStats", "Input", "InputError", "LineError", "ZeekInput", "known_formats", "open_fd",
    "open_path",
]
