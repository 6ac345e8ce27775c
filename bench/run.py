"""End-to-end throughput and memory of ``slipsctl analyze`` on generated Zeek folders.

    .venv/bin/python bench/run.py [SIZE ...] [--work DIR] [--flowmeter] [--pcap-mb 200]
                                  [--set SECTION.KEY=VALUE ...] [--timeline]
    make bench                          # 100k and 1M flows, then the flowmeter

SIZE is the number of flows given to bench/gen_zeek.py (100k, 1M, 5M or a plain
number; default 100k). Each size's folder (conn, dns, http and ssl JSON logs,
defaults of gen_zeek: one day, 200 hosts, 5,000 servers, seed 1) is written once
to DIR/zeek-<SIZE> and reused while its truth.json is there. A folder of N flows
holds about 1.9 N conn.log records, since most connections are preceded by a DNS
lookup that Zeek also logs as a connection; slips counts conn.log records as its
flows, and so does this script.

For each size, on a fresh slipsd (embedded Redis, all default modules, started as
``python -m slipsd`` with its own runtime, state and output folders):

- reference: the time one process takes to read all four logs and ``json.loads``
  every line (best of two, files in the page cache);
- seconds: from sending ``analyze`` (the folder's descriptor, as slipsctl sends it)
  to the reply, i.e. until the output folder is written and the run's children are
  stopped; flows/s is slips' flow count (summary ``flows``) over that;
- to last alert: from sending ``analyze`` to the mtime of the output alerts.log (alerts
  are decided when the run is complete, so this is close to ``seconds``);
- peak RSS and peak PSS: slipsd with all its children (Redis, ingest, evidence
  handler, module hosts) summed, RSS sampled every 100 ms, PSS every second; PSS
  divides shared pages between the processes that share them, RSS counts them in each;
- CPU s: user+system seconds of all those processes (each process' last sample,
  so up to 0.1 s of each is missed), also split by role in the JSON; CPU ratio is that
  over the reference's CPU seconds, which other work on the machine moves far less than
  it moves the wall-clock ratio;
- Redis peak: ``used_memory_peak`` of INFO memory;
- load: ``os.getloadavg()`` before and after the run (the 1-minute figure);
- with --timeline, the cores each process kept busy in every 5 s of the run (also in
  the JSON as ``busy_cores``): whether the run is CPU-bound, and who works when.

``--set modules.enabled=tunnels`` (a module that reads no traffic channel) measures the
ingest alone: the most this design can do with modules that cost nothing.

With --flowmeter, bench/flowmeter.py then meters DIR/traffic-<MB>mb.pcap (written
once) with slips' flowmeter and with NFStream alone. Each result is printed as a
markdown row and as one JSON line, which is also appended to DIR/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import gen_zeek  # noqa: E402
from _sampler import TreeSampler, busy_cores  # noqa: E402

from slipsd import protocol  # noqa: E402
from slipsd.store import connect  # noqa: E402

LOGS = ("conn", "dns", "http", "ssl")
SEED = 1
TRASH = ".trash"  # folders of earlier runs, deleted after the last measurement


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


# --- inputs ----------------------------------------------------------------------------

def ensure_folder(work: Path, n: int) -> tuple[Path, dict[str, Any]]:
    """DIR/zeek-<n>, written by gen_zeek unless a complete one (truth.json last) is there."""
    folder = work / f"zeek-{label(n)}"
    truth_file = folder / "truth.json"
    if truth_file.exists():
        truth: dict[str, Any] = json.loads(truth_file.read_text())
        if truth.get("flows") == n and truth.get("seed") == SEED:
            return folder, truth
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    print(f"generating {folder} ...", file=sys.stderr, flush=True)
    truth = gen_zeek.generate(folder, n, span=86400.0, hosts=200, servers=5000, fmt="json",
                              seed=SEED)
    print(f"  {truth['records']} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return folder, truth


def reference(folder: Path) -> tuple[float, float, int]:
    """Seconds and CPU seconds to read and JSON-decode every line of the four logs, and the
    line count."""
    lines = 0
    started, cpu = time.perf_counter(), time.process_time()
    for name in LOGS:
        with open(folder / f"{name}.log", "rb") as handle:
            for line in handle:
                json.loads(line)
                lines += 1
    return time.perf_counter() - started, time.process_time() - cpu, lines


# --- one run ---------------------------------------------------------------------------

def set_aside(path: Path, work: Path) -> None:
    """Move a previous run's folder out of the way; ``main`` deletes them all at its end.

    Deleting before a run slowed the run: on the development VM's disk (ext4 mounted with
    ``discard``), writing a 1M analysis' 4,800 window files took 1-4 s right after the
    previous run's were deleted, against 0.3 s otherwise."""
    if path.exists():
        trash = work / TRASH
        trash.mkdir(exist_ok=True)
        path.rename(trash / f"{path.name}-{time.time_ns()}")


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def measure(n: int, work: Path, sets: list[str], timeline: bool = False) -> dict[str, Any]:
    folder, truth = ensure_folder(work, n)
    records = truth["records"]
    ref, ref_cpu, _ = min(reference(folder) for _ in range(2))
    runtime, out = work / f"run-{label(n)}", work / f"out-{label(n)}"
    for path in (runtime, out):
        set_aside(path, work)
    output = out / "analysis"
    with open(work / f"slipsd-{label(n)}.log", "w") as daemon_log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "slipsd", "--set", f"daemon.runtime_dir={runtime}",
             "--set", f"daemon.state_dir={runtime / 'state'}",
             "--set", f"output.directory={out}", "--set", "daemon.log_level=warning",
             *(arg for item in sets for arg in ("--set", item))],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=daemon_log)
    try:
        sock = runtime / protocol.SOCKET_NAME
        deadline = time.monotonic() + 60
        while not sock.exists():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError(f"slipsd did not start: see {work}/slipsd-{label(n)}.log")
            time.sleep(0.05)
        time.sleep(1.0)  # let Redis and the daemon settle before sampling
        sampler = TreeSampler(daemon.pid, history=timeline)
        sampler.start()
        load_before = load1()
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        t0_wall, t0, t0_mono = time.time(), time.perf_counter(), time.monotonic()
        try:
            with protocol.Client(str(sock), timeout=None) as client:
                run = client.call("analyze", {"name": str(folder), "output": str(output)},
                                  fds=[fd])
        finally:
            os.close(fd)
        elapsed = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
        load_after = load1()
        redis = connect(f"unix://{runtime / 'redis.sock'}").info("memory")
    finally:
        daemon.terminate()
        daemon.wait(120)
    summary = run["summary"]
    alerts_log = Path(run["output"]) / "alerts.log"
    to_alert = alerts_log.stat().st_mtime - t0_wall if alerts_log.exists() else None
    if summary.get("flows") != records["conn"]:
        print(f"warning: slips counted {summary.get('flows')} flows, conn.log has "
              f"{records['conn']}", file=sys.stderr)
    total_records = sum(records.values())
    return {
        "bench": "analyze", "gen_flows": n, "conn_flows": summary.get("flows"),
        "records": total_records, "records_by_log": records, "seconds": round(elapsed, 3),
        "flows_per_s": round(summary.get("flows", 0) / elapsed),
        "records_per_s": round(total_records / elapsed),
        "us_per_flow": round(elapsed / max(1, summary.get("flows", 0)) * 1e6, 2),
        "to_last_alert_s": None if to_alert is None else round(to_alert, 3),
        "to_finished_s": round(run["finished"] - t0_wall, 3) if run.get("finished") else None,
        "reference_s": round(ref, 3), "ratio": round(elapsed / ref, 2),
        "reference_cpu_s": round(ref_cpu, 3),
        "cpu_s": round(sum(sampler.cpu.values()), 1), "cpu_by_role": sampler.cpu_by_role(),
        "cpu_ratio": round(sum(sampler.cpu.values()) / ref_cpu, 1),
        "peak_rss_mb": round(sampler.peak_rss / 2**20),
        "peak_pss_mb": round(sampler.peak_pss / 2**20),
        "redis_peak_mb": round(redis["used_memory_peak"] / 2**20),
        "samples": sampler.samples, "alerts": summary.get("alerts"),
        "evidence": summary.get("evidence"), "modules": run.get("modules"),
        "unavailable_modules": run.get("unavailable_modules"),
        "load_before": load_before, "load_after": load_after,
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "set": sets,
        **({"busy_cores": busy_cores(sampler.history, t0_mono)} if timeline else {}),
    }


