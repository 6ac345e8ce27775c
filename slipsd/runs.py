"""Runs: one analysis each, with its own children, key prefix and output folder.

An analysis starts an evidence handler and the module hosts (slipsd/hosting.py
decides which modules share one), waits until they are reading, then starts the
ingest process on the caller's file descriptor. It is finished when the evidence
handler has heard ``done`` from the ingest and from every module: only then is
every message of the run handled everywhere.

How a run ends, and what stands in for a child that cannot finish, is in
slipsd/run_end.py; how reloads and module restarts change the live run, in
slipsd/live_run.py. Both work on ``Runs`` through its public methods.
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

from slipsd import live_run, run_end
from slipsd import run_specs as specs
from slipsd.config import Config
from slipsd.config_paths import output_dir
from slipsd.hosting import host_label, host_modules, plan_hosts
from slipsd.module_loader import ModuleRef, unavailable_reason
from slipsd.reload import ConfigDiff
from slipsd.retention import keep_bounded
from slipsd.store import RedisClient, Store
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

    def env(self) -> dict[str, str]:
        return child_env({"SLIPS_LOG_LEVEL": self.config.get_str("daemon", "log_level")})

    def runnable(self, run: Run) -> None:
        """Keep in ``run.modules`` only the modules that can run now."""
        for name, ref in self.modules.items():
            why = unavailable_reason(ref, self.config.module_sections.get(name, {}))
            if why:
                run.unavailable[name] = why
                log.warning("run %s: module %s not started: %s", run.id, name, why)
        run.modules = [m for m in self.modules if m not in run.unavailable]

    async def analyze(self, fd: int, source: str, output: str, progress: Progress) -> Run:
        run = Run(new_run_id(), source, "", list(self.modules))
        self.runnable(run)
        run.output = output or str(output_dir(self.config) / run.id)
        try:
            await asyncio.to_thread(self._prepare, run)
        except (OSError, redis.RedisError) as exc:
            os.close(fd)  # ours until the ingest child takes it
            raise RunError(f"cannot create the output folder: {exc}") from exc
        self.runs[run.id] = run  # only on the event loop: status iterates this dict
        handler = self._start_readers(run, Restart.ON_FAILURE, live=False)
        self.start_child(run, "ingest", "ingest", 10, Restart.NEVER, {
            **self.ingest_spec(run), "source_name": source, "source_fd": fd,
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
            await run_end.finish(self, run, handler)
        return run

    def start_live(self, sensor_root: Path) -> Run:
        """The live run: a sensor per interface, the readers, and an ingest that follows
        the sensors' folders. Everything restarts on failure; it ends when slipsd stops."""
        self.sensor_root = sensor_root
        run = Run(f"live-{new_run_id()}", "live", "", list(self.modules))
        self.runnable(run)
        run.output = str(output_dir(self.config) / run.id)
        self._prepare(run)  # at start-up, before slipsd serves anyone: blocking is fine
        self.runs[run.id] = run
        self._start_readers(run, Restart.ALWAYS, live=True)
        live_run.start_inputs(self, run)
        # Redis keeps only the last keep_windows windows; ends when the run does.
        self._background(keep_bounded(
            self.client, run.id, lambda: self.config.get_int("database", "keep_windows"),
            lambda: run.state == "running" and run.id in self.runs))
        return run

    async def apply(self, config: Config, modules: dict[str, ModuleRef],
                    change: ConfigDiff) -> None:
        """A reloaded configuration: new analyses use it at once; the live run is
        changed as little as the diff allows (slipsd/live_run.py)."""
        self.config, self.modules = config, modules
        await live_run.apply(self, change)

    async def restart_module(self, name: str, ref: ModuleRef) -> str | None:
        """Restart one module's host in the live run (it replays the run's retained
        stream; its evidence is stored once). Returns why it cannot run, if it cannot."""
        return await live_run.restart_module(self, name, ref)

    def plan(self, run: Run) -> list[tuple[str, ...]]:
        cfg = self.config
        return plan_hosts(self.modules, run.modules, cfg.get_int("modules", "processes"),
                          cfg.get_list("modules", "isolate"))

    async def stop_children(self, run: Run, names: list[str]) -> None:
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
        handler = self.start_evidence(run, restart, live)
        for members in self.plan(run):
            self.start_host(run, members, restart)
        return handler

    def start_evidence(self, run: Run, restart: Restart, live: bool) -> Child:
        spec = specs.evidence(self.config, run.id, self.redis_url, run.output, run.modules, live)
        return self.start_child(run, "evidence", "evidence", 30, restart, spec)

    def start_host(self, run: Run, members: tuple[str, ...], restart: Restart) -> Child:
        label = host_label(members)
        run.hosts[label] = members
        spec = specs.module_host(self.config, run.id, self.redis_url,
                                 [self.modules[m] for m in members])
        return self.start_child(run, f"module/{label}", "module", 20, restart, spec)

    def ingest_spec(self, run: Run) -> dict[str, Any]:
        return specs.ingest(self.config, run.id, self.redis_url, run.modules)

    def start_child(
        self, run: Run, name: str, role: str, order: int, restart: Restart,
        spec: dict[str, Any], pass_fds: tuple[int, ...] = (),
    ) -> Child:
        full = f"{run.id}/{name}"
        run.children.append(full)
        return self.supervisor.start(ProcessSpec(
            full, self._argv(role, spec), role=role, group=run.id, env=self.env(),
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
            self._background(asyncio.to_thread(run_end.host_gave_up, store, modules,
                                               child.last_exit))
        elif child.spec.role == "ingest" and child.done and child.returncode != 0:
            run.problem = f"reading the input failed: {child.last_exit}"
            log.error("run %s: %s", run.id, run.problem)
            self._background(asyncio.to_thread(run_end.end_streams, store, child.last_exit))
        elif child.spec.role == "evidence" and child.state is State.FATAL:
            run.problem = f"evidence handler failed: {child.last_exit}"

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
