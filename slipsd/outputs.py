"""A run's output folder: ``alerts.log``, ``alerts.json`` and ``profiles/<ip>/tw<N>.txt``.

alerts.json holds one IDMEF v2 message per line (docs/output.md), one per
evidence and one per alert; the slips-specific fields ride in an ``Attachment``
so standard IDMEF consumers can ignore them.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from slipsd import __version__
from slipsd.evidence import Alert, Evidence, sort_evidence

IDMEF_VERSION = "2.0.3"
TOP_LISTED = 10  # destinations and ports listed in a window's summary file
_NAMESPACE = uuid.UUID("6f7c0a52-3c1e-4f43-9a55-3f1d2c5b7e10")  # slips' own uuid5 namespace
_PRIORITY = {"info": "Info", "low": "Low", "medium": "Medium", "high": "High",
             "critical": "High"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


def _uuid(ident: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, ident))


def _analyzer(host: str) -> dict[str, Any]:
    return {
        "IP": "127.0.0.1", "Hostname": host, "Name": "slips", "Model": f"slips {__version__}",
        "Category": ["NIDS"], "Data": ["Flow", "Network"], "Method": ["Heuristic"],
    }


def evidence_idmef(item: Evidence, created: float, host: str) -> dict[str, Any]:
    return {
        "Version": IDMEF_VERSION,
        "ID": _uuid(item.id),
        "CreateTime": iso(created),
        "StartTime": iso(item.ts),
        "Category": [item.type],
        "Priority": _PRIORITY[item.threat_level],
        "Confidence": round(item.confidence, 4),
        "Description": item.description,
        "Analyzer": _analyzer(host),
        "Source": [{"IP": item.attacker}] if item.attacker else [],
        "Target": [{"IP": item.victim}] if item.victim else [],
        "Attachment": [{"Name": "slips", "ContentType": "application/json",
                        "Content": json.dumps({"kind": "evidence", **item.to_dict()})}],
    }


def alert_idmef(alert: Alert, created: float, host: str) -> dict[str, Any]:
    types = Counter(e.type for e in alert.evidence)
    victims = sorted({e.victim for e in alert.evidence if e.victim})
    level = max(alert.evidence, key=lambda e: e.weight).threat_level
    slips = {"kind": "alert", **alert.to_dict(), "types": dict(types)}
    return {
        "Version": IDMEF_VERSION,
        "ID": _uuid(alert.id),
        "CreateTime": iso(created),
        "StartTime": iso(min(e.ts for e in alert.evidence)),
        "Category": sorted(types),
        "Priority": _PRIORITY[level],
        "Description": _alert_text(alert),
        "CorrelID": [_uuid(e.id) for e in alert.evidence],
        "Analyzer": _analyzer(host),
        "Source": [{"IP": alert.profile}],
        "Target": [{"IP": v} for v in victims],
        "Attachment": [{"Name": "slips", "ContentType": "application/json",
                        "Content": json.dumps(slips)}],
    }


def _alert_text(alert: Alert) -> str:
    types = Counter(e.type for e in alert.evidence)
    parts = ", ".join(f"{t} x{n}" if n > 1 else t for t, n in sorted(types.items()))
    return (f"{alert.profile} is infected or attacking in time window {alert.tw}: "
            f"score {alert.score:.2f} >= {alert.threshold:.2f} from {parts}")


def evidence_line(item: Evidence) -> str:
    return (f"{iso(item.ts)} evidence {item.type} {item.attacker} -> {item.victim or '-'} "
            f"threat={item.threat_level} confidence={item.confidence:.2f} tw={item.tw}: "
            f"{item.description}")


def alert_line(alert: Alert) -> str:
    return f"{iso(alert.ts)} ALERT {_alert_text(alert)}"


def append_live(folder: Path, evidence: Evidence | None, alert: Alert | None) -> None:
    """Add one evidence or alert to a live run's alerts.log and alerts.json as it happens."""
    folder.mkdir(parents=True, exist_ok=True)
    host, now = os.uname().nodename, time.time()
    if evidence is not None:
        line, message = evidence_line(evidence), evidence_idmef(evidence, now, host)
    elif alert is not None:
        line, message = alert_line(alert), alert_idmef(alert, now, host)
    else:
        return
    with open(folder / "alerts.log", "a", encoding="utf-8") as log_file:
        log_file.write(line + "\n")
    with open(folder / "alerts.json", "a", encoding="utf-8") as js:
        js.write(json.dumps(message, separators=(",", ":")) + "\n")