def timeline_table(rows: list[tuple[float, dict[str, float]]]) -> str:
    """Cores busy per role, one line per 5 s of the run (``--timeline``)."""
    roles = sorted({role for _, cores in rows for role in cores},
                   key=lambda role: -sum(cores.get(role, 0.0) for _, cores in rows))
    roles = [role for role in roles if any(cores.get(role, 0.0) >= 0.05 for _, cores in rows)]
    lines = ["| s | " + " | ".join(roles) + " | all |",
             "|---:|" + "---:|" * (len(roles) + 1)]
    for t, cores in rows:
        values = [cores.get(role, 0.0) for role in roles]
        lines.append(f"| {t:.0f} | " + " | ".join(f"{v:.2f}" for v in values)
                     + f" | {sum(cores.values()):.2f} |")
    return "\n".join(lines)


HEADER = ("| flows (gen) | conn flows | all records | seconds | flows/s | µs/flow | "
          "to last alert s | read+decode s | ratio | CPU s | read+decode CPU s | CPU ratio | "
          "peak RSS MB | peak PSS MB | Redis peak MB | alerts | load 1m before/after |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
          "---:|")


def row(r: dict[str, Any]) -> str:
    alert = "-" if r["to_last_alert_s"] is None else f"{r['to_last_alert_s']:.2f}"
    return (f"| {label(r['gen_flows'])} | {r['conn_flows']:,} | {r['records']:,} | "
            f"{r['seconds']:.2f} | {r['flows_per_s']:,} | {r['us_per_flow']:.1f} | {alert} | "
            f"{r['reference_s']:.2f} | {r['ratio']:.1f}x | {r['cpu_s']:.0f} | "
            f"{r['reference_cpu_s']:.2f} | {r['cpu_ratio']:.1f}x | "
            f"{r['peak_rss_mb']:,} | {r['peak_pss_mb']:,} | {r['redis_peak_mb']:,} | "
            f"{r['alerts']} | {r['load_before']:.1f} / {r['load_after']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=parse_size, help="flows: 100k, 1M, 5M, ...")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get(
        "SLIPS_BENCH_DIR", "/tmp/slips-bench")), help="inputs and runs (default %(default)s)")
    parser.add_argument("--flowmeter", action="store_true",
                        help="also meter a generated pcap with the flowmeter and NFStream")
    parser.add_argument("--pcap-mb", type=int, default=200)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="configuration for slipsd, e.g. modules.processes=1 (repeatable)")
    parser.add_argument("--repeat", type=int, default=2, help="flowmeter runs, best kept")
    parser.add_argument("--timeline", action="store_true",
                        help="also print the cores each process kept busy, per 5 s of a run")
    args = parser.parse_args()
    sizes = args.sizes or ([] if args.flowmeter else [100_000])
    args.work.mkdir(parents=True, exist_ok=True)
    results = args.work / "results.jsonl"
    if sizes:
        print(HEADER, flush=True)
    lines = []
    try:
        for n in sizes:
            r = measure(n, args.work, args.set, args.timeline)
            print(row(r), flush=True)
            lines.append(json.dumps(r))
            with open(results, "a") as f:
                f.write(lines[-1] + "\n")
    finally:
        shutil.rmtree(args.work / TRASH, ignore_errors=True)
    for line in lines:
        r = json.loads(line)
        if "busy_cores" in r:
            print(f"\nCores busy per process, {label(r['gen_flows'])}:\n")
            print(timeline_table(r["busy_cores"]) + "\n")
    for line in lines:
        print(line)
    if args.flowmeter:
        import flowmeter

        pcap, info = flowmeter.ensure_pcap(args.work, args.pcap_mb)
        r = flowmeter.measure(pcap, args.repeat)
        r["capture"] = info
        r["date"] = time.strftime("%Y-%m-%d %H:%M")
        print()
        print(flowmeter.table(r))
        line = json.dumps({"bench": "flowmeter", **r})
        print(line)
        with open(results, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
