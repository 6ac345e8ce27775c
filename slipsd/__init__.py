"""slips daemon: supervision, bus, profiler, module hosts and outputs.

Kept import-light on purpose: slipsctl imports ``slipsd.protocol`` and must not
pull the daemon in with it.
"""

__version__ = "0.1.0"
