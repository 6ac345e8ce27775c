"""Reading time windows back: one window for ``slipsctl``, every window for the outputs.

An analysis ends by writing one summary file per profile and window (slipsd.outputs)
that lists only the busiest destinations and ports. Fetching every window's whole
destination table for that took the evidence handler 1.5 CPU s at 1M flows (560,000
pairs parsed by redis-py) on the path to the run's reply; picking the busiest inside
Redis, and returning each window as one JSON string, takes a third of the time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from slipsd.store import keys
from slipsd.store._connect import RedisClient

TOTALS = ("flows", "sbytes", "dbytes", "flows_in")
WINDOWS_PER_CALL = 200  # keeps each script call short: Redis serves no one else meanwhile

# KEYS: three per window, its hash, destination hash and port hash. ARGV[1]: how many of
# the busiest destinations and ports to keep. Returns one JSON string per window:
# [totals as HGETALL gives them, [name, count, ...], [name, count, ...]], busiest first,
# ties in Redis' string order. Keeping the n best seen is linear; sorting whole tables
# is not, and most of them are far longer than n.
WINDOW_TOPS = """
local n = tonumber(ARGV[1])
local function better(k1, c1, k2, c2)
  return c1 > c2 or (c1 == c2 and k1 < k2)
end
local function busiest(key)
  local flat = redis.call('HGETALL', key)
  local names, counts = {}, {}
  for i = 1, #flat, 2 do
    local k, c = flat[i], tonumber(flat[i + 1])
    local m = #names
    if m < n or better(k, c, names[m], counts[m]) then
      local j = m < n and m + 1 or m
      while j > 1 and better(k, c, names[j - 1], counts[j - 1]) do
        names[j], counts[j] = names[j - 1], counts[j - 1]
        j = j - 1
      end
      names[j], counts[j] = k, c
    end
  end
  local out = {}
  for i = 1, #names do
    out[2 * i - 1] = names[i]
    out[2 * i] = counts[i]
  end
  return out
end
local replies = {}
for w = 1, #KEYS, 3 do
  replies[#replies + 1] = cjson.encode({redis.call('HGETALL', KEYS[w]),
                                        busiest(KEYS[w + 1]), busiest(KEYS[w + 2])})
end
return replies
"""


def queue_window(pipe: Any, run_id: str, ip: str, tw: int) -> None:
    for key in keys.window_parts(run_id, ip, tw):
        pipe.hgetall(key)


def window_summary(totals: Mapping[str, str], dst: Mapping[str, str],
                   ports: Mapping[str, str]) -> dict[str, Any]:
    return {
        **{name: int(totals.get(name, 0)) for name in TOTALS},
        "dst_ips": {k: int(v) for k, v in dst.items()},
        "dst_ports": {k: int(v) for k, v in ports.items()},
    }


def window_tops(client: RedisClient, script: Any, run_id: str,
                pairs: Sequence[tuple[str, int]], top: int) -> dict[tuple[str, int], Any]:
    """The summaries of ``pairs`` (profile, window), each with only its ``top`` busiest
    destinations and ports, busiest first."""
    summaries: dict[tuple[str, int], Any] = {}
    for start in range(0, len(pairs), WINDOWS_PER_CALL):
        chunk = pairs[start:start + WINDOWS_PER_CALL]
        names: list[str] = []
        for ip, tw in chunk:
            names += keys.window_parts(run_id, ip, tw)
        for pair, packed in zip(chunk, script(keys=names, args=[top], client=client),
                                strict=True):
            totals, dst, ports = json.loads(packed)
            summaries[pair] = window_summary(_pairs(totals), _pairs(dst), _pairs(ports))
    return summaries


def _pairs(flat: list[Any] | dict[str, Any]) -> dict[str, Any]:
    # cjson writes an empty Lua table as {}: a window without destinations, say.
    return dict(zip(flat[::2], flat[1::2], strict=True)) if isinstance(flat, list) else {}
