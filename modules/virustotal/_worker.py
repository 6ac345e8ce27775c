"""The lookup queue and the thread that works through it, at the pace the API allows.

Event handlers only append to the queue, so they never wait for the network.
Every item ends in exactly one of: an answer (from the cache or from
VirusTotal), skipped because the key was refused, or given up loudly when the
service stays unreachable at the end of a run. Nothing leaves the queue
silently; a stop request leaves the rest where it is and says how many.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._client import Answer, Client, Pacer

Deliver = Callable[[str, str, dict[str, Any]], None]
STATS = ("malicious", "suspicious", "harmless", "undetected")
FULL_LOGS = 10  # failures logged one by one; after that every 100th


@dataclass
class Settings:
    cache_ttl: float
    retries: int
    backoff: float
    max_backoff: float


def summarise(kind: str, answer: Answer) -> dict[str, Any]:
    """The fields kept on an IP's info: detection counts, reputation, when asked."""
    checked_at = round(time.time(), 3)
    if answer.outcome == "unknown":
        return {"found": False, "checked_at": checked_at}
    attrs = answer.attributes
    stats = attrs.get("last_analysis_stats")
    stats = stats if isinstance(stats, dict) else {}
    out: dict[str, Any] = {"found": True}
    out.update({name: _count(stats.get(name)) for name in STATS})
    out["reputation"] = _count(attrs.get("reputation"))
    if kind == "ip":
        for name in ("as_owner", "asn", "country"):
            if isinstance(attrs.get(name), str | int) and not isinstance(attrs[name], bool):
                out[name] = attrs[name]
    out["checked_at"] = checked_at
    return out


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class Lookups:
    def __init__(self, client: Client, pacer: Pacer, settings: Settings,
                 cache: tuple[Callable[[str], Any], Callable[[str, Any, float], None]],
                 deliver: Deliver, stop: threading.Event, log: logging.Logger) -> None:
        self.client = client
        self.pacer = pacer
        self.settings = settings
        self.cache_get, self.cache_set = cache
        self.deliver = deliver
        self.stop = stop
        self.log = log
        self.counts: Counter[str] = Counter()
        self.denied = ""
        self._queue: deque[tuple[str, str]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._active = 0  # items taken off the queue and not finished yet (0 or 1)
        self._trouble = 0  # transient failures in a row, any item: sets the backoff
        self._quota_day = ""
        self._thread = threading.Thread(target=self._run, name="virustotal", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, kind: str, name: str) -> None:
        with self._cond:
            self._queue.append((kind, name))
            waiting = len(self._queue)
            self._cond.notify()
        if waiting in (1000, 10_000, 100_000, 1_000_000):
            self.log.info("%d VirusTotal lookups are waiting (pace: one every %.1f s)",
                          waiting, self.pacer.interval)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + self._active

    def close(self) -> None:
        """Wait until every queued item is done, or until a stop is requested."""
        with self._cond:
            self._closing = True
            waiting = len(self._queue) + self._active
            self._cond.notify_all()
        if waiting and not self.denied and not self.stop.is_set():
            self.log.info("the run waits for %d VirusTotal lookups (about %.0f s at one "
                          "every %.1f s; cached answers are instant)", waiting,
                          waiting * self.pacer.interval, self.pacer.interval)
        while self._thread.is_alive():
            self._thread.join(0.2)
            if self.stop.is_set():
                with self._cond:
                    self._cond.notify_all()
                # A request in flight may take up to its timeout: not waited for.
                self._thread.join(1.0)
                break
        left = self.pending
        if left:
            self.log.warning("stopped with %d VirusTotal lookups not done", left)
            self.counts["not_done"] += left
        if not self._thread.is_alive():  # else the request in flight still uses it
            self.client.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing and not self.stop.is_set():
                    self._cond.wait(1.0)
                if self.stop.is_set() or not self._queue:
                    return
                item = self._queue.popleft()
                self._active = 1
            try:
                self._handle(item)
            except Exception:
                self.counts["errors"] += 1
                self.log.exception("VirusTotal lookup of %s %s failed; it is not retried",
                                   item[0], item[1])
            finally:
                with self._cond:
                    self._active = 0

    def _handle(self, item: tuple[str, str]) -> None:
        kind, name = item
        key = f"{kind}:{name}"
        cached = self.cache_get(key)
        if cached is not None:
            self.counts["cached"] += 1
            self.deliver(kind, name, cached)
            return
        if self.denied:
            self.counts["skipped"] += 1
            return
        attempts = 0
        while True:
            if not self.pacer.acquire(self.stop, self._quota_full):
                self._put_back(item)
                return
            answer = self.client.get(kind, name)
            self.counts["requests"] += 1
            if answer.outcome in ("found", "unknown"):
                self._trouble = 0
                summary = summarise(kind, answer)
                self.cache_set(key, summary, self.settings.cache_ttl)
                self.counts[answer.outcome] += 1
                self.deliver(kind, name, summary)
                return
            if answer.outcome == "denied":
                self._refused(answer)
                return
            if answer.outcome == "throttled":
                # Retried however long it takes: a 429 means "later", never "no".
                self.counts["throttled"] += 1
                wait = answer.retry_after
                if wait is None:
                    wait = self._backoff()
                self._note("throttled", f"VirusTotal asked to slow down ({answer.detail}); "
                           f"retrying {kind} {name} in {wait:.1f} s")
            else:
                attempts += 1
                self.counts["failed_requests"] += 1
                wait = self._backoff()
                self._note("failed_requests", f"VirusTotal lookup of {kind} {name} failed "
                           f"({answer.detail}), attempt {attempts} of {self.settings.retries}")
                if attempts >= self.settings.retries:
                    if self._exhausted(item, answer):
                        self.stop.wait(wait)  # the next item must not hammer a failing service
                    return
            if self.stop.wait(wait):
                self._put_back(item)
                return

    def _exhausted(self, item: tuple[str, str], answer: Answer) -> bool:
        """Requeue the item (True), or give up the rest when the run is over (False)."""
        kind, name = item
        # At the end of a run, twice `retries` failures in a row, whatever the items,
        # say the service is down rather than one item being unlucky.
        if not self._closing or self._trouble < 2 * self.settings.retries:
            with self._cond:
                self._queue.append(item)
                self._active = 0
            self.counts["requeued"] += 1
            self.log.warning("VirusTotal lookup of %s %s failed %d times in a row (%s); it "
                             "goes back to the end of the queue", kind, name,
                             self.settings.retries, answer.detail)
            return True
        # The run is over and the service keeps failing: waiting on would hold the
        # analysis hostage, so the rest is given up, counted and named in the log.
        with self._cond:
            rest = [f"{k} {n}" for k, n in self._queue]
            self._queue.clear()
        self.counts["given_up"] += 1 + len(rest)
        shown = ", ".join([f"{kind} {name}", *rest[:9]])
        self.log.error("VirusTotal keeps failing at the end of the run (%s): gave up %d "
                       "lookups: %s%s", answer.detail, 1 + len(rest), shown,
                       " ..." if len(rest) > 9 else "")
        return False

    def _refused(self, answer: Answer) -> None:
        self.denied = answer.detail
        with self._cond:
            rest = len(self._queue)
        self.counts["skipped"] += 1
        self.log.error("VirusTotal refused the API key (%s): no more lookups in this run; "
                       "%d queued lookups are skipped. Check [virustotal] api_key_file.",
                       answer.detail, rest + 1)

    def _put_back(self, item: tuple[str, str]) -> None:
        with self._cond:
            self._queue.appendleft(item)
            self._active = 0

    def _backoff(self) -> float:
        self._trouble += 1
        base = self.settings.backoff * 2 ** min(self._trouble - 1, 30)
        return float(min(self.settings.max_backoff, base))

    def _note(self, counter: str, message: str) -> None:
        seen = self.counts[counter]
        if seen <= FULL_LOGS or seen % 100 == 0:
            self.log.warning("%s (%s so far: %d)", message, counter.replace("_", " "), seen)

    def _quota_full(self, wait: float) -> None:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        if day != self._quota_day:
            self._quota_day = day
            self.log.warning("VirusTotal daily quota of %d requests is used up: lookups wait "
                             "%.1f h for the next UTC day (%d waiting)", self.pacer.daily,
                             wait / 3600, self.pending)
