"""Sampling a process tree from /proc: peak RSS and PSS, and CPU seconds per role.

bench/run.py samples slipsd and all its children with it; a child's role is read from
its command line (``python -m slipsd.child ROLE SPEC``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class TreeSampler(threading.Thread):
    """Every ``period`` s: RSS and CPU of ``root`` and its descendants; their PSS every
    ``pss_every`` samples (reading smaps_rollup walks page tables: it costs more)."""

    def __init__(self, root: int, period: float = 0.1, pss_every: int = 10,
                 history: bool = False) -> None:
        super().__init__(daemon=True)
        self.root, self.period, self.pss_every = root, period, pss_every
        self.stop = threading.Event()
        self.peak_rss = self.peak_pss = 0
        self.cpu: dict[int, float] = {}  # pid -> last seen user+system seconds
        self.role: dict[int, str] = {}
        self.parent: dict[int, int] = {}  # every pid seen -> its parent, read once
        self.samples = 0
        # With ``history``: (monotonic time, CPU seconds so far per role) at every sample,
        # for busy_cores
        self.keep_history = history
        self.history: list[tuple[float, dict[str, float]]] = []

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
        if self.keep_history:
            self.history.append((time.monotonic(), self.cpu_by_role()))

    def cpu_by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, seconds in self.cpu.items():
            role = self.role.get(pid, "?")
            out[role] = round(out.get(role, 0.0) + seconds, 2)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def busy_cores(history: list[tuple[float, dict[str, float]]], start: float,
               step: float = 5.0) -> list[tuple[float, dict[str, float]]]:
    """Cores each role kept busy in every ``step`` s from ``start``: where a run is
    CPU-bound, and which process is busy when (start-up, the end of the input, the end)."""
    rows: list[tuple[float, dict[str, float]]] = []
    before = next(((t, cpu) for t, cpu in history if t >= start), None)
    if before is None:
        return rows
    edge = start + step
    for t, cpu in history:
        if t < edge:
            continue
        span = t - before[0]
        if span > 0:
            rows.append((round(before[0] - start, 1), {
                role: round((seconds - before[1].get(role, 0.0)) / span, 2)
                for role, seconds in cpu.items()}))
        before, edge = (t, cpu), t + step
    last = history[-1]
    if last[0] > before[0]:  # the end of the run, shorter than a step
        rows.append((round(before[0] - start, 1), {
            role: round((seconds - before[1].get(role, 0.0)) / (last[0] - before[0]), 2)
            for role, seconds in last[1].items()}))
    return rows


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
