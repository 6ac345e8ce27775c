"""What changes between two valid configurations, in terms a reload can apply.

A reload validates the new configuration completely first (``slipsd.config.load``
and ``module_loader.validate_modules``); only a valid one reaches ``diff``. The
result names every changed key and sorts the changes into what the daemon must
do: start or stop module hosts, add or remove sensors, or just use the new
values for what starts next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slipsd.config import Config

# Keys that only take effect when slipsd restarts: where it listens and stores.
RESTART_ONLY = frozenset({
    "daemon.runtime_dir", "daemon.state_dir", "database.url", "database.redis_server",
})


@dataclass
class ConfigDiff:
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # key -> (old, new)
    modules_started: list[str] = field(default_factory=list)
    modules_stopped: list[str] = field(default_factory=list)
    modules_reconfigured: list[str] = field(default_factory=list)  # their section changed
    sensors_added: list[str] = field(default_factory=list)
    sensors_removed: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)  # keys a reload cannot apply

    @property
    def empty(self) -> bool:
        return not self.changed

    def summary(self) -> dict[str, Any]:
        """The reply to ``slipsctl reload``: what changed and what was done about it."""
        return {
            "changed": {k: {"old": old, "new": new} for k, (old, new) in self.changed.items()},
            "modules_started": self.modules_started,
            "modules_stopped": self.modules_stopped,
            "modules_reconfigured": self.modules_reconfigured,
            "sensors_added": self.sensors_added,
            "sensors_removed": self.sensors_removed,
            "needs_restart": self.needs_restart,
        }


def diff(old: Config, new: Config) -> ConfigDiff:
    result = ConfigDiff()
    before, after = old.flat(), new.flat()
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key):
            result.changed[key] = (before.get(key), after.get(key))
    old_modules = old.get_list("modules", "enabled")
    new_modules = new.get_list("modules", "enabled")
    result.modules_started = [m for m in new_modules if m not in old_modules]
    result.modules_stopped = [m for m in old_modules if m not in new_modules]
    result.modules_reconfigured = sorted(
        m for m in set(old_modules) & set(new_modules)
        if any(key.startswith(f"{m}.") for key in result.changed)
    )
    old_ifaces = old.get_list("sensors", "interfaces")
    new_ifaces = new.get_list("sensors", "interfaces")
    result.sensors_added = [i for i in new_ifaces if i not in old_ifaces]
    result.sensors_removed = [i for i in old_ifaces if i not in new_ifaces]
    result.needs_restart = sorted(k for k in result.changed if k in RESTART_ONLY)
    return result
