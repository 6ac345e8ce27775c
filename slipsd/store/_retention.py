"""Retention of a live run in Redis: old time windows go, with what only they explain.

A live run never ends, so without this every profile, window, address, evidence
and alert it ever wrote would stay in Redis. ``LiveRetention.sweep`` deletes the
windows older than the newest one minus ``keep`` and what depends on them:

- profiles left without windows (hash, ``profiles`` membership, ``tws`` set);
- addresses (``ips`` members and ``ipinfo`` hashes) not referenced since: the
  index ``retention:seen`` (sorted set, address -> newest window it was seen in,
  as a profile or as a flow's destination) is kept by the sweep, from the windows it
  reads, and by the ingest, which dates each address it announces (writes to ``ips``);
- evidence and alerts of the deleted windows (and scores, recomputed from the
  alerts left).

Writes that race with the ingest are decided inside Lua scripts (atomic in Redis):
a profile is only deleted when, at that moment, it has no window left and its
``last_seen`` is older than the kept windows; an address only when it is no profile
and its date in the index is still before the cutoff (the ingest may have announced
it again since the sweep read the index).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from slipsd.store import keys
from slipsd.store._connect import RedisClient

CHUNK = 500  # profiles or addresses per pipeline or script call: Redis is never held long

# Deletes the old windows of some profiles, then the profiles left without any.
# KEYS: the profiles set, then per profile its hash and tws set followed by three keys per
# old window (totals, :dst, :ports). ARGV: cutoff_ts, n, then per profile ip, m, m windows.
_DROP_WINDOWS = """
local cutoff_ts = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local a, k = 3, 2
local windows, profiles = 0, 0
for p = 1, n do
  local ip, m = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local prof, tws = KEYS[k], KEYS[k + 1]
  k = k + 2
  for j = 1, m do
    windows = windows + redis.call('SREM', tws, ARGV[a])
    redis.call('UNLINK', KEYS[k], KEYS[k + 1], KEYS[k + 2])
    a, k = a + 1, k + 3
  end
  if redis.call('SCARD', tws) == 0 then
    local last = tonumber(redis.call('HGET', prof, 'last_seen') or '')
    -- A profile the ingest has just written (its window may come in its next call)
    -- has a last_seen in the kept windows: it stays.
    if last == nil or last < cutoff_ts then
      redis.call('UNLINK', prof)
      profiles = profiles + redis.call('SREM', KEYS[1], ip)
    end
  end
end
return {windows, profiles}
"""

# Forgets addresses no longer referenced, unless they are (again) a profile or were dated
# again since they were listed. KEYS: ips set, profiles set, seen index, then one ipinfo
# key per address. ARGV: the cutoff window, then the addresses.
_DROP_ADDRESSES = """
local cutoff = tonumber(ARGV[1])
local dropped = 0
for i = 2, #ARGV do
  local ip = ARGV[i]
  local date = tonumber(redis.call('ZSCORE', KEYS[3], ip))
  if (date == nil or date < cutoff) and redis.call('SISMEMBER', KEYS[2], ip) == 0 then
    redis.call('SREM', KEYS[1], ip)
    redis.call('UNLINK', KEYS[2 + i])
    redis.call('ZREM', KEYS[3], ip)
    dropped = dropped + 1
  end
end
return dropped
"""

# Removes the alerts of windows below ARGV[1]; each affected profile's score becomes the
# highest of its alerts left. KEYS: alerts list, scores sorted set.
_DROP_ALERTS = """
local cutoff = tonumber(ARGV[1])
local gone = '\\0slips-retention-removed'
local best, touched, removed = {}, {}, 0
for i, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local alert = cjson.decode(raw)
  if tonumber(alert['tw']) < cutoff then
    redis.call('LSET', KEYS[1], i - 1, gone)
    touched[alert['profile']] = true
    removed = removed + 1
  else
    local score = tonumber(alert['score'])
    if best[alert['profile']] == nil or score > best[alert['profile']] then
      best[alert['profile']] = score
    end
  end
