"""slipsd: the long-running supervisor that owns Redis, the control socket and every run.

This is its start-up, shutdown and configuration reload; what each control
command does is in slipsd/commands.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path
from typing import Any

import redis

from slipsd import __version__, protocol
from slipsd.caches import restore_caches, save_caches
from slipsd.commands import Commands
from slipsd.config import Config, ConfigError, load
from slipsd.config_paths import runtime_dir, state_dir, whitelist_file
from slipsd.control import ControlServer, socket_answers
from slipsd.module_loader import ModuleRef, validate_modules
from slipsd.notify import notify, watchdog_interval
from slipsd.protocol import Code, ProtocolError
from slipsd.redis_server import redis_spec
from slipsd.reload import diff
from slipsd.runs import Runs
from slipsd.sensors.zeek import SensorError
from slipsd.store import RedisClient, StoreUnavailable, connect
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
        self.stopping = asyncio.Event()  # SIGTERM, SIGINT or the stop command
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
            loop.add_signal_handler(signum, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        notify(ready=1, status=self._summary())
        self._heartbeat_task = asyncio.create_task(self._heartbeat(watchdog_interval()))
        log.info("slipsd %s ready on %s", __version__, self.socket_path)
        await self.stopping.wait()
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
        self._server = ControlServer(
            self.socket_path, Commands(self).table(),
            group=self.config.get_str("daemon", "socket_group"),
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

    def _on_sighup(self) -> None:
        async def reload() -> None:
            try:
                result = await self.reload()
                log.info("reloaded on SIGHUP: %s", ", ".join(result["changed"]) or "no change")
            except ProtocolError as exc:
                log.error("SIGHUP: configuration not reloaded: %s", exc.message)

        self._sighup_task = asyncio.get_running_loop().create_task(reload())

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


def run_daemon(config: Config, config_path: Path,
               overrides: dict[str, dict[str, str]] | None = None) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(Daemon(config, config_path, overrides).run())
    return 130
