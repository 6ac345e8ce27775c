"""Keep a live run's data in Redis bounded: a sweep every few seconds, from the daemon.

The live run writes profiles, windows, evidence and alerts for as long as slipsd
runs; its output files keep the history, Redis only the last ``[database]
keep_windows`` windows (``slipsd/store/_retention.py`` says what goes and how).
The sweep runs in the daemon, in a worker thread, so no child's hot path pays for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

import redis

from slipsd.store import LiveRetention, RedisClient, Store, SweepResult

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0  # between sweeps; windows last an hour by default
SWEEP_SECONDS_ENV = "SLIPS_RETENTION_SECONDS"  # environment of slipsd: another period


def sweep_seconds(environ: dict[str, str] | None = None) -> float:
    """The period between sweeps: SWEEP_SECONDS, or the environment's (tests, benches)."""
    text = (os.environ if environ is None else environ).get(SWEEP_SECONDS_ENV, "")
    try:
        value = float(text) if text.strip() else SWEEP_SECONDS
    except ValueError:
        value = SWEEP_SECONDS
    return value if value > 0 else SWEEP_SECONDS


def sweep_once(client: RedisClient, retention: LiveRetention, keep: int) -> SweepResult:
    """One sweep; what it removed is logged and added to the run's stats (``expired.*``)."""
    result = retention.sweep(keep)
    removed = {k: v for k, v in result.removed.items() if v}
    if removed:
        Store(client, retention.run_id).add_counts(removed)
        log.info("live run %s: kept windows %d..%d, removed %s", retention.run_id,
                 result.cutoff, result.newest,
                 ", ".join(f"{v} {k.split('.', 1)[1]}" for k, v in removed.items()))
    return result


async def keep_bounded(client: RedisClient, run_id: str, keep: Callable[[], int],
                       running: Callable[[], bool], period: float | None = None) -> None:
    """Sweep the live run ``run_id`` every ``period`` s while ``running()``; ``keep()`` is
    read at each sweep, so a reload of keep_windows applies at the next one."""
    retention = LiveRetention(client, run_id)
    period = sweep_seconds() if period is None else period
    while running():
        await asyncio.sleep(period)
        if not running():
            break
        try:
            await asyncio.to_thread(sweep_once, client, retention, keep())
        except redis.RedisError as exc:
            # Redis restarting (the embedded one is) or slipsd stopping: try again later.
            log.warning("live run %s: retention sweep failed: %s", run_id, exc)
