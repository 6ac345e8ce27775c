"""All Redis access: the message bus (streams) and the data model (runs,
profiles, time windows, evidence, alerts). Nothing else talks to Redis."""

from slipsd.store._batch import EOS, Entry
from slipsd.store._bus import Consumer, Producer
from slipsd.store._connect import RedisClient, StoreUnavailable, connect
from slipsd.store._info import IpInfo, ModuleCache, dump_caches, load_caches
from slipsd.store._resume import resume_state
from slipsd.store._retention import LiveRetention, SweepResult
from slipsd.store._store import Store

__all__ = [
    "EOS", "Consumer", "Entry", "IpInfo", "LiveRetention", "ModuleCache", "Producer", "RedisClient",
    "Store", "StoreUnavailable", "SweepResult", "connect", "dump_caches", "load_caches",
    "resume_state",
]
