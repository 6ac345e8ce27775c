"""Seconds per GB of pcap: slips' flowmeter against NFStream alone, on the same capture.

    .venv/bin/python bench/flowmeter.py [--work DIR] [--mb 200] [--repeat 2]

Writes DIR/traffic-<MB>mb.pcap once (reused when present; same arguments, same
bytes) with dpkt, by bench/_traffic_pcap.py: a made-up network of 60 hosts and
2,000 servers, mostly HTTPS (TLS hellos with SNI, then records of application data),
plain HTTP, DNS, and now and then NTP, ping, SSH and unanswered SYNs, with response
sizes from 1 KB to 512 KB. Then, each in a fresh process (NFStream forks its meters
and pins CPUs), best of --repeat:

- ``nfstream``: NFStreamer over the file with the flowmeter's own options
  (idle/active timeouts and STREAMER_OPTIONS of slipsd/sensors/flowmeter.py) and no
  plugin, iterating all flows: NFStream's own time, the reference;
- ``nfstream+plugin``: the same with the flowmeter's per-packet plugin (ZeekTracker),
  on the flowmeter's packet path (``fast_meters``, slipsd/sensors/_flowmeter_fast.py),
  to split slips' cost between the plugin and what follows it;
- ``flowmeter``: ``slipsd.sensors.flowmeter.write_zeek_logs(pcap, folder)``, what
  ``slipsctl analyze x.pcap`` runs when zeek is absent (slipsd/inputs/pcap.py):
  the dpkt pass for ARP, NFStream with the plugin, and the sorted Zeek JSON logs, with
  the garbage collector's threshold of slipsd's children (the ingest runs it there).

Prints a markdown table and one JSON line. Also used by bench/run.py --flowmeter.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _traffic_pcap import make_pcap

REPO = Path(__file__).resolve().parents[1]


# --- measurement, each in a fresh process -----------------------------------------------

def _child(mode: str, pcap: str, out: str) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    import nfstream  # type: ignore[import-untyped]

    from slipsd.child import GC_THRESHOLD
    from slipsd.sensors import flowmeter
    from slipsd.sensors._flowmeter_fast import fast_meters

    if mode == "flowmeter":  # as in slipsd, where the ingest child (slipsd/child.py) runs it
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    cpu, started = _cpu(), time.perf_counter()
    if mode == "flowmeter":
        stats = flowmeter.write_zeek_logs(pcap, Path(out))
        flows, records = stats.flows, stats.records
    else:
        udps = [flowmeter.ZeekTracker()] if mode == "nfstream+plugin" else None
        streamer = nfstream.NFStreamer(source=pcap, idle_timeout=flowmeter.IDLE_TIMEOUT,
                                       active_timeout=flowmeter.ACTIVE_TIMEOUT, udps=udps,
                                       **flowmeter.STREAMER_OPTIONS)
        flows, records = 0, {}
        with fast_meters(udps is not None):  # the plugin's packet path, as the flowmeter's
            for _ in streamer:
                flows += 1
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "flows": flows, "records": records, "cpu_s": _cpu() - cpu}


def _cpu() -> float:
    """CPU seconds of this process and of its children that have been reaped (the meters)."""
    own, kids = (resource.getrusage(who)
                 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _run_child(mode: str, pcap: Path, out: Path) -> dict[str, Any]:
    """One measurement in a fresh process; CPU of the process and its reaped meters."""
    with tempfile.TemporaryFile("w+") as stdout:
        proc = subprocess.Popen([sys.executable, __file__, "--child", mode, str(pcap), str(out)],
                                stdout=stdout)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise RuntimeError(f"{mode}: exit {proc.returncode}")
        stdout.seek(0)
        r: dict[str, Any] = json.loads(stdout.read().strip().splitlines()[-1])
    # the child and every meter it reaped, imports included
    r["tree_cpu_s"] = usage.ru_utime + usage.ru_stime
    return r


def measure(pcap: Path, repeat: int = 2) -> dict[str, Any]:
    size = pcap.stat().st_size
    result: dict[str, Any] = {"pcap": str(pcap), "pcap_bytes": size,
                              "load_before": os.getloadavg()}
    for mode in ("nfstream", "nfstream+plugin", "flowmeter"):
        best: dict[str, Any] | None = None
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(prefix="slips-fm-", dir=pcap.parent) as out:
                r = _run_child(mode, pcap, Path(out))
            if best is None or r["seconds"] < best["seconds"]:
                best = r
        assert best is not None
        best["s_per_gb"] = best["seconds"] / (size / 1e9)
        result[mode] = best
    result["load_after"] = os.getloadavg()
    result["ratio"] = result["flowmeter"]["seconds"] / result["nfstream"]["seconds"]
    result["plugin_ratio"] = result["nfstream+plugin"]["seconds"] / result["nfstream"]["seconds"]
    return result


def ensure_pcap(work: Path, megabytes: int) -> tuple[Path, dict[str, int]]:
    path = work / f"traffic-{megabytes}mb.pcap"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    info = make_pcap(path, megabytes)
    info["generate_s"] = round(time.perf_counter() - started, 1)
    meta.write_text(json.dumps(info) + "\n")
    return path, info


def table(r: dict[str, Any]) -> str:
    gb = r["pcap_bytes"] / 1e9
    rows = ["| meter | seconds | s per GB | flows | CPU s | vs NFStream |",
            "|---|---:|---:|---:|---:|---:|"]
    for mode in ("nfstream", "nfstream+plugin", "flowmeter"):
        m = r[mode]
        rows.append(f"| {mode} | {m['seconds']:.2f} | {m['seconds'] / gb:.1f} | "
                    f"{m['flows']:,} | {m['cpu_s']:.1f} | "
                    f"{m['seconds'] / r['nfstream']['seconds']:.2f}x |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/slips-bench"))
    parser.add_argument("--mb", type=int, default=200, help="size of the generated pcap")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each meter, best kept")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PCAP", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    pcap, info = ensure_pcap(args.work, args.mb)
    print(f"{pcap}: {info}", file=sys.stderr)
    result = measure(pcap, args.repeat)
    result["capture"] = info
    print(table(result))
    print(json.dumps({"bench": "flowmeter", **result}))


if __name__ == "__main__":
    main()
