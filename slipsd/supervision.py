"""Process control: start children from specs, restart them with backoff, stop them in order.

States follow supervisor's model::

    starting -> running            alive for start_seconds
    starting/running -> backoff    died unexpectedly; restarted after a delay
    backoff -> starting            delay over
    * -> stopping -> exited        asked to stop
    * -> exited                    finished normally (or restart policy says no)
    * -> fatal                     too many quick crashes, or a configuration error

This module knows argv, environments and exit codes only; it never imports
detection code.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

EX_CONFIG = 78  # a child's "my configuration is wrong": retrying cannot help


class State(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    EXITED = "exited"
    FATAL = "fatal"


class Restart(enum.StrEnum):
    ALWAYS = "always"  # long-running: any exit is a crash
    ON_FAILURE = "on-failure"  # jobs: exit 0 means done
    NEVER = "never"


@dataclass(frozen=True)
class Policy:
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    start_seconds: float = 2.0
    fatal_after: int = 5
    stop_timeout: float = 10.0


@dataclass
class ProcessSpec:
    name: str  # unique among the supervisor's children
    argv: Sequence[str]
    role: str = ""  # what it is, for status: redis, ingest, module, evidence
    group: str = ""  # run id, so a run's children are stopped together
    env: dict[str, str] | None = None
    pass_fds: tuple[int, ...] = ()
    own_fds: bool = False  # close pass_fds once the child has them (one-shot jobs)
    cwd: str | None = None
    # Log the child's stdout and stderr line by line (for programs that are not
    # ours, such as zeek, whose warnings must reach the journal with a name on them).
    log_output: bool = False
    restart: Restart = Restart.ALWAYS
    stop_order: int = 50  # lower stops first


@dataclass
class Child:
    spec: ProcessSpec
    state: State = State.STARTING
    pid: int | None = None
    started_at: float = 0.0  # wall clock, for status
    restarts: int = 0
    last_exit: str = ""  # "exit status 1", "killed by SIGKILL", "cannot start: ..."
    returncode: int | None = None
    _finished: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _proc: asyncio.subprocess.Process | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.state in (State.EXITED, State.FATAL)

    async def wait(self) -> Child:
        await self._finished.wait()
        return self

    def status(self) -> dict[str, Any]:
        alive = self.pid is not None and self.state in (State.STARTING, State.RUNNING,
                                                          State.STOPPING)
        return {
            "name": self.spec.name,
            "role": self.spec.role,
            "group": self.spec.group,
            "state": str(self.state),
            "pid": self.pid if alive else None,
            "uptime": round(time.time() - self.started_at, 1) if alive else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


async def _log_lines(name: str, stream: asyncio.StreamReader) -> None:
    """A child's output, one log record per line: warnings are reported, never fatal."""
    out = logging.getLogger(f"slipsd.child.{name}")
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        if text:
            out.warning("%s", text)


