"""Memory of a long live run: is it flat while traffic time crosses many windows?

    .venv/bin/python bench/live.py [--flows 5M] [--days 5] [--work DIR] [--set K=V ...]

Starts a private slipsd (as bench/run.py does) whose live run follows the sensor
folder of tests/zeek_standin/zeek (a stand-in for Zeek that writes nothing here),
with all default modules and the default 3600 s windows and keep_windows, then
appends gen_zeek's ordinary traffic (conn, dns, ssl and http records, with its scans,
beacon and blacklisted contacts mixed in) to the sensor's logs, in chunks, as fast
as the live ingest takes them: it waits while more than --ahead records are written
but not yet published. Traffic time runs over --days days, so --flows conn records
cross many windows. Flows are conn.log records (as slips counts them).

Every second: RSS of slipsd and all its children (bench/run.py's TreeSampler, Redis
included) and Redis ``used_memory``. Printed: a row per 500k flows (flows/s over that
step, the highest total RSS and Redis memory during it), and the growth of the second
half's peaks over the first half's. One JSON line is appended to DIR/results.jsonl.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import gen_zeek  # noqa: E402
from run import TreeSampler, label, parse_size  # noqa: E402

from slipsd import protocol  # noqa: E402
from slipsd.store import RedisClient, Store, connect  # noqa: E402

STANDIN = REPO / "tests" / "zeek_standin" / "zeek"
CONN_PER_STEP = 1.86  # conn records per gen_zeek flow (a DNS lookup's connection, often)
STEP = 500_000  # flows per table row
SEED = 1
LOGS = ("conn", "dns", "ssl", "http")


class Sampler(TreeSampler):
    """TreeSampler's tree walk, kept as a series: (seconds, flows, RSS bytes, Redis bytes)."""

    def __init__(self, root: int, client: RedisClient, run_id: str) -> None:
        super().__init__(root, period=1.0, pss_every=30)
        self.client, self.store = client, Store(client, run_id)
        self.series: list[tuple[float, int, int, int]] = []
        self.t0 = time.monotonic()

    def sample(self) -> None:
        self.peak_rss = 0  # so that after the walk it holds this sample's total
        super().sample()
        try:
            used = int(self.client.info("memory")["used_memory"])
            flows = self.store.stats().get("events.new_flow", 0)
        except Exception:  # slipsd stopping: the sample is just missed
            return
        self.series.append((time.monotonic() - self.t0, flows, self.peak_rss, used))


def traffic(flows: int, days: float) -> Iterator[tuple[str, dict[str, Any]]]:
    """gen_zeek's records in time order, about ``flows`` conn records over ``days``."""
    span = days * 86400.0
    net = gen_zeek.Network(random.Random(SEED), 200, 5000)
    steps = math.ceil(flows / CONN_PER_STEP)
    merged = heapq.merge(gen_zeek.background(net, steps, span),
                         gen_zeek.injected(net, span, {}), key=lambda item: item[0])
    for _, _, log_type, record in merged:
        yield log_type, {k: v for k, v in record.items() if v is not None}


