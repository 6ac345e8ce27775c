"""Readers that turn traffic logs into slips events."""

from slipsd.inputs._common import FileStats, InputError, LineError
from slipsd.inputs.zeek import ZeekInput

__all__ = ["FileStats", "InputError", "LineError", "ZeekInput"]