end
if removed > 0 then
  redis.call('LREM', KEYS[1], 0, gone)
  for profile in pairs(touched) do
    if best[profile] then redis.call('ZADD', KEYS[2], best[profile], profile)
    else redis.call('ZREM', KEYS[2], profile) end
  end
end
return removed
"""


@dataclass
class SweepResult:
    """What one sweep found and removed."""

    newest: int = -1  # the newest window of the run (-1: no traffic yet)
    cutoff: int = 0  # windows below this were deleted
    windows: int = 0
    profiles: int = 0
    addresses: int = 0
    evidence: int = 0
    alerts: int = 0

    @property
    def removed(self) -> dict[str, int]:
        """Counters for the run's stats (``expired.<what>``)."""
        return {f"expired.{f.name}": getattr(self, f.name) for f in fields(self)
                if f.name not in ("newest", "cutoff")}


class LiveRetention:
    """Sweeps one live run. Holds what it indexed already, so use one per run."""

    def __init__(self, client: RedisClient, run_id: str) -> None:
        self.redis = client
        self.run_id = run_id
        self.seen = keys.retention_seen(run_id)
        self._newest = -1  # never goes back, whatever the sweep finds deleted
        self._indexed = 0  # windows below this had their destinations indexed
        self._drop_windows = client.register_script(_DROP_WINDOWS)
        self._drop_addresses = client.register_script(_DROP_ADDRESSES)
        self._drop_alerts = client.register_script(_DROP_ALERTS)

    def key(self, *parts: str | int) -> str:
        return keys.run(self.run_id, *parts)

    def sweep(self, keep: int) -> SweepResult:
        """Delete the windows below ``newest - keep`` and what depends on them. Every sweep
        reads each profile's window set (O(profiles)); the rest (destinations of newly
        closed windows, addresses, evidence, alerts) only when a window has closed."""
        result = SweepResult()
        first_ts, width = self._origin()
        if first_ts is None:
            return result  # no traffic yet
        tws = self._profile_windows()
        self._newest = max([self._newest, *(max(w) for w in tws.values() if w)])
        result.newest, result.cutoff = self._newest, max(0, self._newest - keep)
        cutoff = result.cutoff
        closed = self._newest > self._indexed
        if closed:
            self._mark_seen({ip: max(w) for ip, w in tws.items() if w}, gt=True)
            self._index_destinations(tws, self._indexed, self._newest)
            self._indexed = self._newest
        old = {ip: sorted(w for w in ws if w < cutoff) for ip, ws in tws.items()}
        old = {ip: ws for ip, ws in old.items() if ws or not tws[ip]}
        result.windows, result.profiles = self._delete_windows(old, first_ts + cutoff * width)
        if closed:
            self._notice_addresses()
            result.addresses = self._delete_addresses(cutoff)
            result.evidence = self._delete_evidence(cutoff)
            result.alerts = int(self._drop_alerts(
                keys=[self.key("alerts"), self.key("scores")], args=[cutoff]))
        return result

    # -- reading ---------------------------------------------------------------------

    def _origin(self) -> tuple[float | None, float]:
        first, width = self.redis.hmget(self.key("meta"), ["first_ts", "width"])
        if first is None:
            return None, 0.0
        return float(json.loads(first)), float(json.loads(width)) if width else 3600.0

    def _profile_windows(self) -> dict[str, list[int]]:
        """Every profile's windows: SSCAN of the profiles set, SMEMBERS pipelined."""
        out: dict[str, list[int]] = {}
        batch: list[str] = []
        for ip in self.redis.sscan_iter(self.key("profiles"), count=CHUNK):
            batch.append(ip)
            if len(batch) >= CHUNK:
                self._read_windows(batch, out)
                batch = []
        self._read_windows(batch, out)
        return out

    def _read_windows(self, ips: list[str], out: dict[str, list[int]]) -> None:
        if not ips:
            return
        pipe = self.redis.pipeline(transaction=False)
        for ip in ips:
            pipe.smembers(self.key("tws", ip))
        for ip, members in zip(ips, pipe.execute(), strict=True):
            out[ip] = [int(tw) for tw in members]

    # -- the address index -------------------------------------------------------------

    def _mark_seen(self, scores: dict[str, int], gt: bool = False, nx: bool = False) -> None:
        items = list(scores.items())
        pipe = self.redis.pipeline(transaction=False)
        for i in range(0, len(items), CHUNK):
            pipe.zadd(self.seen, dict(items[i:i + CHUNK]), gt=gt, nx=nx)
        pipe.execute()

    def _index_destinations(self, tws: dict[str, list[int]], low: int, high: int) -> None:
        """The destinations of windows low..high (both in) count as seen in them. Each
        window is read once when it has closed, and the open one ``high`` once more: an
        address busy only there must not age out."""
        pairs = [(ip, tw) for ip, ws in tws.items() for tw in ws if low <= tw <= high]
        for i in range(0, len(pairs), CHUNK):
            chunk = pairs[i:i + CHUNK]
            pipe = self.redis.pipeline(transaction=False)
            for ip, tw in chunk:
                pipe.hkeys(keys.window(self.run_id, ip, tw, "dst"))
            scores: dict[str, int] = {}
            for (_, tw), dsts in zip(chunk, pipe.execute(), strict=True):
                for dst in dsts:
                    if scores.get(dst, -1) < tw:
                        scores[dst] = tw
            self._mark_seen(scores, gt=True)

    def _notice_addresses(self) -> None:
        """Addresses the index does not know yet (seen only outside flows, ip info of
        names) count as seen now. O(ips + all keys): once per closed window."""
        newest = self._newest
        batch: list[str] = []
        for ip in self.redis.sscan_iter(self.key("ips"), count=1000):
            batch.append(ip)
        prefix = keys.ip_info(self.run_id, "")
        for name in self.redis.scan_iter(match=prefix + "*", count=1000):
            batch.append(name[len(prefix):])
        self._mark_seen(dict.fromkeys(batch, newest), nx=True)

    def _delete_addresses(self, cutoff: int) -> int:
        return self.drop_addresses(self.redis.zrangebyscore(self.seen, "-inf", f"({cutoff}"),
                                   cutoff)

    def drop_addresses(self, stale: list[str], cutoff: int) -> int:
        """Drop these addresses, listed as dated before window ``cutoff``: each only if it
        still is when the script gets to it, and is no profile."""
        dropped = 0
        for i in range(0, len(stale), CHUNK):
            chunk = stale[i:i + CHUNK]
            run_keys = [self.key("ips"), self.key("profiles"), self.seen]
            info = [keys.ip_info(self.run_id, ip) for ip in chunk]
            dropped += int(self._drop_addresses(keys=run_keys + info, args=[cutoff, *chunk]))
        return dropped

    # -- windows, evidence ---------------------------------------------------------------

    def _delete_windows(self, old: dict[str, list[int]], cutoff_ts: float) -> tuple[int, int]:
        windows = profiles = 0
        items = list(old.items())
        for i in range(0, len(items), CHUNK):
            chunk = items[i:i + CHUNK]
            run_keys = [self.key("profiles")]
            args: list[str | int] = [repr(cutoff_ts), len(chunk)]
            for ip, tws in chunk:
                run_keys += (keys.profile(self.run_id, ip), self.key("tws", ip))
                args += (ip, len(tws), *tws)
                for tw in tws:
                    run_keys += keys.window_parts(self.run_id, ip, tw)
            w, p = self._drop_windows(keys=run_keys, args=args)
            windows, profiles = windows + int(w), profiles + int(p)
        return windows, profiles

    def _delete_evidence(self, cutoff: int) -> int:
        """HSCAN of the evidence hash: O(evidence kept), once per closed window."""
        name = self.key("evidence")
        old: list[str] = []
        for ident, body in self.redis.hscan_iter(name, count=1000):
            if _tw(body) < cutoff:
                old.append(ident)
        for i in range(0, len(old), CHUNK):
            self.redis.hdel(name, *old[i:i + CHUNK])
        return len(old)


def _tw(body: Any) -> int:
    try:
        return int(json.loads(body)["tw"])
    except (ValueError, KeyError, TypeError):
        return -1  # unreadable: nothing can use it, it goes
