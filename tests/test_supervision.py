"""Supervision with real child processes and real signals."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from slipsd.supervision import EX_CONFIG, Policy, ProcessSpec, Restart, State, Supervisor

FAST = Policy(backoff_initial=0.01, backoff_max=0.05, start_seconds=0.5, fatal_after=3,
              stop_timeout=2.0)


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_crash_loop_goes_fatal_with_backoff() -> None:
    async def scenario() -> None:
        states: list[str] = []
        sup = Supervisor(FAST, on_change=lambda c: states.append(str(c.state)))
        child = sup.start(ProcessSpec("crasher", py("raise SystemExit(3)")))
        await asyncio.wait_for(child.wait(), 30)
        assert child.state is State.FATAL
        assert child.restarts == FAST.fatal_after - 1
        assert child.last_exit == "exit status 3"
        assert states.count("backoff") == FAST.fatal_after - 1
        status = sup.status()[0]
        assert status["state"] == "fatal" and status["pid"] is None

    run(scenario())


def test_killed_child_is_restarted(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    async def scenario() -> None:
        sup = Supervisor(FAST)
        code = f"import os,time; open({str(pidfile)!r},'w').write(str(os.getpid()))\n" \
               "import signal; signal.pause()"
        child = sup.start(ProcessSpec("sleeper", py(code)))
        while child.state is not State.RUNNING:
            await asyncio.sleep(0.01)
        first = child.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        while not (child.state is State.RUNNING and child.pid != first):
            await asyncio.sleep(0.01)
        assert child.restarts == 1
        assert child.last_exit == "killed by SIGKILL"
        await sup.stop_all()
        assert child.state is State.EXITED

    run(asyncio.wait_for(scenario(), 30))


def test_config_error_is_fatal_at_once() -> None:
    async def scenario() -> None:
        sup = Supervisor(FAST)
        child = sup.start(ProcessSpec("badconf", py(f"raise SystemExit({EX_CONFIG})")))
        await asyncio.wait_for(child.wait(), 30)
        assert child.state is State.FATAL and child.restarts == 0

    run(scenario())


def test_job_that_succeeds_is_not_restarted() -> None:
    async def scenario() -> None:
        sup = Supervisor(FAST)
        child = sup.start(ProcessSpec("job", py("pass"), restart=Restart.ON_FAILURE))
        await asyncio.wait_for(child.wait(), 30)
        assert child.state is State.EXITED and child.returncode == 0

    run(scenario())


def test_missing_program_says_so() -> None:
    async def scenario() -> None:
        sup = Supervisor(FAST)
        child = sup.start(ProcessSpec("ghost", ["/nonexistent/program"]))
        await asyncio.wait_for(child.wait(), 30)
        assert child.state is State.FATAL
        assert "cannot start /nonexistent/program" in child.last_exit

    run(scenario())


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    async def scenario() -> None:
        policy = Policy(start_seconds=0.2, stop_timeout=0.5)
        sup = Supervisor(policy)
        code = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.pause()"
        child = sup.start(ProcessSpec("stubborn", py(code)))
        while child.state is not State.RUNNING:
            await asyncio.sleep(0.01)
        pid = child.pid
        assert pid is not None
        await sup.stop("stubborn")
        assert child.state is State.EXITED
        assert child.last_exit == "killed by SIGKILL"
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    run(asyncio.wait_for(scenario(), 30))


def test_stop_order_is_respected(tmp_path: Path) -> None:
    log = tmp_path / "order"

    async def scenario() -> None:
        sup = Supervisor(Policy(start_seconds=0.2))
        for name, order in (("late", 90), ("early", 10), ("middle", 50)):
            code = ("import signal,sys\n"
                    f"def bye(*a):\n    open({str(log)!r},'a').write({name!r}+'\\n'); sys.exit(0)\n"
                    "signal.signal(signal.SIGTERM, bye)\nsignal.pause()")
            sup.start(ProcessSpec(name, py(code), stop_order=order))
        while any(c.state is not State.RUNNING for c in sup.children.values()):
            await asyncio.sleep(0.01)
        await sup.stop_all()

    run(asyncio.wait_for(scenario(), 30))
    assert log.read_text().split() == ["early", "middle", "late"]


def test_output_of_foreign_programs_is_logged(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        sup = Supervisor(FAST)
        code = "import sys; print('warning: no checksum offload'); " \
               "print('event queue full', file=sys.stderr)"
        child = sup.start(ProcessSpec("zeek-eth0", py(code), restart=Restart.ON_FAILURE,
                                      log_output=True, cwd=str(tmp_path)))
        await asyncio.wait_for(child.wait(), 30)
        assert child.state is State.EXITED  # warnings are not a failure

    with caplog.at_level("WARNING"):
        run(scenario())
    messages = [r.getMessage() for r in caplog.records if r.name == "slipsd.child.zeek-eth0"]
    assert sorted(messages) == ["event queue full", "warning: no checksum offload"]