def start_daemon(work: Path, sets: list[str], sweep: float) -> tuple[subprocess.Popen[bytes], Path]:
    runtime = work / "run"
    conf = ["daemon.log_level=info", "sensors.interfaces=standin0", "sensors.sensor=zeek",
            f"sensors.zeek={STANDIN}", f"daemon.runtime_dir={runtime}",
            f"daemon.state_dir={work / 'state'}", f"output.directory={work / 'out'}", *sets]
    env = {**os.environ, "ZEEK_STANDIN_LINES": "0", "SLIPS_RETENTION_SECONDS": str(sweep)}
    with open(work / "slipsd.log", "w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "slipsd", *(a for c in conf for a in ("--set", c))],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=log, env=env)
    sock = runtime / protocol.SOCKET_NAME
    deadline = time.monotonic() + 60
    while not (sock.exists() and (work / "state" / "sensors" / "standin0" / "conn.log").exists()):
        if time.monotonic() > deadline or daemon.poll() is not None:
            raise RuntimeError(f"slipsd did not start: see {work / 'slipsd.log'}")
        time.sleep(0.1)
    return daemon, runtime


def live_run(runtime: Path) -> str:
    with protocol.Client(str(runtime / protocol.SOCKET_NAME), timeout=30) as client:
        runs = client.call("status")["runs"]
    return str(next(r["id"] for r in runs if r["source"] == "live"))


def published(store: Store) -> int:
    return sum(v for k, v in store.stats().items() if k.startswith("events."))


def feed(folder: Path, store: Store, flows: int, days: float, chunk: int,
         ahead: int) -> tuple[int, int]:
    """Append the traffic in chunks; returns (conn records, all records) written."""
    # Opened for the whole feed, as a sensor keeps its logs open.
    outs = {name: open(folder / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115
            for name in LOGS}
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    lines: dict[str, list[str]] = {name: [] for name in LOGS}
    written = conn = pending = 0
    try:
        for log_type, record in traffic(flows, days):
            lines[log_type].append(dumps(record) + "\n")
            pending += 1
            conn += log_type == "conn"
            if pending >= chunk or conn >= flows:
                for name, items in lines.items():
                    outs[name].write("".join(items))  # whole lines, one write per log
                    outs[name].flush()
                    items.clear()
                written += pending
                pending = 0
                while written - published(store) > ahead:
                    time.sleep(0.2)
            if conn >= flows:
                break
    finally:
        for out in outs.values():
            out.close()
    return conn, written


def rows(series: list[tuple[float, int, int, int]], flows: int) -> list[dict[str, Any]]:
    out, start, prev_t, prev_f = [], 0, 0.0, 0
    for mark in range(STEP, flows + STEP, STEP):
        part = [s for s in series[start:] if s[1] <= mark]
        if not part:
            continue
        start += len(part)
        f = part[-1][1]
        t = min(s[0] for s in part if s[1] == f)  # when it got there, not the idle end
        out.append({"flows": f, "flows_per_s": round((f - prev_f) / max(t - prev_t, 1e-9)),
                    "rss_mb": round(max(s[2] for s in part) / 2**20),
                    "redis_mb": round(max(s[3] for s in part) / 2**20, 1)})
        prev_t, prev_f = t, f
    return out


def growth(series: list[tuple[float, int, int, int]], flows: int) -> dict[str, float]:
    """Peaks of the second half of the flows over those of the first half."""
    first = [s for s in series if s[1] <= flows / 2]
    second = [s for s in series if s[1] > flows / 2]
    if not first or not second:
        return {}
    return {what: round(100.0 * (max(s[i] for s in second) / max(s[i] for s in first) - 1), 1)
            for what, i in (("rss_pct", 2), ("redis_pct", 3))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=parse_size, default=5_000_000)
    parser.add_argument("--days", type=float, default=5.0, help="traffic time covered")
    parser.add_argument("--work", type=Path, default=Path("/tmp/slips-bench/live"))
    parser.add_argument("--chunk", type=int, default=20_000, help="records per write")
    parser.add_argument("--ahead", type=int, default=100_000,
                        help="records written but not yet published before waiting")
    parser.add_argument("--sweep", type=float, default=30.0, help="seconds between sweeps")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    daemon, runtime = start_daemon(args.work, args.set, args.sweep)
    try:
        client = connect(f"unix://{runtime / 'redis.sock'}")
        run_id = live_run(runtime)
        store = Store(client, run_id)
        sampler = Sampler(daemon.pid, connect(f"unix://{runtime / 'redis.sock'}"), run_id)
        sampler.start()
        started, cpu0 = time.monotonic(), os.times()
        conn, written = feed(args.work / "state" / "sensors" / "standin0", store, args.flows,
                             args.days, args.chunk, args.ahead)
        while published(store) < written:
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        time.sleep(2 * args.sweep)  # a last sweep or two, sampled
        sampler.stop.set()
        sampler.join()
        stats = store.stats()
        left = {"keys": client.dbsize(), "profiles": client.scard(store.key("profiles")),
                "ips": client.scard(store.key("ips")),
                "evidence": client.hlen(store.key("evidence")),
                "alerts": client.llen(store.key("alerts"))}
        feeder_cpu = sum(os.times()[:2]) - sum(cpu0[:2])
    finally:
        daemon.terminate()
        daemon.wait(120)
    result = {
        "bench": "live", "flows": conn, "records": written, "days": args.days,
        "seconds": round(elapsed, 1), "flows_per_s": round(conn / elapsed),
        "rows": rows(sampler.series, conn), "growth": growth(sampler.series, conn),
        "peak_rss_mb": round(max(s[2] for s in sampler.series) / 2**20),
        "peak_redis_mb": round(max(s[3] for s in sampler.series) / 2**20, 1),
        "cpu_s": round(sum(sampler.cpu.values()), 1), "cpu_by_role": sampler.cpu_by_role(),
        "feeder_cpu_s": round(feeder_cpu, 1),
        "expired": {k: v for k, v in stats.items() if k.startswith("expired.")},
        "left_in_redis": left,
        "date": time.strftime("%Y-%m-%d %H:%M"), "set": args.set,
        "label": label(conn),
    }
    print(table(result))
    line = json.dumps(result)
    print(line)
    with open(args.work.parent / "results.jsonl", "a") as out:
        out.write(line + "\n")


def table(r: dict[str, Any]) -> str:
    out = ["| flows | flows/s | total RSS MB (peak in step) | Redis MB (peak in step) |",
           "|---:|---:|---:|---:|"]
    out += [f"| {row['flows']:,} | {row['flows_per_s']:,} | {row['rss_mb']:,} | "
            f"{row['redis_mb']:,} |" for row in r["rows"]]
    g = r["growth"]
    out.append(f"\nsecond half over first half: RSS {g.get('rss_pct', 0):+.1f} %, Redis "
               f"{g.get('redis_pct', 0):+.1f} %; {r['flows']:,} flows in {r['seconds']} s "
               f"({r['flows_per_s']:,} flows/s)\nexpired: {r['expired']}\n"
               f"left in Redis at the end: {r['left_in_redis']}")
    return "\n".join(out)


if __name__ == "__main__":
    main()
