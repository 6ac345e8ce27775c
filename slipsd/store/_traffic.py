"""Writing the profiler's output: profiles, time windows and counters, in few round trips.

The ingest writes every batch of traffic through here, so this is the one hot write
path of the store: the data of up to 500 windows goes to one Lua script call as a
single MessagePack argument (packing thousands of small arguments one by one in
redis-py cost the ingest more than reading its input did).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slipsd.store import keys
from slipsd.store._connect import RedisClient

try:
    import msgpack
except ImportError:  # pragma: no cover - Debian's python3-msgpack is a dependency
    msgpack = None


def _pack(data: Any) -> list[str | bytes]:
    """ARGV of the traffic script: the data, and how it is encoded."""
    if msgpack is not None:
        packed: bytes = msgpack.packb(data)
        return [packed, "msgpack"]
    return [json.dumps(data, separators=(",", ":")), "json"]


# One call applies a share of a batch of profiler output (see Store.write_traffic).
# KEYS: the run's ips set, profiles set, stats hash, retention index, then one hash per
# profile, then four per window: its hash, destination-IP hash, port hash and the profile's
# window set. ARGV[1]: the data, MessagePack (ARGV[2] = 'msgpack') or JSON: {new ips,
# profiles [[ip, first_seen, last_seen, flows], ...], windows [[tw, flows, sbytes, dbytes,
# flows_in, [ip, n, ...], [port, n, ...]], ...], counters [name, n, ...], dated new ips
# [ip, window, ...] (live runs)}. Counts arrive as strings where a Lua number (a double)
# could lose digits, times as Python wrote them.
WRITE_TRAFFIC = """
local data
if ARGV[2] == 'json' then data = cjson.decode(ARGV[1]) else data = cmsgpack.unpack(ARGV[1]) end
local function add_all(key, items)
  for i = 1, #items, 1000 do
    redis.call('SADD', key, unpack(items, i, math.min(i + 999, #items)))
  end
end
add_all(KEYS[1], data[1])
local dated = data[5]
for i = 1, #dated, 2 do redis.call('ZADD', KEYS[4], 'GT', dated[i + 1], dated[i]) end
local profiles = data[2]
local names = {}
for i, row in ipairs(profiles) do
  redis.call('HSET', KEYS[4 + i], 'first_seen', row[2], 'last_seen', row[3], 'flows', row[4])
  names[i] = row[1]
end
add_all(KEYS[2], names)
local base = 4 + #profiles
local totals = {'flows', 'sbytes', 'dbytes', 'flows_in'}
for j, w in ipairs(data[3]) do
  local k = base + 4 * (j - 1)
  redis.call('SADD', KEYS[k + 4], w[1])
  for i, name in ipairs(totals) do
    if w[i + 1] ~= '0' or i == 1 then redis.call('HINCRBY', KEYS[k + 1], name, w[i + 1]) end
  end
  for part = 6, 7 do
    local pairs_ = w[part]
    for i = 1, #pairs_, 2 do
      redis.call('HINCRBY', KEYS[k + part - 4], pairs_[i], pairs_[i + 1])
    end
  end
end
local counts = data[4]
for i = 1, #counts, 2 do redis.call('HINCRBY', KEYS[3], counts[i], counts[i + 1]) end
return 0
"""
# Windows per script call: a call blocks Redis while it runs, readers wait meanwhile.
_WINDOWS_PER_CALL = 500


@dataclass(slots=True)
class WindowDelta:
    """What one batch of traffic added to one profile's time window."""

    flows: int = 0
    sbytes: int = 0
    dbytes: int = 0
    flows_in: int = 0  # flows towards this IP, with analysis_direction = all
    dst_ips: dict[str, int] = field(default_factory=dict)
    # (proto, port, state) -> flows, stored as "tcp/443/SF": formatted once per window
    # when written, not once per flow (already text when its parts cannot be a key).
    dst_ports: dict[tuple[Any, Any, Any] | str, int] = field(default_factory=dict)


def _window_row(tw: int, delta: WindowDelta) -> list[Any]:
    ips: list[Any] = []
    for ip, n in delta.dst_ips.items():
        ips += (ip, n)
    ports: dict[str, int] = {}
    for key, n in delta.dst_ports.items():
        name = key if isinstance(key, str) else f"{key[0]}/{key[1]}/{key[2]}"
        ports[name] = ports.get(name, 0) + n
    flat: list[Any] = []
    for name, n in ports.items():
        flat += (name, n)
    return [tw, str(delta.flows), str(delta.sbytes), str(delta.dbytes), str(delta.flows_in),
            ips, flat]


def write_traffic(
    client: RedisClient,
    script: Any,
    run_id: str,
    new_ips: list[str],
    profiles: Mapping[str, tuple[float, float, int]],
    windows: Mapping[tuple[str, int], WindowDelta],
    counts: Mapping[str, int],
    dated: Mapping[str, int],
) -> None:
    """Apply one batch of profiler output: profiles (first seen, last seen, flows),
    window deltas and counters, in a few calls of ``script`` (WRITE_TRAFFIC, registered
    on the client by the Store) in one round trip. ``dated``: new addresses of a live run
    and the window each was announced in, for the retention index (never lowered)."""
    pipe = client.pipeline(transaction=False)
    run_keys = [keys.run(run_id, "ips"), keys.run(run_id, "profiles"), keys.run(run_id, "stats"),
                keys.retention_seen(run_id)]
    prof_keys = [keys.profile(run_id, ip) for ip in profiles]
    prof_rows = [[ip, repr(first), repr(last), flows]
                 for ip, (first, last, flows) in profiles.items()]
    count_pairs: list[Any] = []
    for name, value in counts.items():
        if value:
            count_pairs += (name, value)
    dated_pairs: list[Any] = []
    for ip, tw in dated.items():
        dated_pairs += (ip, tw)
    items = list(windows.items())
    for i in range(0, max(len(items), 1), _WINDOWS_PER_CALL):
        chunk = items[i:i + _WINDOWS_PER_CALL]
        win_keys: list[str] = []
        for (ip, tw), _ in chunk:
            win_keys += (*keys.window_parts(run_id, ip, tw), keys.run(run_id, "tws", ip))
        rows = [_window_row(tw, delta) for (_, tw), delta in chunk]
        first = i == 0  # everything but windows goes with the first call
        data = [new_ips if first else [], prof_rows if first else [], rows,
                count_pairs if first else [], dated_pairs if first else []]
        script(keys=run_keys + (prof_keys if first else []) + win_keys, args=_pack(data),
               client=pipe)
    pipe.execute()
