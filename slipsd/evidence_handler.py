"""The process that collects a run's evidence, decides its alerts and writes its outputs.

Every module host ends its run with a ``done`` marker on the evidence stream,
and so does the ingest process once its statistics are written (the daemon
writes one for a child that failed), so when all markers are in, every message
of the run has been handled by every module: the analysis is complete without
guessing from timings.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from slipsd import outputs
from slipsd.evidence import Evidence, LiveWindows, alerts_for, sort_evidence
from slipsd.ingest import INGEST, TRIM_SECONDS
from slipsd.store import Store, connect
from slipsd.whitelist import load_whitelist

log = logging.getLogger(__name__)

WHITELISTED_EVIDENCE = "whitelisted_evidence"  # run stats counter


@dataclass
class HandlerSpec:
    run_id: str
    redis_url: str
    output_dir: str
    threshold: float
    modules: list[str] = field(default_factory=list)
    block_ms: int = 1000
    live: bool = False  # decide alerts as evidence arrives, until stopped
    whitelist: str = ""  # whitelist file (config.whitelist_file); empty: none
    asn_database: str = ""  # [geoip] asn_database: organisations' AS numbers in the whitelist


class EvidenceHandler:
    def __init__(self, spec: HandlerSpec) -> None:
        self.spec = spec
        self._stopping = False
        whitelist = load_whitelist(spec.whitelist, spec.asn_database)
        self._whitelist = whitelist if whitelist is not None and whitelist.filters_evidence \
            else None
        # Ids of whitelisted evidence seen, and how many the run's stats already count: a
        # restarted handler replays the stream, and only adds what goes beyond that.
        self._whitelisted: set[str] = set()
        self._whitelisted_counted = 0

    def _accept(self, evidence: dict[str, Any]) -> bool:
        """False for whitelisted evidence: dropped before it is stored or counted."""
        if self._whitelist is None or not self._whitelist.drops_evidence(evidence):
            return True
        if evidence.get("id") not in self._whitelisted:
            self._whitelisted.add(str(evidence.get("id")))
            log.debug("whitelisted evidence %s %s -> %s", evidence.get("type"),
                      evidence.get("attacker"), evidence.get("victim"))
        return False

    def _count_whitelisted(self, store: Store) -> None:
        extra = len(self._whitelisted) - self._whitelisted_counted
        if extra > 0:
            store.add_counts({WHITELISTED_EVIDENCE: extra})
            self._whitelisted_counted += extra

    def run(self) -> int:
        spec = self.spec
        store = Store(connect(spec.redis_url), spec.run_id)
        if store.start_evidence_group():
            log.warning("evidence handler restarted: replaying run %s", spec.run_id)
        self._whitelisted_counted = store.stats().get(WHITELISTED_EVIDENCE, 0)
        store.mark_ready("evidence")
        signal.signal(signal.SIGTERM, self._on_sigterm)
        if spec.live:
            return self.run_live(store)
        waiting = {*spec.modules, INGEST} - set(store.modules_done())
        while waiting and not self._stopping:
            items = store.read_evidence(spec.block_ms)
            for _, body in items:
                if "done" in body:
                    store.add_module_done(body["done"], body.get("failed", ""))
                    waiting.discard(body["done"])
                elif self._accept(body["evidence"]):
                    store.add_evidence(body["evidence"])
            self._count_whitelisted(store)
            store.ack_evidence([eid for eid, _ in items])
        if waiting:
            return 0  # stopped before the end: the run is left unfinished
        self.finish(store)
        return 0

    def run_live(self, store: Store) -> int:
        """Alerts as soon as a window's score reaches the threshold, appended to the outputs.

        After a restart the stream replays from its start: evidence already
        stored is not counted again, and the windows' pending evidence is
        rebuilt from the store, so no alert is raised twice or lost.
        """
        folder = Path(self.spec.output_dir)
        alerted = {e for a in store.alerts() for e in a["evidence"]}
        windows = LiveWindows(self.spec.threshold)
        stored = [Evidence.from_dict(e) for e in store.all_evidence()]
        for item in sort_evidence(e for e in stored if e.id not in alerted):
            self._add_live(store, folder, windows, item)
        trimmed = time.monotonic()
        while not self._stopping:
            items = store.read_evidence(self.spec.block_ms)
            for _, body in items:
                if "evidence" in body and self._accept(body["evidence"]) \
                        and store.add_evidence(body["evidence"]):
                    item = Evidence.from_dict(body["evidence"])
                    outputs.append_live(folder, item, None)
                    self._add_live(store, folder, windows, item)
            self._count_whitelisted(store)
            store.ack_evidence([eid for eid, _ in items])
            if time.monotonic() - trimmed > TRIM_SECONDS:
                store.trim_evidence()  # stored already: the stream needs none of it
                trimmed = time.monotonic()
        return 0

    def _add_live(self, store: Store, folder: Path, windows: LiveWindows,
                  item: Evidence) -> None:
        alert = windows.add(item)
        if alert is not None:
            store.append_alert(alert.to_dict())
            outputs.append_live(folder, None, alert)
            log.warning("%s", outputs.alert_line(alert))

    def finish(self, store: Store) -> dict[str, Any]:
        spec = self.spec
        evidence = [Evidence.from_dict(e) for e in store.all_evidence()]
        alerts = alerts_for(evidence, spec.threshold)
        store.set_alerts(a.to_dict() for a in alerts)
        meta = store.run_meta()
        first_ts, width = float(meta.get("first_ts", 0.0)), float(meta.get("width", 3600.0))
        windows = store.all_windows(top=outputs.TOP_LISTED)
        bounds = {tw: (first_ts + tw * width, first_ts + (tw + 1) * width)
                  for tw in {tw for _, tw in windows}}
        outputs.write_run(Path(spec.output_dir), evidence, alerts, windows, bounds, time.time())
        stats = store.stats()
        alert_types: Counter[str] = Counter()
        for alert in alerts:
            alert_types.update({e.type for e in alert.evidence})
        failed = {name: why for name, why in store.modules_done().items()
                  if why and name != INGEST}
        summary = {
            "flows": stats.get("events.new_flow", 0),
            "events": sum(v for k, v in stats.items() if k.startswith("events.")),
            "lines": stats.get("lines", 0),
            "bad_lines": stats.get("bad_lines", 0),
            "profiles": len(store.profiles()),
            "ips": store.ip_count(),
            "evidence": len(evidence),
            "evidence_by_type": dict(Counter(e.type for e in evidence)),
            "alerts": len(alerts),
            "alerts_by_type": dict(alert_types),
            "modules_failed": failed,
            "output": spec.output_dir,
            **whitelist_summary(stats, meta),
        }
        store.set_run_meta(summary=summary)
        return summary

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True


def whitelist_summary(stats: dict[str, int], meta: dict[str, Any]) -> dict[str, Any]:
    """What the whitelist removed from the run, for its summary."""
    return {
        "whitelisted_flows": stats.get("whitelisted.new_flow", 0),
        "whitelisted_events": sum(v for k, v in stats.items() if k.startswith("whitelisted.")),
        "whitelisted_evidence": stats.get(WHITELISTED_EVIDENCE, 0),
        "whitelist": meta.get("whitelist", {}),
    }
