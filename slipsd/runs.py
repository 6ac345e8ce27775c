"""Runs: one analysis each, with its own children, key prefix and output folder.

An analysis starts an evidence handler and the module hosts (slipsd/hosting.py
decides which modules share one), waits until they are reading, then starts the
ingest process on the caller's file descriptor. It is finished when the evidence
handler has heard ``done`` from the ingest and from every module: only then is
every message of the run handled everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from slipsd import run_specs as specs
from slipsd.config import Config, output_dir
from slipsd.events import TRAFFIC_CHANNELS
from slipsd.hosting import consumer_group, host_label, host_modules, plan_hosts
from slipsd.ingest import INGEST
from slipsd.module_loader import ModuleRef, unavailable_reason
from slipsd.reload import ConfigDiff
from slipsd.retention import keep_bounded
from slipsd.store import Producer, RedisClient, Store
from slipsd.supervision import Child, ProcessSpec, Restart, State, Supervisor, child_env

log = logging.getLogger(__name__)

Progress = Callable[..., Awaitable[None]]
PROGRESS_INTERVAL = 0.5  # seconds between progress events sent to the client


@dataclass
class Run:
    id: str
    source: str
    output: str
    modules: list[str]
    state: str = "running"  # running, finished, failed
    started: float = field(default_factory=time.time)
    finished: float | None = None
    problem: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    # enabled modules that were not started (Module.unavailable): name -> why
    unavailable: dict[str, str] = field(default_factory=dict)
    # module hosts: label (module names joined by "+") -> the modules it runs
    hosts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stopping: bool = False  # complete, its children being stopped

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id, "source": self.source, "output": self.output, "state": self.state,
            "started": self.started, "finished": self.finished, "modules": self.modules,
            "unavailable_modules": self.unavailable, "problem": self.problem,
            "summary": self.summary,
        }


class RunError(Exception):
    """A run could not start; the message says why."""


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


class Runs:
    def __init__(
        self, supervisor: Supervisor, client: RedisClient, redis_url: str, config: Config,
        modules: dict[str, ModuleRef],
    ) -> None:
        self.supervisor = supervisor
        self.client = client
        self.redis_url = redis_url
        self.config = config
        self.modules = modules
        self.runs: dict[str, Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # kept so they are not collected early
        self.sensor_root = Path("sensors")  # set by the daemon: <state_dir>/sensors

    def _argv(self, role: str, spec: dict[str, Any]) -> list[str]:
        return [sys.executable, "-m", "slipsd.child", role, json.dumps(spec)]

    def _env(self) -> dict[str, str]:
        return child_env({"SLIPS_LOG_LEVEL": self.config.get_str("daemon", "log_level")})

    def _runnable(self, run: Run) -> None:
        """Keep in ``run.modules`` only the modules that can run now."""
        for name, ref in self.modules.items():
            why = unavailable_reason(ref, self.config.module_sections.get(name, {}))
            if why:
                run.unavailable[name] = why
                log.warning("run %s: module %s not started: %s", run.id, name, why)
        run.modules = [m for m in self.modules if m not in run.unavailable]

    async def analyze(self, fd: int, source: str, output: str, progress: Progress) -> Run:
        run = Run(new_run_id(), source, "", list(self.modules))
        self._runnable(run)
        run.output = output or str(output_dir(self.config) / run.id)
        try:
            await asyncio.to_thread(self._prepare, run)
        except (OSError, redis.RedisError) as exc:
            os.close(fd)  # ours until the ingest child takes it
            raise RunError(f"cannot create the output folder: {exc}") from exc
        self.runs[run.id] = run  # only on the event loop: status iterates this dict
        handler = self._start_readers(run, Restart.ON_FAILURE, live=False)
        self._start(run, "ingest", "ingest", 10, Restart.NEVER, {
            **self._ingest_spec(run), "source_name": source, "source_fd": fd,
            "zeek": specs.capture_zeek(self.config),
        }, pass_fds=(fd,))
        listening = True
        try:
            while not handler.done:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(handler.wait()), PROGRESS_INTERVAL)
                if not handler.done and listening:
                    try:
                        await progress(**await asyncio.to_thread(self._progress, run))
                    except redis.RedisError as exc:
                        log.warning("run %s: no progress report: %s", run.id, exc)
                    except (ConnectionError, OSError):
                        # The client went away; the analysis still finishes and is recorded.
                        listening = False
                        log.info("run %s: client disconnected, finishing without it", run.id)
        finally:
            # Whatever happened to the request, the run's children are stopped and it
            # is recorded, so nothing is left half-running.
            await self._finish(run, handler)
        return run

    def start_live(self, sensor_root: Path) -> Run:
        """The live run: a sensor per interface, the readers, and an ingest that follows
        the sensors' folders. Everything restarts on failure; it ends when slipsd stops."""
        self.sensor_root = sensor_root
        run = Run(f"live-{new_run_id()}", "live", "", list(self.modules))
        self._runnable(run)
        run.output = str(output_dir(self.config) / run.id)
        self._prepare(run)  # at start-up, before slipsd serves anyone: blocking is fine
        self.runs[run.id] = run
        self._start_readers(run, Restart.ALWAYS, live=True)
        self._start_live_inputs(run)
        # Redis keeps only the last keep_windows windows; ends when the run does.
        self._background(keep_bounded(
            self.client, run.id, lambda: self.config.get_int("database", "keep_windows"),
            lambda: run.state == "running" and run.id in self.runs))
        return run

    def _start_live_inputs(self, run: Run) -> None:
        """The sensors and the ingest that follows their folders."""
        from slipsd.sensors.flowmeter_live import live_flowmeter_spec
        from slipsd.sensors.zeek import choose_sensor, find_zeek, live_spec, scripts_dir

        cfg = self.config
        zeek = find_zeek(cfg.get_str("sensors", "zeek"))
        sensor = choose_sensor(cfg.get_str("sensors", "sensor"), zeek)
        for interface in cfg.get_list("sensors", "interfaces"):
            folder = self.sensor_root / interface
            if sensor == "zeek" and zeek is not None:
                spec = live_spec(zeek, interface, folder,
                                 bpf_filter=cfg.get_str("sensors", "bpf_filter"),
                                 tcp_inactivity_timeout=cfg.get_float("sensors",
                                                                      "tcp_inactivity_timeout"),
                                 scripts=scripts_dir())
            else:
                # NFStream in a child of ours; its idle timeout comes from the environment
                # (SLIPS_FLOWMETER_IDLE_TIMEOUT, see flowmeter_live), which _env passes on.
                spec = live_flowmeter_spec(interface, folder,
                                           bpf_filter=cfg.get_str("sensors", "bpf_filter"))
            spec.group, spec.env = run.id, self._env()
            run.children.append(spec.name)
            self.supervisor.start(spec)
        self._start_live_ingest(run)

    def _start_live_ingest(self, run: Run) -> None:
        folders = [str(self.sensor_root / i) for i in self.config.get_list("sensors",
                                                                           "interfaces")]
        self._start(run, "ingest", "ingest", 10, Restart.ALWAYS, {
            **self._ingest_spec(run), "source_name": "live", "follow_dirs": folders,
        })

    async def apply(self, config: Config, modules: dict[str, ModuleRef],
                    change: ConfigDiff) -> None:
        """A reloaded configuration: new analyses use it at once; the live run is
        changed as little as the diff allows (each restarted reader replays its run,
        so nothing is lost or counted twice)."""
        self.config, self.modules = config, modules
        live = next((r for r in self.runs.values()
                     if r.source == "live" and r.state == "running"), None)
        if live is None:
            if config.get_list("sensors", "interfaces"):
                self.start_live(self.sensor_root)
            return
        if not config.get_list("sensors", "interfaces"):
            await self._stop_children(live, live.children)
            live.state, live.finished = "finished", time.time()
            return
        live.unavailable = {}
        self._runnable(live)
        await self._replan_hosts(live, set(change.modules_reconfigured))
        keys = change.changed.keys()
        # The whitelist (its file, or what is in it) is applied by the ingest to traffic
        # and by the evidence handler to evidence; the AS database serves its org entries.
        whitelist = any(k.startswith("whitelist.") or k == "geoip.asn_database" for k in keys)
        if whitelist or any(k.startswith(("alerts.", "profiles.")) for k in keys):
            await self._stop_children(live, [f"{live.id}/evidence"])
            self._start_evidence(live, Restart.ALWAYS, live=True)
        if any(k.startswith(("sensors.", "profiles.", "bus.")) for k in keys):
            sensors = [c for c in live.children if c.startswith("sensor/")]
            await self._stop_children(live, [*sensors, f"{live.id}/ingest"])
            self._start_live_inputs(live)
        elif whitelist or "database.keep_windows" in keys:
            # keep_windows: the ingest forgets what the sweep deletes (slipsd/_seen.py)
            await self._stop_children(live, [f"{live.id}/ingest"])
            self._start_live_ingest(live)

    async def restart_module(self, name: str, ref: ModuleRef) -> str | None:
        """Restart one module's host in the live run (it replays the run's retained
        stream; its evidence is stored once). Returns why it cannot run, if it cannot."""
        why = unavailable_reason(ref, self.config.module_sections.get(name, {}))
        for run in list(self.runs.values()):  # awaits below: the dict may change
            if run.source == "live" and run.state == "running":
                if why:
                    run.unavailable[name] = why
                else:
                    run.unavailable.pop(name, None)
                run.modules = [m for m in self.modules if m not in run.unavailable]
                await self._replan_hosts(run, {name})
        return why

    async def _replan_hosts(self, run: Run, restart: set[str]) -> None:
        """Bring a live run's module hosts in line with ``run.modules``: hosts whose
        modules changed, or that hold a module in ``restart``, are replaced (the new
        ones replay the run's retained stream); the others go on untouched."""
        wanted = {host_label(h): h for h in self._plan(run)}
        store = Store(self.client, run.id)
        for label, members in list(run.hosts.items()):
            if label in wanted and not restart.intersection(members):
                continue
            await self._stop_children(run, [f"{run.id}/module/{label}"])
            del run.hosts[label]
            await asyncio.to_thread(store.drop_reader, consumer_group(members),
                                    TRAFFIC_CHANNELS)
        for label, members in wanted.items():
            if label not in run.hosts:
                self._start_host(run, members, Restart.ALWAYS)

    def _plan(self, run: Run) -> list[tuple[str, ...]]:
        cfg = self.config
        return plan_hosts(self.modules, run.modules, cfg.get_int("modules", "processes"),
                          cfg.get_list("modules", "isolate"))

    async def _stop_children(self, run: Run, names: list[str]) -> None:
        await self.supervisor.stop_many(names)
        for name in names:
            self.supervisor.forget(name)
            if name in run.children:
                run.children.remove(name)

    def _prepare(self, run: Run) -> None:
        """The run's output folder and metadata (blocking: run it in a thread)."""
        Path(run.output).mkdir(parents=True, exist_ok=True)
        Store(self.client, run.id).set_run_meta(source=run.source, output=run.output,
                                                started=run.started, modules=run.modules)

    def _start_readers(self, run: Run, restart: Restart, live: bool) -> Child:
        """The evidence handler and the module hosts; returns the handler."""
        handler = self._start_evidence(run, restart, live)
        for members in self._plan(run):
            self._start_host(run, members, restart)
        return handler

    def _start_evidence(self, run: Run, restart: Restart, live: bool) -> Child:
        spec = specs.evidence(self.config, run.id, self.redis_url, run.output, run.modules, live)
        return self._start(run, "evidence", "evidence", 30, restart, spec)

    def _start_host(self, run: Run, members: tuple[str, ...], restart: Restart) -> Child:
        label = host_label(members)
        run.hosts[label] = members
        spec = specs.module_host(self.config, run.id, self.redis_url,
                                 [self.modules[m] for m in members])
        return self._start(run, f"module/{label}", "module", 20, restart, spec)

    def _ingest_spec(self, run: Run) -> dict[str, Any]:
        return specs.ingest(self.config, run.id, self.redis_url, run.modules)

    def _start(
        self, run: Run, name: str, role: str, order: int, restart: Restart,
        spec: dict[str, Any], pass_fds: tuple[int, ...] = (),
    ) -> Child:
        full = f"{run.id}/{name}"
        run.children.append(full)
        return self.supervisor.start(ProcessSpec(
            full, self._argv(role, spec), role=role, group=run.id, env=self._env(),
            pass_fds=pass_fds, own_fds=bool(pass_fds), restart=restart, stop_order=order,
        ))

    def _progress(self, run: Run) -> dict[str, Any]:
        store = Store(self.client, run.id)
        stats = store.stats()
        total = store.run_meta().get("total_lines", 0)
        events = sum(v for k, v in stats.items() if k.startswith("events."))
        processed = {name: store.module_stats(name)["processed"] for name in run.modules}
        ingest = self.supervisor.children.get(f"{run.id}/ingest")
        reading = ingest is not None and not ingest.done
        return {"run": run.id, "stage": "reading" if reading else "detecting",
                "total_lines": total, "events": events, "flows": stats.get("events.new_flow", 0),
                "modules": processed}

    def on_child_change(self, child: Child) -> None:
        """Keep a run able to finish when one of its children cannot."""
        run = self.runs.get(child.spec.group)
        if run is None or run.state != "running" or run.stopping:
            return
        store = Store(self.client, run.id)
        name = child.spec.name.split("/", 1)[1]
        if child.spec.role == "module" and child.state is State.FATAL:
            modules = host_modules(name.split("/", 1)[1])
            run.problem = f"module {', '.join(modules)} failed: {child.last_exit}"
            log.error("run %s: %s", run.id, run.problem)
            self._background(asyncio.to_thread(_host_gave_up, store, modules, child.last_exit))
        elif child.spec.role == "ingest" and child.done and child.returncode != 0:
            run.problem = f"reading the input failed: {child.last_exit}"
            log.error("run %s: %s", run.id, run.problem)
            self._background(asyncio.to_thread(_end_streams, store, child.last_exit))
        elif child.spec.role == "evidence" and child.state is State.FATAL:
            run.problem = f"evidence handler failed: {child.last_exit}"

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, run: Run, handler: Child) -> None:
        store = Store(self.client, run.id)
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
        await self.supervisor.stop_many(run.children)
        for name in run.children:
            self.supervisor.forget(name)
        # Only now: whoever sees the run finished must not see its children any more.
        run.state = "failed" if failed else "finished"
        run.finished = time.time()
        await asyncio.to_thread(store.delete_streams, [*TRAFFIC_CHANNELS, "evidence_added"])
        await asyncio.to_thread(store.index_run, run.info())
        await self._forget_old_runs()

    async def _forget_old_runs(self) -> None:
        """Keep Redis bounded in a long-lived daemon: only the newest finished runs stay."""
        keep = self.config.get_int("database", "keep_runs")
        finished = sorted((r for r in self.runs.values() if r.state != "running"),
                          key=lambda r: r.finished or 0.0)
        for old in finished[: max(0, len(finished) - keep)]:
            if self.runs.pop(old.id, None) is None:
                continue  # another finishing run is removing it already
            removed = await asyncio.to_thread(Store(self.client, old.id).delete_run)
            log.info("run %s: removed %d keys from Redis (keep_runs = %d)", old.id, removed, keep)


def _host_gave_up(store: Store, modules: list[str], why: str) -> None:
    for module in modules:
        store.mark_ready(module)  # so the ingest does not wait for it to start...
    store.drop_reader(consumer_group(modules), TRAFFIC_CHANNELS)  # ...nor to catch up
    for module in modules:
        store.publish_module_done(module, failed=why)


def _end_streams(store: Store, why: str) -> None:
    store.record_errors([f"input process ended early: {why}"])
    store.set_run_meta(input_error=f"input process ended early: {why}")
    Producer(store.redis, store.run_id, TRAFFIC_CHANNELS).close()
    store.publish_module_done(INGEST, failed=why)
