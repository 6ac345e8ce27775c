"""Module hosts: which modules share a process, and a shared host on a real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from slipsd.events import TRAFFIC_CHANNELS
from slipsd.hosting import consumer_group, host_label, host_modules, plan_hosts
from slipsd.module_loader import builtin_directory, discover
from slipsd.store import Producer, RedisClient, Store
from slipsd.store._bus import xinfo_dict

from conftest import REPO

TEST_MODULES = REPO / "tests" / "modules"
REFS = discover([builtin_directory(), TEST_MODULES], entry_points=False)
SHIPPED = ["long_connection", "flows", "scans", "arp", "tunnels"]


def test_shipped_modules_are_dealt_over_the_processes_in_order() -> None:
    assert plan_hosts(REFS, SHIPPED, 2) == [
        ("long_connection", "scans", "tunnels"), ("flows", "arp")]
    assert plan_hosts(REFS, SHIPPED, 1) == [tuple(SHIPPED)]
    # More processes than modules, or 0: one each.
    assert plan_hosts(REFS, SHIPPED, 9) == [(m,) for m in SHIPPED]
    assert plan_hosts(REFS, SHIPPED, 0) == [(m,) for m in SHIPPED]


def test_other_modules_and_isolated_ones_run_alone() -> None:
    enabled = ["flows", "raiser", "scans", "arp", "flow_counter"]
    assert plan_hosts(REFS, enabled, 1, isolate={"arp"}) == [
        ("flows", "scans"), ("raiser",), ("arp",), ("flow_counter",)]


def test_names_of_a_host() -> None:
    label = host_label(("flows", "scans"))
    assert label == "flows+scans"
    assert host_modules(label) == ["flows", "scans"]
    assert consumer_group(["flows", "scans"]) == "module:flows+scans"
    assert consumer_group(["arp"]) == "module:arp"  # a module alone keeps its old group


def _flows(redis_client: RedisClient, run_id: str, count: int) -> None:
    producer = Producer(redis_client, run_id, TRAFFIC_CHANNELS, max_lag=10_000)
    for i in range(count):
        producer.emit("new_flow", {"profile": "10.0.0.1", "tw": 0, "uid": f"C{i}",
                                   "ts": 1000.0 + i})
    producer.close()


def test_a_shared_host_reads_once_and_keeps_modules_apart(
    redis_client: RedisClient, redis_url: str, tmp_path: Path,
) -> None:
    run_id = "shared-1"
    _flows(redis_client, run_id, 150)
    modules = [
        {"name": "raiser", "path": str(TEST_MODULES / "raiser")},
        {"name": "flow_counter", "path": str(TEST_MODULES / "flow_counter")},
        {"name": "missing", "path": str(tmp_path / "missing")},  # cannot be loaded
    ]
    spec = {"run_id": run_id, "redis_url": redis_url, "modules": modules, "block_ms": 200}
    done = subprocess.run([sys.executable, "-m", "slipsd.child", "module", json.dumps(spec)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    store = Store(redis_client, run_id)
    # Each module has its own counters: the raiser's errors are not the counter's.
    raiser, counter = store.module_stats("raiser"), store.module_stats("flow_counter")
    assert (raiser["processed"], raiser["errors"]) == (150, 150)
    assert "boom on" in raiser["last_error"]
    assert (counter["processed"], counter["errors"]) == (150, 0)
    # The counter still saw every flow once: its evidence at 10 and 100 flows.
    published = [json.loads(f["d"]) for _, f in
                 redis_client.xrange(f"slips:{{{run_id}}}:stream:evidence_added")]
    many = sorted(m["evidence"]["description"] for m in published
                  if m.get("evidence", {}).get("type") == "MANY_FLOWS")
    assert many == ["10 flows in window 0", "100 flows in window 0"]
    # Every module, the broken one too, says it is done, so the run can end.
    done_by = {m["done"]: m["failed"] for m in published if "done" in m}
    assert done_by.keys() == {"raiser", "flow_counter", "missing"}
    assert done_by["raiser"] == done_by["flow_counter"] == ""
    assert "cannot load" in done_by["missing"] and "missing" in done.stderr
    # One consumer group for the host: the stream was read once, not once per module.
    groups = redis_client.execute_command("XINFO", "GROUPS",
                                          f"slips:{{{run_id}}}:stream:new_flow")
    assert [xinfo_dict(g)["name"] for g in groups] == ["module:raiser+flow_counter+missing"]
