"""What each control socket command does, on the daemon's behalf.

slipsd/control.py receives and checks the requests (framing, peers, which
commands need admin rights); the handlers here answer them from the daemon's
state. A handler refuses a request by raising ``ProtocolError``.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from slipsd import __version__, protocol, queries
from slipsd.control import Handler, Request
from slipsd.hosting import host_modules, host_status
from slipsd.module_loader import discover, module_directories, unavailable_reason
from slipsd.protocol import Code, ProtocolError
from slipsd.runs import RunError
from slipsd.store import Store

if TYPE_CHECKING:
    from slipsd.daemon import Daemon


class Commands:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def table(self) -> dict[str, Handler]:
        """Command name -> handler, for the control server."""
        return {
            "hello": self.hello, "status": self.status, "analyze": self.analyze,
            "alerts": self.query, "runs": self.query, "profiles": self.query,
            "profile": self.query, "modules": self.modules, "module": self.module,
            "reload": self.reload, "stop": self.stop,
        }

    async def hello(self, req: Request) -> dict[str, Any]:
        return {"version": __version__, "pid": os.getpid(), "protocol": protocol.VERSION}

    async def status(self, req: Request) -> dict[str, Any]:
        daemon = self.daemon
        assert daemon.client is not None and daemon.runs is not None
        children = daemon.supervisor.status()
        for entry in children:
            if entry["role"] == "module" and entry["group"]:
                store = Store(daemon.client, entry["group"])
                label = entry["name"].rsplit("/", 1)[1]
                entry.update(await asyncio.to_thread(host_status, store, label))
        try:
            info = await asyncio.to_thread(daemon.client.info, "memory")
            redis_info = {"url": daemon.redis_url, "up": True,
                          "used_memory": info.get("used_memory")}
        except redis.RedisError as exc:
            redis_info = {"url": daemon.redis_url, "up": False, "error": str(exc)}
        return {
            "daemon": {"version": __version__, "pid": os.getpid(),
                       "uptime": round(time.time() - daemon.started, 1),
                       "config": str(daemon.config_path), "socket": str(daemon.socket_path),
                       "modules": list(daemon.modules),
                       "unavailable_modules": await asyncio.to_thread(self._unavailable),
                       "live_problem": daemon.live_problem},
            "redis": redis_info,
            "children": children,
            "runs": [await asyncio.to_thread(queries.run_figures, daemon.client, run)
                     for run in list(daemon.runs.runs.values())],  # may change meanwhile
        }

    async def analyze(self, req: Request) -> dict[str, Any]:
        assert self.daemon.runs is not None
        if self.daemon.stopping.is_set():
            raise ProtocolError(Code.FAILED, "slipsd is stopping")
        if len(req.fds) != 1:
            for fd in req.fds:
                os.close(fd)
            raise ProtocolError(Code.INVALID_ARGS,
                                "analyze needs exactly one open file or folder descriptor")
        name = str(req.args.get("name") or "input")
        output = str(req.args.get("output") or "")
        try:
            run = await self.daemon.runs.analyze(req.fds[0], name, output, req.progress)
        except RunError as exc:
            raise ProtocolError(Code.FAILED, f"analysis of {name} not started: {exc}") from exc
        if run.state == "failed":
            raise ProtocolError(Code.FAILED, f"analysis of {name} failed: {run.problem}")
        return run.info()

    async def query(self, req: Request) -> dict[str, Any]:
        assert self.daemon.client is not None and self.daemon.runs is not None
        handler = {"alerts": queries.alerts, "runs": queries.list_runs,
                   "profiles": queries.profiles, "profile": queries.profile}[req.cmd]
        return await handler(self.daemon.runs, self.daemon.client, req.args)

    async def modules(self, req: Request) -> dict[str, Any]:
        daemon = self.daemon
        assert daemon.runs is not None
        available = await asyncio.to_thread(
            discover, module_directories(daemon.config),
            daemon.config.get_bool("modules", "entry_points"))
        hosts = {module: c for c in daemon.supervisor.status()
                 if c["role"] == "module" and c["group"].startswith("live-")
                 for module in host_modules(c["name"].rsplit("/", 1)[1])}
        reasons = await asyncio.to_thread(self._unavailable)
        return {"modules": [
            {"name": name, "origin": ref.origin, "enabled": name in daemon.modules,
             "live": hosts[name]["state"] if name in hosts else None,
             "unavailable": reasons.get(name)}
            for name, ref in sorted(available.items())]}

    def _unavailable(self) -> dict[str, str]:
        """Enabled modules that could not run now, and why (Module.unavailable)."""
        reasons = {}
        for name, ref in self.daemon.modules.items():
            why = unavailable_reason(ref, self.daemon.config.module_sections.get(name, {}))
            if why:
                reasons[name] = why
        return reasons

    async def module(self, req: Request) -> dict[str, Any]:
        daemon = self.daemon
        assert daemon.runs is not None
        action, name = str(req.args.get("action", "")), str(req.args.get("name", ""))
        if action not in ("enable", "disable", "restart"):
            raise ProtocolError(Code.INVALID_ARGS, "action must be enable, disable or restart")
        enabled = daemon.config.get_list("modules", "enabled")
        if action == "restart":
            if name not in enabled:
                raise ProtocolError(Code.NOT_FOUND, f"module {name!r} is not enabled")
            why = await daemon.runs.restart_module(name, daemon.modules[name])
            if why:
                raise ProtocolError(Code.FAILED, f"module {name} cannot run: {why}")
            return {"restarted": name}
        wanted = ([*enabled, name] if name not in enabled else enabled) if action == "enable" \
            else [m for m in enabled if m != name]
        value = ", ".join(wanted)
        previous = daemon.overrides.get("modules", {}).get("enabled")
        daemon.overrides.setdefault("modules", {})["enabled"] = value
        try:
            result = await daemon.reload()
        except ProtocolError:
            if previous is None:
                daemon.overrides["modules"].pop("enabled")
            else:
                daemon.overrides["modules"]["enabled"] = previous
            raise
        if req.args.get("persist"):
            drop_in = daemon.config_path.parent / (daemon.config_path.stem + ".d")
            await asyncio.to_thread(_persist_modules, drop_in, value)
            result["persisted"] = str(drop_in / "90-slipsctl.conf")
            # The file says it now; an override would hide later edits of it.
            daemon.overrides["modules"].pop("enabled", None)
        return result

    async def reload(self, req: Request) -> dict[str, Any]:
        return await self.daemon.reload()

    async def stop(self, req: Request) -> dict[str, Any]:
        asyncio.get_running_loop().call_soon(self.daemon.stopping.set)
        return {"stopping": True}


def _persist_modules(drop_in: Path, enabled: str) -> None:
    drop_in.mkdir(parents=True, exist_ok=True)
    target = drop_in / "90-slipsctl.conf"
    tmp = target.with_suffix(".tmp")
    tmp.write_text("# Written by slipsctl module ... --persist; edit or remove freely.\n"
                   f"[modules]\nenabled = {enabled}\n")
    os.replace(tmp, target)
