"""Which module runs in which host process.

Every host reads and decodes each batch of its channels once, whatever the
number of modules it runs, so on a machine with a few cores sharing hosts saves
most of the bus' per-event cost: with one host per module, ten modules reading
``new_flow`` decoded every flow ten times. The price is weaker isolation: a
module that kills its process (an exception never does) restarts its
neighbours too, and they replay the run with it. So only the modules shipped
with slips, which its tests cover, share hosts; a module from another folder
or an entry point always has a process of its own, and ``[modules] isolate``
gives one to any shipped module.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from slipsd.events import TRAFFIC_CHANNELS
from slipsd.module_loader import ModuleRef, builtin_directory
from slipsd.store import Store

SEPARATOR = "+"  # joins a host's module names in its process and consumer group names


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def is_shipped(ref: ModuleRef) -> bool:
    return bool(ref.path) and Path(ref.path).resolve().parent == builtin_directory().resolve()


def plan_hosts(
    refs: Mapping[str, ModuleRef], enabled: Sequence[str], processes: int,
    isolate: Collection[str] = (),
) -> list[tuple[str, ...]]:
    """The modules of each host process, in a stable order.

    ``processes`` is how many hosts the shared modules spread over (0: one each).
    They are dealt out in ``enabled`` order, so hosts get alternate modules of
    the list; a changed list reshuffles them, and a live run restarts only the
    hosts whose modules changed.
    """
    alone = [m for m in enabled if m in isolate or not is_shipped(refs[m])]
    shared = [m for m in enabled if m not in alone]
    count = min(processes, len(shared)) if processes > 0 else len(shared)
    hosts = [tuple(shared[i::count]) for i in range(count)]
    return [*hosts, *((m,) for m in alone)]


def host_label(modules: Sequence[str]) -> str:
    """``flows+scans``: the host's part of its process name and of its consumer group."""
    return SEPARATOR.join(modules)


def consumer_group(modules: Sequence[str]) -> str:
    return f"module:{host_label(modules)}"


def host_modules(label: str) -> list[str]:
    return label.split(SEPARATOR)


def host_status(store: Store, label: str) -> dict[str, Any]:
    """A host's modules with their counters, the sums, and how far the host is behind."""
    names = host_modules(label)
    stats = {name: store.module_stats(name) for name in names}
    return {
        "modules": stats,
        "processed": sum(s["processed"] for s in stats.values()),
        "errors": sum(s["errors"] for s in stats.values()),
        "last_error": next((s["last_error"] for s in stats.values() if s["last_error"]), ""),
        "lag": store.reader_lag(consumer_group(names), TRAFFIC_CHANNELS),
    }
