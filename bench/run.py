"""End-to-end throughput and memory of ``slipsctl analyze`` on generated Zeek folders.

    .venv/bin/python bench/run.py [SIZE ...] [--work DIR] [--flowmeter] [--pcap-mb 200]
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
- load: ``os.getloadavg()`` before and after the run (the 1-minute figure).

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
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

import gen_zeek  # noqa: E402

from slipsd import protocol  # noqa: E402
from slipsd.store import connect  # noqa: E402

LOGS = ("conn", "dns", "http", "ssl")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SEED = 1


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


# --- sampling slipsd's process tree ----------------------------------------------------

class TreeSampler(threading.Thread):
    """Every ``period`` s: RSS and CPU of ``root`` and its descendants; their PSS every
    ``pss_every`` samples (reading smaps_rollup walks page tables: it costs more)."""

    def __init__(self, root: int, period: float = 0.1, pss_every: int = 10) -> None:
        super().__init__(daemon=True)
        self.root, self.period, self.pss_every = root, period, pss_every
        self.stop = threading.Event()
        self.peak_rss = self.peak_pss = 0
        self.cpu: dict[int, float] = {}  # pid -> last seen user+system seconds
        self.role: dict[int, str] = {}
        self.parent: dict[int, int] = {}  # every pid seen -> its parent, read once
        self.samples = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.period)
        self.sample()

    def _tree(self) -> list[int]:
        pids = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        for pid in pids - self.parent.keys():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    self.parent[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
        for gone in self.parent.keys() - pids:
            del self.parent[gone]  # a pid may be reused for an unrelated process
        children: dict[int, list[int]] = {}
        for pid, ppid in self.parent.items():
            children.setdefault(ppid, []).append(pid)
        tree, stack = [], [self.root]
        while stack:
            pid = stack.pop()
            tree.append(pid)
            stack.extend(children.get(pid, []))
        return tree

    def sample(self) -> None:
        with_pss = self.samples % self.pss_every == 0 or self.stop.is_set()
        rss = pss = 0
        for pid in self._tree():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # fields[0] is field 3 of stat (state): utime, stime, rss are fields 14, 15, 24
            self.cpu[pid] = (int(fields[11]) + int(fields[12])) / TICKS
            rss += int(fields[21]) * PAGE
            if with_pss:
                pss += _pss(pid)
            if self.role.get(pid, "slipsd") == "slipsd" and pid != self.root:
                # a child seen between fork and exec still shows slipsd's command line
                self.role[pid] = _role(pid)
            self.role.setdefault(pid, "slipsd")
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.samples += 1

    def cpu_by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, seconds in self.cpu.items():
            role = self.role.get(pid, "?")
            out[role] = round(out.get(role, 0.0) + seconds, 2)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _role(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    args = [a.decode(errors="replace") for a in argv if a]
    if "slipsd.child" in args:
        i = args.index("slipsd.child")
        role = args[i + 1] if len(args) > i + 1 else "child"
        if role == "module" and len(args) > i + 2:
            try:
                names = [m.get("name", "?") for m in json.loads(args[i + 2]).get("modules", [])]
                return f"module/{'+'.join(names) or '?'}"
            except ValueError:
                pass
        return role
    if args and "redis-server" in args[0]:
        return "redis"
    if "slipsd" in args:
        return "slipsd"
    return Path(args[0]).name if args else "?"


# --- one run ---------------------------------------------------------------------------

def load1() -> float:
    return round(os.getloadavg()[0], 2)


def measure(n: int, work: Path, sets: list[str]) -> dict[str, Any]:
    folder, truth = ensure_folder(work, n)
    records = truth["records"]
    ref, ref_cpu, _ = min(reference(folder) for _ in range(2))
    runtime, out = work / f"run-{label(n)}", work / f"out-{label(n)}"
    for path in (runtime, out):
        shutil.rmtree(path, ignore_errors=True)
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
        sampler = TreeSampler(daemon.pid)
        sampler.start()
        load_before = load1()
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        t0_wall, t0 = time.time(), time.perf_counter()
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
    }


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
    args = parser.parse_args()
    sizes = args.sizes or ([] if args.flowmeter else [100_000])
    args.work.mkdir(parents=True, exist_ok=True)
    results = args.work / "results.jsonl"
    if sizes:
        print(HEADER, flush=True)
    lines = []
    for n in sizes:
        r = measure(n, args.work, args.set)
        print(row(r), flush=True)
        lines.append(json.dumps(r))
        with open(results, "a") as f:
            f.write(lines[-1] + "\n")
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
