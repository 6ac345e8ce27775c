"""Entry point of every child process: ``python -m slipsd.child ROLE SPEC_JSON``.

The daemon passes each child its whole job as JSON on the command line, so a
child never re-reads configuration that may have changed since its run began.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Callable

from slipsd.config import ConfigError
from slipsd.log import setup_logging
from slipsd.store import StoreUnavailable

EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CONFIG = 78  # the supervisor does not retry this one: a restart cannot fix it
# Allocations between young-generation garbage collections (Python's default: 700). A
# child allocates short-lived objects per event (each batch's dicts, parsed records) while
# it holds long-lived state (module tables, open windows), which every older-generation
# collection walks again. At 1M flows (bench/run.py) collecting took 8 of the hosts'
# 80 CPU s at 700, and 1.5 s at 100,000, with the same peak memory.
# Cycles are still collected, only less often.
GC_THRESHOLD = 100_000


def _ingest(spec: dict[str, object]) -> int:
    from slipsd.ingest import IngestSpec, run_ingest

    return run_ingest(IngestSpec(**spec))  # type: ignore[arg-type]


def _module(spec: dict[str, object]) -> int:
    from slipsd.module_host import HostSpec, ModuleHost

    return ModuleHost(HostSpec(**spec)).run()  # type: ignore[arg-type]


def _evidence(spec: dict[str, object]) -> int:
    from slipsd.evidence_handler import EvidenceHandler, HandlerSpec

    return EvidenceHandler(HandlerSpec(**spec)).run()  # type: ignore[arg-type]


def _flowmeter(spec: dict[str, object]) -> int:
    from slipsd.sensors.flowmeter_live import run_live_flowmeter

    return run_live_flowmeter(spec)


ROLES: dict[str, Callable[[dict[str, object]], int]] = {
    "ingest": _ingest,
    "module": _module,
    "evidence": _evidence,
    "flowmeter": _flowmeter,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ROLES:
        print(f"usage: python -m slipsd.child {{{','.join(ROLES)}}} SPEC_JSON", file=sys.stderr)
        return EX_USAGE
    role, spec = args[0], json.loads(args[1])
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    setup_logging(os.environ.get("SLIPS_LOG_LEVEL", "info"), f"{role}[{os.getpid()}]")
    log = logging.getLogger("slipsd.child")
    try:
        return ROLES[role](spec)
    except ConfigError as exc:
        log.error("%s", exc)
        return EX_CONFIG
    except StoreUnavailable as exc:
        log.error("%s", exc)
        return EX_UNAVAILABLE
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
