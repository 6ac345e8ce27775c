"""Read-only questions about runs: alerts, runs, profiles, one profile.

Kept apart from the daemon so that daemon.py stays about processes; every
Redis read happens in a worker thread (the store is synchronous).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from slipsd.protocol import Code, ProtocolError
from slipsd.runs import Run, Runs
from slipsd.store import IpInfo, RedisClient, Store


def pick_run(runs: Runs, wanted: str) -> str:
    """The run asked for, else the live run, else the latest one."""
    known = runs.runs
    if not wanted:
        live = [r for r in known.values() if r.source == "live"]
        latest = sorted(known.values(), key=lambda r: r.started)
        wanted = (live or latest)[-1].id if (live or latest) else ""
    if wanted not in known:
        raise ProtocolError(Code.NOT_FOUND, f"no run {wanted!r}" if wanted else "no runs yet")
    return wanted


def run_figures(client: RedisClient, run: Run) -> dict[str, Any]:
    """A run's info with its live counters: flows, rate, profiles, evidence, alerts."""
    store = Store(client, run.id)
    stats = store.stats()
    flows = stats.get("events.new_flow", 0)
    elapsed = max(1e-3, (run.finished or time.time()) - run.started)
    pipe = client.pipeline(transaction=False)
    pipe.scard(store.key("profiles"))
    pipe.hlen(store.key("evidence"))
    pipe.llen(store.key("alerts"))
    profiles, evidence, alerts = pipe.execute()
    whitelisted = sum(v for k, v in stats.items() if k.startswith("whitelisted."))
    return {**run.info(), "flows": flows, "flows_per_second": round(flows / elapsed, 1),
            "profiles": profiles, "evidence": evidence, "alerts": alerts,
            "whitelisted_events": whitelisted,
            "whitelisted_evidence": stats.get("whitelisted_evidence", 0)}


def _limit(args: Mapping[str, Any], default: int = 100) -> int:
    try:
        return int(args.get("limit", default))
    except (TypeError, ValueError):
        raise ProtocolError(Code.INVALID_ARGS, "limit must be a whole number") from None


async def alerts(runs: Runs, client: RedisClient, args: Mapping[str, Any]) -> dict[str, Any]:
    run_id = pick_run(runs, str(args.get("run") or ""))
    limit = _limit(args)
    store = Store(client, run_id)
    found = (await asyncio.to_thread(store.alerts))[-limit:] if limit > 0 else []
    wanted = {e for a in found for e in a["evidence"]}
    evidence = {e["id"]: e for e in await asyncio.to_thread(store.all_evidence)
                if e["id"] in wanted}
    for alert in found:
        alert["evidence"] = [evidence[e] for e in alert["evidence"] if e in evidence]
    return {"run": run_id, "alerts": found}


async def list_runs(runs: Runs, client: RedisClient, args: Mapping[str, Any]) -> dict[str, Any]:
    """Runs this daemon knows, newest last (finished ones until keep_runs drops them)."""
    known = sorted(runs.runs.values(), key=lambda r: r.started)
    return {"runs": [{k: v for k, v in run.info().items() if k != "summary"} for run in known]}


def _profiles(store: Store) -> list[dict[str, Any]]:
    scores = dict(store.redis.zrange(store.key("scores"), 0, -1, withscores=True))
    alerted: dict[str, int] = {}
    for alert in store.alerts():
        alerted[alert["profile"]] = alerted.get(alert["profile"], 0) + 1
    rows = []
    for ip in store.profiles():
        info = store.profile(ip)
        rows.append({"ip": ip, "flows": int(info.get("flows", 0)),
                     "first_seen": float(info.get("first_seen", 0)),
                     "last_seen": float(info.get("last_seen", 0)),
                     "score": float(scores.get(ip, 0.0)), "alerts": alerted.get(ip, 0)})
    return rows


async def profiles(runs: Runs, client: RedisClient, args: Mapping[str, Any]) -> dict[str, Any]:
    run_id = pick_run(runs, str(args.get("run") or ""))
    sort = str(args.get("sort") or "score")
    if sort not in ("score", "flows", "ip"):
        raise ProtocolError(Code.INVALID_ARGS, "sort must be score, flows or ip")
    rows = await asyncio.to_thread(_profiles, Store(client, run_id))
    if args.get("alerted"):
        rows = [r for r in rows if r["alerts"]]
    if sort == "ip":
        rows.sort(key=lambda r: r["ip"])
    else:
        rows.sort(key=lambda r: (-r[sort], r["ip"]))
    return {"run": run_id, "profiles": rows[: _limit(args)]}


def _profile(store: Store, ip: str) -> dict[str, Any]:
    info = IpInfo(store.redis, store.run_id).get(ip)
    if ip not in store.profiles():
        if info:  # a destination only: what modules learnt about it is still worth showing
            return {"ip": ip, "run": store.run_id, "ip_info": info, "windows": []}
        raise ProtocolError(Code.NOT_FOUND, f"no profile {ip} in run {store.run_id}")
    evidence = [e for e in store.all_evidence() if e["profile"] == ip]
    alerts = [a for a in store.alerts() if a["profile"] == ip]
    windows = []
    for tw in store.windows(ip):
        summary = store.window(ip, tw)
        windows.append({"tw": tw, **summary,
                        "evidence": sorted((e for e in evidence if e["tw"] == tw),
                                           key=lambda e: (e["ts"], e["id"])),
                        "alerts": [a for a in alerts if a["tw"] == tw]})
    return {"ip": ip, "run": store.run_id, **store.profile(ip),
            "ip_info": info, "windows": windows}


async def profile(runs: Runs, client: RedisClient, args: Mapping[str, Any]) -> dict[str, Any]:
    run_id = pick_run(runs, str(args.get("run") or ""))
    ip = str(args.get("ip") or "")
    if not ip:
        raise ProtocolError(Code.INVALID_ARGS, "profile needs an ip")
    return await asyncio.to_thread(_profile, Store(client, run_id), ip)
