"""What a restarted live ingest takes over from Redis to go on where its predecessor was."""

from __future__ import annotations

from slipsd.store import keys
from slipsd.store._retention import LiveRetention
from slipsd.store._store import Store

CHUNK = 1000  # addresses or profiles per Redis call: Redis is never held long


def resume_state(store: Store) -> tuple[dict[str, int], dict[str, tuple[float, float, int]]]:
    """Each address of the run's ``ips`` with the window the retention index
    (``retention:seen``) dates it to, and each profile's first_seen, last_seen and flows.

    An address the index does not date yet came after the sweep's last look: the sweep
    will date it from a later window than the index's newest, which it gets here. An
    index date is never later than the one the sweep drops an address by (it only grows),
    so the ingest forgets no later than the sweep drops, as it does while running."""
    client = store.redis
    ips = sorted(store.ips())
    seen_key = LiveRetention(client, store.run_id).seen
    newest = client.zrange(seen_key, -1, -1, withscores=True)
    default = int(newest[0][1]) if newest else 0
    marks: dict[str, int] = {}
    for i in range(0, len(ips), CHUNK):
        chunk = ips[i:i + CHUNK]
        scores = client.execute_command("ZMSCORE", seen_key, *chunk)  # untyped in redis-py
        for ip, score in zip(chunk, scores, strict=True):
            marks[ip] = default if score is None else int(float(score))
    names = store.profiles()
    profiles: dict[str, tuple[float, float, int]] = {}
    for i in range(0, len(names), CHUNK):
        chunk = names[i:i + CHUNK]
        pipe = client.pipeline(transaction=False)
        for ip in chunk:
            pipe.hmget(keys.profile(store.run_id, ip), ["first_seen", "last_seen", "flows"])
        for ip, (first, last, flows) in zip(chunk, pipe.execute(), strict=True):
            if first is not None and last is not None:  # not deleted meanwhile
                profiles[ip] = (float(first), float(last), int(flows or 0))
    return marks, profiles