def write_run(
    folder: Path,
    evidence: Iterable[Evidence],
    alerts: list[Alert],
    windows: Mapping[tuple[str, int], Mapping[str, Any]],
    window_bounds: Mapping[int, tuple[float, float]],
    created: float,
) -> None:
    """Write every output file of a finished analysis (atomically per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    host = os.uname().nodename
    ordered = list(sort_evidence(evidence))
    timeline: list[tuple[float, int, str, dict[str, Any]]] = []
    for item in ordered:
        timeline.append((item.ts, 0, evidence_line(item), evidence_idmef(item, created, host)))
    for alert in alerts:
        timeline.append((alert.ts, 1, alert_line(alert), alert_idmef(alert, created, host)))
    timeline.sort(key=lambda row: (row[0], row[1], row[2]))
    with _atomic(folder / "alerts.log") as log_file, _atomic(folder / "alerts.json") as js:
        for _, _, line, message in timeline:
            log_file.write(line + "\n")
            js.write(json.dumps(message, separators=(",", ":")) + "\n")
    by_window: dict[tuple[str, int], list[Evidence]] = {}
    for item in ordered:
        by_window.setdefault((item.profile, item.tw), []).append(item)
    alerts_by_window: dict[tuple[str, int], list[Alert]] = {}
    for alert in alerts:
        alerts_by_window.setdefault((alert.profile, alert.tw), []).append(alert)
    for (ip, tw), summary in windows.items():
        target = folder / "profiles" / ip.replace(":", "_") / f"tw{tw}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        with _atomic(target) as out:
            _write_window(out, ip, tw, summary, window_bounds.get(tw),
                          by_window.get((ip, tw), []), alerts_by_window.get((ip, tw), []))


def _write_window(
    out: TextIO, ip: str, tw: int, summary: Mapping[str, Any],
    bounds: tuple[float, float] | None, evidence: list[Evidence], alerts: list[Alert],
) -> None:
    span = f"{iso(bounds[0])} to {iso(bounds[1])}" if bounds else "unknown span"
    out.write(f"profile {ip}, time window {tw}: {span}\n\n")
    out.write(f"flows: {summary.get('flows', 0)} out, {summary.get('flows_in', 0)} in; "
              f"bytes sent {summary.get('sbytes', 0)}, received {summary.get('dbytes', 0)}\n")
    top_ips = busiest(summary.get("dst_ips", {}))
    if top_ips:
        out.write("top destinations: " + ", ".join(f"{k} ({n})" for k, n in top_ips) + "\n")
    top_ports = busiest(summary.get("dst_ports", {}))
    if top_ports:
        out.write("top ports (proto/port/state): "
                  + ", ".join(f"{k} ({n})" for k, n in top_ports) + "\n")
    out.write(f"\nevidence ({len(evidence)}):\n")
    for item in evidence:
        out.write("  " + evidence_line(item) + "\n")
    out.write(f"\nalerts ({len(alerts)}):\n")
    for alert in alerts:
        out.write("  " + alert_line(alert) + "\n")


def busiest(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """The TOP_LISTED largest counts, largest first, ties in name order."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_LISTED]


class _atomic:
    """Write to a temporary file and rename, so readers never see half a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.handle: TextIO | None = None

    def __enter__(self) -> TextIO:
        self.handle = open(self.tmp, "w", encoding="utf-8")
        return self.handle

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self.handle is not None
        self.handle.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
