"""The logins module without Redis: when a conn record waits for ssh.log, and when not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slipsd.module_loader import ModuleRef, load_class
from slipsd.testing import ModuleTestContext

REPO = Path(__file__).resolve().parents[1]
Logins = load_class(ModuleRef("logins", path=str(REPO / "modules" / "logins")))
T0 = 1_700_000_000.0


def ssh_flow(ts: float, uid: str) -> dict[str, Any]:
    """A port-22 connection big enough both ways to be judged a successful login."""
    return {"ts": T0 + ts, "uid": uid, "saddr": "192.168.1.10", "sport": 50000,
            "daddr": "198.51.100.22", "dport": 22, "proto": "tcp", "service": "ssh",
            "state": "SF", "sbytes": 5200, "dbytes": 7400, "duration": 3.0,
            "profile": "192.168.1.10", "tw": 0}


def test_a_conn_record_waits_for_ssh_log_when_the_input_has_one() -> None:
    ctx = ModuleTestContext(Logins)
    ctx.feed("new_input", {"source": "zeek", "log_types": ["conn", "ssh"]})
    assert ctx.feed("new_flow", ssh_flow(0, "C1")) == []
    found = ctx.finish()
    assert [(e.type, e.confidence) for e in found] == [("SSH_SUCCESSFUL_LOGIN", 0.5)]


def test_an_input_without_ssh_log_has_the_record_judged_at_once() -> None:
    ctx = ModuleTestContext(Logins)
    ctx.feed("new_input", {"source": "flows.argus", "log_types": ["conn"]})
    found = ctx.feed("new_flow", ssh_flow(0, "C2"))
    assert [(e.type, e.attacker, e.victim) for e in found] == [
        ("SSH_SUCCESSFUL_LOGIN", "192.168.1.10", "198.51.100.22")]
    assert ctx.finish() == []
