"""The live run once started: its sensors and ingest, and how reloads and module
restarts change it.

A live run never ends by itself, so a new configuration is applied to it in
place, changing as little as the diff allows: each restarted reader replays the
run's retained stream, so nothing is lost or counted twice. ``Runs.start_live``
starts it; these functions work on the ``Runs`` that holds it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from slipsd.events import TRAFFIC_CHANNELS
from slipsd.hosting import consumer_group, host_label
from slipsd.module_loader import ModuleRef, unavailable_reason
from slipsd.reload import ConfigDiff
from slipsd.store import Store
from slipsd.supervision import Restart

if TYPE_CHECKING:
    from slipsd.runs import Run, Runs


def start_inputs(runs: Runs, run: Run) -> None:
    """The sensors and the ingest that follows their folders."""
    from slipsd.sensors.flowmeter_live import live_flowmeter_spec
    from slipsd.sensors.zeek import choose_sensor, find_zeek, live_spec, scripts_dir

    cfg = runs.config
    zeek = find_zeek(cfg.get_str("sensors", "zeek"))
    sensor = choose_sensor(cfg.get_str("sensors", "sensor"), zeek)
    for interface in cfg.get_list("sensors", "interfaces"):
        folder = runs.sensor_root / interface
        if sensor == "zeek" and zeek is not None:
            spec = live_spec(zeek, interface, folder,
                             bpf_filter=cfg.get_str("sensors", "bpf_filter"),
                             tcp_inactivity_timeout=cfg.get_float("sensors",
                                                                  "tcp_inactivity_timeout"),
                             scripts=scripts_dir())
        else:
            # NFStream in a child of ours; its idle timeout comes from the environment
            # (SLIPS_FLOWMETER_IDLE_TIMEOUT, see flowmeter_live), which Runs.env passes on.
            spec = live_flowmeter_spec(interface, folder,
                                       bpf_filter=cfg.get_str("sensors", "bpf_filter"))
        spec.group, spec.env = run.id, runs.env()
        run.children.append(spec.name)
        runs.supervisor.start(spec)
    start_ingest(runs, run)


def start_ingest(runs: Runs, run: Run) -> None:
    folders = [str(runs.sensor_root / i) for i in runs.config.get_list("sensors",
                                                                       "interfaces")]
    runs.start_child(run, "ingest", "ingest", 10, Restart.ALWAYS, {
        **runs.ingest_spec(run), "source_name": "live", "follow_dirs": folders,
    })


async def apply(runs: Runs, change: ConfigDiff) -> None:
    """Bring the live run in line with ``runs.config`` after a reload: start it,
    end it, or restart only the children the changed keys concern."""
    config = runs.config
    live = next((r for r in runs.runs.values()
                 if r.source == "live" and r.state == "running"), None)
    if live is None:
        if config.get_list("sensors", "interfaces"):
            runs.start_live(runs.sensor_root)
        return
    if not config.get_list("sensors", "interfaces"):
        await runs.stop_children(live, live.children)
        live.state, live.finished = "finished", time.time()
        return
    live.unavailable = {}
    runs.runnable(live)
    await replan_hosts(runs, live, set(change.modules_reconfigured))
    keys = change.changed.keys()
    # The whitelist (its file, or what is in it) is applied by the ingest to traffic
    # and by the evidence handler to evidence; the AS database serves its org entries.
    whitelist = any(k.startswith("whitelist.") or k == "geoip.asn_database" for k in keys)
    if whitelist or any(k.startswith(("alerts.", "profiles.")) for k in keys):
        await runs.stop_children(live, [f"{live.id}/evidence"])
        runs.start_evidence(live, Restart.ALWAYS, live=True)
    if any(k.startswith(("sensors.", "profiles.", "bus.")) for k in keys):
        sensors = [c for c in live.children if c.startswith("sensor/")]
        await runs.stop_children(live, [*sensors, f"{live.id}/ingest"])
        start_inputs(runs, live)
    elif whitelist or "database.keep_windows" in keys:
        # keep_windows: the ingest forgets what the sweep deletes (slipsd/_seen.py)
        await runs.stop_children(live, [f"{live.id}/ingest"])
        start_ingest(runs, live)


async def restart_module(runs: Runs, name: str, ref: ModuleRef) -> str | None:
    """Restart one module's host in the live run (it replays the run's retained
    stream; its evidence is stored once). Returns why it cannot run, if it cannot."""
    why = unavailable_reason(ref, runs.config.module_sections.get(name, {}))
    for run in list(runs.runs.values()):  # awaits below: the dict may change
        if run.source == "live" and run.state == "running":
            if why:
                run.unavailable[name] = why
            else:
                run.unavailable.pop(name, None)
            run.modules = [m for m in runs.modules if m not in run.unavailable]
            await replan_hosts(runs, run, {name})
    return why


async def replan_hosts(runs: Runs, run: Run, restart: set[str]) -> None:
    """Bring a live run's module hosts in line with ``run.modules``: hosts whose
    modules changed, or that hold a module in ``restart``, are replaced (the new
    ones replay the run's retained stream); the others go on untouched."""
    wanted = {host_label(h): h for h in runs.plan(run)}
    store = Store(runs.client, run.id)
    for label, members in list(run.hosts.items()):
        if label in wanted and not restart.intersection(members):
            continue
        await runs.stop_children(run, [f"{run.id}/module/{label}"])
        del run.hosts[label]
        await asyncio.to_thread(store.drop_reader, consumer_group(members),
                                TRAFFIC_CHANNELS)
    for label, members in wanted.items():
        if label not in run.hosts:
            runs.start_host(run, members, Restart.ALWAYS)
