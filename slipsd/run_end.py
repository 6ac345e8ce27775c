"""How a run ends: once complete, its summary is completed, its children stopped,
its streams deleted and the run indexed; older finished runs then leave Redis.
When a child cannot finish its part, ``host_gave_up`` and ``end_streams`` do in
its place what the others wait for, so the run still ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from slipsd.events import TRAFFIC_CHANNELS
from slipsd.hosting import consumer_group
from slipsd.ingest import INGEST
from slipsd.store import Producer, Store
from slipsd.supervision import Child, State

if TYPE_CHECKING:
    from slipsd.runs import Run, Runs

log = logging.getLogger(__name__)


async def finish(runs: Runs, run: Run, handler: Child) -> None:
    store = Store(runs.client, run.id)
    meta = await asyncio.to_thread(store.run_meta)
    errors = await asyncio.to_thread(store.errors)
    run.summary = dict(meta.get("summary", {}))
    run.summary["input_errors"] = errors[:20]
    run.summary["files"] = meta.get("files", [])
    run.summary["ignored_files"] = meta.get("ignored", [])
    if meta.get("input_error"):
        run.problem = str(meta["input_error"])
    if handler.state is State.FATAL or not meta.get("summary"):
        run.problem = run.problem or f"evidence handler {handler.last_exit}"
    failed = meta.get("input_error") or not meta.get("summary")
    run.stopping = True  # its children's exits from here on are no problem of the run
    await runs.supervisor.stop_many(run.children)
    for name in run.children:
        runs.supervisor.forget(name)
    # Only now: whoever sees the run finished must not see its children any more.
    run.state = "failed" if failed else "finished"
    run.finished = time.time()
    await asyncio.to_thread(store.delete_streams, [*TRAFFIC_CHANNELS, "evidence_added"])
    await asyncio.to_thread(store.index_run, run.info())
    await forget_old_runs(runs)


async def forget_old_runs(runs: Runs) -> None:
    """Keep Redis bounded in a long-lived daemon: only the newest finished runs stay."""
    keep = runs.config.get_int("database", "keep_runs")
    finished = sorted((r for r in runs.runs.values() if r.state != "running"),
                      key=lambda r: r.finished or 0.0)
    for old in finished[: max(0, len(finished) - keep)]:
        if runs.runs.pop(old.id, None) is None:
            continue  # another finishing run is removing it already
        removed = await asyncio.to_thread(Store(runs.client, old.id).delete_run)
        log.info("run %s: removed %d keys from Redis (keep_runs = %d)", old.id, removed, keep)


def host_gave_up(store: Store, modules: list[str], why: str) -> None:
    for module in modules:
        store.mark_ready(module)  # so the ingest does not wait for it to start...
    store.drop_reader(consumer_group(modules), TRAFFIC_CHANNELS)  # ...nor to catch up
    for module in modules:
        store.publish_module_done(module, failed=why)


def end_streams(store: Store, why: str) -> None:
    store.record_errors([f"input process ended early: {why}"])
    store.set_run_meta(input_error=f"input process ended early: {why}")
    Producer(store.redis, store.run_id, TRAFFIC_CHANNELS).close()
    store.publish_module_done(INGEST, failed=why)
