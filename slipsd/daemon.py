"""slipsd: the long-running supervisor that owns Redis, the control socket and every run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import redis

from slipsd import __version__, protocol, queries
from slipsd.caches import restore_caches, save_caches
from slipsd.config import Config, ConfigError, load, runtime_dir, state_dir, whitelist_file
from slipsd.control import ControlServer, Request, socket_answers
from slipsd.hosting import host_modules, host_status
from slipsd.module_loader import (
    ModuleRef,
    discover,
    module_directories,
    unavailable_reason,
    validate_modules,
)
from slipsd.notify import notify, watchdog_interval
from slipsd.protocol import Code, ProtocolError
from slipsd.redis_server import redis_spec
from slipsd.reload import diff
from slipsd.runs import RunError, Runs
from slipsd.sensors.zeek import SensorError
from slipsd.store import RedisClient, Store, StoreUnavailable, connect
from slipsd.supervision import Child, Policy, Supervisor
from slipsd.whitelist import fingerprint

log = logging.getLogger(__name__)

STATUS_EVERY = 10.0  # seconds between STATUS= checks when there is no watchdog


class StartupError(Exception):
    """slipsd cannot start; the message says why and what to do."""


def policy_from(config: Config) -> Policy:
    return Policy(
        backoff_initial=config.get_float("supervision", "backoff_initial"),
        backoff_max=config.get_float("supervision", "backoff_max"),
        start_seconds=config.get_float("supervision", "start_seconds"),
        fatal_after=config.get_int("supervision", "fatal_after"),
        stop_timeout=config.get_float("supervision", "stop_timeout"),
    )


class Daemon:
    def __init__(self, config: Config, config_path: Path,
                 overrides: dict[str, dict[str, str]] | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.overrides = overrides or {}  # --set values, kept across reloads
        self._reloading = asyncio.Lock()
        self.runtime_dir = runtime_dir(config)
        self.socket_path = self.runtime_dir / protocol.SOCKET_NAME
        self.supervisor = Supervisor(policy_from(config), on_change=self._on_child_change)
        self.started = time.time()
        self.redis_url = ""
        self.client: RedisClient | None = None
        self.runs: Runs | None = None
        self.modules: dict[str, ModuleRef] = {}
        # What the whitelist file held when the configuration was last applied: a
        # reload restarts its readers when only the file's entries changed.
        self.whitelist_digest = fingerprint(whitelist_file(config))
        self._stop = asyncio.Event()
        self._server: ControlServer | None = None
        self.live_problem = ""
        self._heartbeat_task: asyncio.Task[None] | None = None

    async def run(self) -> int:
        try:
            await self._start()
        except (StartupError, OSError) as exc:
            # OSError: the runtime dir or the socket cannot be made (permissions...).
            log.error("%s", exc)
            if self._server is not None:
                await self._server.close()
            await self.supervisor.stop_all()
            return 1
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        notify(ready=1, status=self._summary())
        self._heartbeat_task = asyncio.create_task(self._heartbeat(watchdog_interval()))
        log.info("slipsd %s ready on %s", __version__, self.socket_path)
        await self._stop.wait()
        await self.shutdown()
        return 0

    async def _start(self) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        if socket_answers(self.socket_path):
            raise StartupError(f"another slipsd is already serving on {self.socket_path}; "
                               "use another [daemon] runtime_dir to run a second one")
        try:
            self.modules = validate_modules(self.config)
        except Exception as exc:
            raise StartupError(f"invalid module configuration:\n{exc}") from exc
        self.redis_url = self.config.get_str("database", "url")
        timeout = self.config.get_float("database", "start_timeout")
        if self.redis_url:
            self.client = await self._connect(self.redis_url, timeout, None)
        else:
            try:
                spec, self.redis_url = redis_spec(
                    self.config.get_str("database", "redis_server"), self.runtime_dir)
            except Exception as exc:
                raise StartupError(str(exc)) from exc
            child = self.supervisor.start(spec)
            self.client = await self._connect(self.redis_url, timeout, child)
            self.supervisor.confirm_running(spec.name)
        await asyncio.to_thread(restore_caches, self.client, state_dir(self.config))
        self.runs = Runs(self.supervisor, self.client, self.redis_url, self.config, self.modules)
        self.runs.sensor_root = state_dir(self.config) / "sensors"
        self._server = ControlServer(self.socket_path, {
            "hello": self._hello, "status": self._status, "analyze": self._analyze,
            "alerts": self._query, "runs": self._query, "profiles": self._query,
            "profile": self._query, "modules": self._modules, "module": self._module,
            "reload": self._reload_cmd, "stop": self._stop_cmd,
        }, group=self.config.get_str("daemon", "socket_group"),
            admin_group=self.config.get_str("daemon", "admin_group"))
        await self._server.start()
        self.live_problem = ""
        if self.config.get_list("sensors", "interfaces"):
            try:
                run = self.runs.start_live(state_dir(self.config) / "sensors")
                log.info("live capture on %s: run %s",
                         ", ".join(self.config.get_list("sensors", "interfaces")), run.id)
            except (SensorError, OSError, redis.RedisError) as exc:
                # Analyses still work; status says why there is no live capture.
                self.live_problem = str(exc)
                log.error("no live capture: %s", exc)

    async def _connect(self, url: str, timeout: float, child: Child | None) -> RedisClient:
        deadline = time.monotonic() + timeout
        while True:
            if child is not None and child.done:
                raise StartupError(f"embedded redis-server failed: {child.last_exit}")
            try:
                return await asyncio.to_thread(connect, url, 0.2)
            except StoreUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise StartupError(f"{exc} (gave up after {timeout:g}s)") from exc
                await asyncio.sleep(0.05)  # redis-server may still be binding its socket

    def _summary(self) -> str:
        """One line for systemd's STATUS=."""
        runs = len(self.runs.runs) if self.runs is not None else 0
        line = f"serving on {self.socket_path}; runs: {runs}; modules: {len(self.modules)}"
        if self.live_problem:
            line += f"; no live capture: {self.live_problem.splitlines()[0]}"
        return line

    async def _heartbeat(self, watchdog: float | None) -> None:
        """WATCHDOG=1 every ``watchdog`` seconds, sent from the event loop so that a
        wedged loop gets us restarted; STATUS= again whenever the summary changed."""
        last_status = self._summary()
        while True:
            await asyncio.sleep(min(watchdog or STATUS_EVERY, STATUS_EVERY))
            fields: dict[str, str | int] = {"watchdog": 1} if watchdog else {}
            if (status := self._summary()) != last_status:
                fields["status"] = last_status = status
            if fields:
                notify(**fields)

    async def shutdown(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        notify(stopping=1)
        log.info("stopping")
        if self._server is not None:
            await self._server.close()
        if self.client is not None:
            await asyncio.to_thread(save_caches, self.client, state_dir(self.config))
        await self.supervisor.stop_all()
        if self.client is not None:
            self.client.close()

    def _on_child_change(self, child: Child) -> None:
        if self.runs is not None and child.spec.group:
            self.runs.on_child_change(child)

    # -- control commands --------------------------------------------------------

    async def _hello(self, req: Request) -> dict[str, Any]:
        return {"version": __version__, "pid": os.getpid(), "protocol": protocol.VERSION}

    async def _status(self, req: Request) -> dict[str, Any]:
        assert self.client is not None and self.runs is not None
        children = self.supervisor.status()
        for entry in children:
            if entry["role"] == "module" and entry["group"]:
                store = Store(self.client, entry["group"])
                label = entry["name"].rsplit("/", 1)[1]
                entry.update(await asyncio.to_thread(host_status, store, label))
        try:
            info = await asyncio.to_thread(self.client.info, "memory")
            redis_info = {"url": self.redis_url, "up": True,
                          "used_memory": info.get("used_memory")}
        except redis.RedisError as exc:
            redis_info = {"url": self.redis_url, "up": False, "error": str(exc)}
        return {
            "daemon": {"version": __version__, "pid": os.getpid(),
                       "uptime": round(time.time() - self.started, 1),
                       "config": str(self.config_path), "socket": str(self.socket_path),
                       "modules": list(self.modules),
                       "unavailable_modules": await asyncio.to_thread(self._unavailable),
                       "live_problem": self.live_problem},
            "redis": redis_info,
            "children": children,
            "runs": [await asyncio.to_thread(queries.run_figures, self.client, run)
                     for run in list(self.runs.runs.values())],  # may change meanwhile
        }

    async def _analyze(self, req: Request) -> dict[str, Any]:
        assert self.runs is not None
        if self._stop.is_set():
            raise ProtocolError(Code.FAILED, "slipsd is stopping")
        if len(req.fds) != 1:
            for fd in req.fds:
                os.close(fd)
            raise ProtocolError(Code.INVALID_ARGS,
                                "analyze needs exactly one open file or folder descriptor")
        name = str(req.args.get("name") or "input")
        output = str(req.args.get("output") or "")
        try:
            run = await self.runs.analyze(req.fds[0], name, output, req.progress)
        except RunError as exc:
            raise ProtocolError(Code.FAILED, f"analysis of {name} not started: {exc}") from exc
        if run.state == "failed":
            raise ProtocolError(Code.FAILED, f"analysis of {name} failed: {run.problem}")
        return run.info()

    async def _query(self, req: Request) -> dict[str, Any]:
        assert self.client is not None and self.runs is not None
        handler = {"alerts": queries.alerts, "runs": queries.list_runs,
                   "profiles": queries.profiles, "profile": queries.profile}[req.cmd]
        return await handler(self.runs, self.client, req.args)

    def _on_sighup(self) -> None:
        async def reload() -> None:
            try:
                result = await self.reload()
                log.info("reloaded on SIGHUP: %s", ", ".join(result["changed"]) or "no change")
            except ProtocolError as exc:
                log.error("SIGHUP: configuration not reloaded: %s", exc.message)

        self._sighup_task = asyncio.get_running_loop().create_task(reload())

    async def _modules(self, req: Request) -> dict[str, Any]:
        assert self.runs is not None
        available = await asyncio.to_thread(
            discover, module_directories(self.config),
            self.config.get_bool("modules", "entry_points"))
        hosts = {module: c for c in self.supervisor.status()
                 if c["role"] == "module" and c["group"].startswith("live-")
                 for module in host_modules(c["name"].rsplit("/", 1)[1])}
        reasons = await asyncio.to_thread(self._unavailable)
        return {"modules": [
            {"name": name, "origin": ref.origin, "enabled": name in self.modules,
             "live": hosts[name]["state"] if name in hosts else None,
             "unavailable": reasons.get(name)}
            for name, ref in sorted(available.items())]}

    def _unavailable(self) -> dict[str, str]:
        """Enabled modules that could not run now, and why (Module.unavailable)."""
        reasons = {}
        for name, ref in self.modules.items():
            why = unavailable_reason(ref, self.config.module_sections.get(name, {}))
            if why:
                reasons[name] = why
        return reasons

    async def _module(self, req: Request) -> dict[str, Any]:
        assert self.runs is not None
        action, name = str(req.args.get("action", "")), str(req.args.get("name", ""))
        if action not in ("enable", "disable", "restart"):
            raise ProtocolError(Code.INVALID_ARGS, "action must be enable, disable or restart")
        enabled = self.config.get_list("modules", "enabled")
        if action == "restart":
            if name not in enabled:
                raise ProtocolError(Code.NOT_FOUND, f"module {name!r} is not enabled")
            why = await self.runs.restart_module(name, self.modules[name])
            if why:
                raise ProtocolError(Code.FAILED, f"module {name} cannot run: {why}")
            return {"restarted": name}
        wanted = ([*enabled, name] if name not in enabled else enabled) if action == "enable" \
            else [m for m in enabled if m != name]
        value = ", ".join(wanted)
        previous = self.overrides.get("modules", {}).get("enabled")
        self.overrides.setdefault("modules", {})["enabled"] = value
        try:
            result = await self.reload()
        except ProtocolError:
            if previous is None:
                self.overrides["modules"].pop("enabled")
            else:
                self.overrides["modules"]["enabled"] = previous
            raise
        if req.args.get("persist"):
            drop_in = self.config_path.parent / (self.config_path.stem + ".d")
            await asyncio.to_thread(_persist_modules, drop_in, value)
            result["persisted"] = str(drop_in / "90-slipsctl.conf")
            # The file says it now; an override would hide later edits of it.
            self.overrides["modules"].pop("enabled", None)
        return result

    async def _reload_cmd(self, req: Request) -> dict[str, Any]:
        return await self.reload()

    async def reload(self) -> dict[str, Any]:
        """Validate the configuration on disk; apply it only when valid, as a diff."""
        async with self._reloading:
            try:
                new = await asyncio.to_thread(load, self.config_path, self.overrides)
                modules = await asyncio.to_thread(validate_modules, new)
            except ConfigError as exc:
                raise ProtocolError(Code.INVALID_CONFIG,
                                    "configuration rejected, the running one stays:\n"
                                    + "\n".join(exc.problems)) from None
            change = diff(self.config, new)
            digest = await asyncio.to_thread(fingerprint, whitelist_file(new))
            if digest != self.whitelist_digest:  # same file name, new entries
                change.changed["whitelist.content"] = (self.whitelist_digest, digest)
            if change.empty:
                return change.summary()
            notify(reloading=1, monotonic_usec=time.monotonic_ns() // 1000)
            try:
                assert self.runs is not None
                self.config, self.modules = new, modules
                self.whitelist_digest = digest
                self.live_problem = ""
                await self.runs.apply(new, modules, change)
            except (SensorError, OSError, redis.RedisError) as exc:
                # The configuration is valid and now in use; live capture could not follow.
                self.live_problem = str(exc)
                log.error("no live capture after the reload: %s", exc)
            finally:
                notify(ready=1, status=self._summary())
            log.info("configuration reloaded: %s", ", ".join(change.changed))
            return {**change.summary(), "live_problem": self.live_problem}

    async def _stop_cmd(self, req: Request) -> dict[str, Any]:
        asyncio.get_running_loop().call_soon(self._stop.set)
        return {"stopping": True}


def _persist_modules(drop_in: Path, enabled: str) -> None:
    drop_in.mkdir(parents=True, exist_ok=True)
    target = drop_in / "90-slipsctl.conf"
    tmp = target.with_suffix(".tmp")
    tmp.write_text("# Written by slipsctl module ... --persist; edit or remove freely.\n"
                   f"[modules]\nenabled = {enabled}\n")
    os.replace(tmp, target)


def run_daemon(config: Config, config_path: Path,
               overrides: dict[str, dict[str, str]] | None = None) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(Daemon(config, config_path, overrides).run())
    return 130
