"""End-to-end throughput and memory of ``slipsctl analyze`` on generated Zeek logs.

    .venv/bin/python bench/run.py 100000 [200000 ...]

For each size it writes a JSON conn.log with scripts/zeekgen.py, then measures:
- baseline: one process reading the file and JSON-decoding every line (the floor);
- slips: a real slipsd (embedded Redis, default modules) analyzing the same file;
and reports flows/s, the ratio to the baseline, the peak resident memory of slipsd
with all its children (Redis included), sampled every 100 ms, and Redis' own peak.
Not part of the test run; results go to bench/RESULTS.md by hand, with the command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

from slipsd import protocol  # noqa: E402
from slipsd.store import connect  # noqa: E402

import zeekgen  # noqa: E402


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            status = (entry / "status").read_text()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1]) * 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def baseline(path: Path) -> float:
    started = time.perf_counter()
    with open(path, "rb") as handle:
        for line in handle:
            json.loads(line)
    return time.perf_counter() - started


def measure(n: int, work: Path) -> dict[str, float]:
    folder = work / f"flows-{n}"
    folder.mkdir()
    zeekgen.write_conn_log(str(folder / "conn.log"),
                           zeekgen.make_conn_flows(n, seed=n, span=6 * 3600))
    floor = min(baseline(folder / "conn.log") for _ in range(2))
    runtime = work / f"run-{n}"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "slipsd", "--set", f"daemon.runtime_dir={runtime}",
         "--set", f"daemon.state_dir={work / 'state'}",
         "--set", f"output.directory={work / 'out'}", "--set", "daemon.log_level=warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = runtime / protocol.SOCKET_NAME
    deadline = time.monotonic() + 30
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(daemon.pid))
            done.wait(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    fd = os.open(folder / "conn.log", os.O_RDONLY)
    started = time.perf_counter()
    with protocol.Client(str(sock), timeout=None) as client:
        run = client.call("analyze", {"name": str(folder / "conn.log")}, fds=[fd])
    elapsed = time.perf_counter() - started
    os.close(fd)
    done.set()
    sampler.join()
    redis_peak = connect(f"unix://{runtime / 'redis.sock'}").info("memory")["used_memory_peak"]
    daemon.terminate()
    daemon.wait(60)
    assert run["summary"]["flows"] == n, run["summary"]
    return {"flows": n, "seconds": elapsed, "flows_per_s": n / elapsed,
            "baseline_s": floor, "ratio": elapsed / floor,
            "peak_rss_mb": peak / 2**20, "redis_peak_mb": redis_peak / 2**20}


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100_000]
    with tempfile.TemporaryDirectory(prefix="slips-bench-") as tmp:
        print("| flows | seconds | flows/s | read+decode s | ratio | peak RSS MB | "
              "Redis peak MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for n in sizes:
            r = measure(n, Path(tmp))
            print(f"| {n:,} | {r['seconds']:.2f} | {r['flows_per_s']:,.0f} | "
                  f"{r['baseline_s']:.2f} | {r['ratio']:.1f}x | {r['peak_rss_mb']:.0f} | "
                  f"{r['redis_peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