def _die_with_parent() -> None:
    # Runs in the forked child before exec: if slipsd itself is killed, its
    # children (redis-server included) must not outlive it as orphans.
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Supervisor:
    def __init__(
        self, policy: Policy, on_change: Callable[[Child], None] | None = None
    ) -> None:
        self.policy = policy
        self.children: dict[str, Child] = {}
        self._on_change = on_change

    def start(self, spec: ProcessSpec) -> Child:
        old = self.children.get(spec.name)
        if old is not None and not old.done:
            raise ValueError(f"child {spec.name!r} is already supervised")
        child = Child(spec)
        self.children[spec.name] = child
        child._task = asyncio.get_running_loop().create_task(self._supervise(child))
        return child

    def _set(self, child: Child, state: State) -> None:
        if child.state != state:
            log.debug("%s: %s -> %s", child.spec.name, child.state, state)
        child.state = state
        if child.done:
            child._finished.set()
        if self._on_change is not None:
            try:
                self._on_change(child)
            except Exception:
                log.exception("state change listener failed for %s", child.spec.name)

    async def _supervise(self, child: Child) -> None:
        quick_crashes = 0
        while True:
            self._set(child, State.STARTING)
            started = time.monotonic()
            returncode = await self._run_once(child)
            uptime = time.monotonic() - started
            if child._stop.is_set():
                self._set(child, State.EXITED)
                return
            spec = child.spec
            if returncode == EX_CONFIG:
                log.error("%s: configuration error (%s), not restarting", spec.name,
                          child.last_exit)
                self._set(child, State.FATAL)
                return
            if spec.restart is Restart.NEVER or (
                spec.restart is Restart.ON_FAILURE and returncode == 0
            ):
                self._set(child, State.EXITED)
                return
            quick_crashes = quick_crashes + 1 if uptime < self.policy.start_seconds else 1
            if quick_crashes >= self.policy.fatal_after:
                log.error("%s: %d quick crashes in a row (last: %s), giving up", spec.name,
                          quick_crashes, child.last_exit)
                self._set(child, State.FATAL)
                return
            delay = min(self.policy.backoff_initial * 2 ** (quick_crashes - 1),
                        self.policy.backoff_max)
            log.warning("%s: %s after %.1fs, restarting in %.1fs", spec.name, child.last_exit,
                        uptime, delay)
            self._set(child, State.BACKOFF)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child._stop.wait(), delay)
            if child._stop.is_set():
                self._set(child, State.EXITED)
                return
            child.restarts += 1

    async def _run_once(self, child: Child) -> int:
        spec = child.spec
        try:
            pipe = asyncio.subprocess.PIPE if spec.log_output else None
            proc = await asyncio.create_subprocess_exec(
                *spec.argv, env=spec.env, pass_fds=spec.pass_fds, stdin=asyncio.subprocess.DEVNULL,
                stdout=pipe, stderr=asyncio.subprocess.STDOUT if pipe else None, cwd=spec.cwd,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            child.last_exit = f"cannot start {spec.argv[0]}: {reason}"
            child.returncode = None
            return 127
        finally:
            if spec.own_fds:
                for fd in spec.pass_fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        child._proc, child.pid, child.started_at = proc, proc.pid, time.time()
        if child._stop.is_set():  # stop() came while we were starting it
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        logger = None
        if proc.stdout is not None:
            logger = asyncio.get_running_loop().create_task(_log_lines(spec.name, proc.stdout))
        wait = asyncio.ensure_future(proc.wait())
        done, _ = await asyncio.wait({wait}, timeout=self.policy.start_seconds)
        if not done and child.state is State.STARTING:
            self._set(child, State.RUNNING)
        returncode = await wait
        if logger is not None:  # its last words belong before its exit in the log
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(logger, 5.0)
        child.returncode = returncode
        child.last_exit = describe_exit(returncode)
        child._proc = None
        return returncode

    async def stop(self, name: str, timeout: float | None = None) -> None:
        child = self.children.get(name)
        if child is None or child.done:
            return
        child._stop.set()
        proc = child._proc
        if proc is not None and proc.returncode is None:
            self._set(child, State.STOPPING)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child._finished.wait(),
                                       timeout if timeout is not None else self.policy.stop_timeout)
            except TimeoutError:
                log.warning("%s did not stop after SIGTERM, killing it", name)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        await child._finished.wait()

    async def stop_many(self, names: Sequence[str]) -> None:
        """Stop children in stop_order; those of equal order stop concurrently."""
        children = [self.children[n] for n in names if n in self.children]
        for order in sorted({c.spec.stop_order for c in children}):
            await asyncio.gather(*(self.stop(c.spec.name) for c in children
                                   if c.spec.stop_order == order))

    async def stop_all(self) -> None:
        await self.stop_many(list(self.children))

    def confirm_running(self, name: str) -> None:
        """The child proved it works (e.g. Redis answered PING) before start_seconds."""
        child = self.children.get(name)
        if child is not None and child.state is State.STARTING and child._proc is not None:
            self._set(child, State.RUNNING)

    def forget(self, name: str) -> None:
        """Drop a finished child from the table (finished analyses)."""
        child = self.children.get(name)
        if child is not None and child.done:
            del self.children[name]

    def status(self) -> list[dict[str, Any]]:
        return [c.status() for c in self.children.values()]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of children: ours, without systemd's notify socket."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC",
                                                              "WATCHDOG_PID", "LISTEN_FDS")}
    env.update(extra or {})
    return env
