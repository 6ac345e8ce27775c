from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    RedisClient = redis.Redis[str]
    BinaryClient = redis.Redis[bytes]
else:
    RedisClient = redis.Redis
    BinaryClient = redis.Redis


class StoreUnavailable(Exception):
    """Redis could not be reached; the message says where and why."""


def command(client: RedisClient | Any, *args: Any) -> Any:
    """A raw command, for options redis-py 4.3 has no method argument for."""
    return client.execute_command(*args)


def connect(url: str, timeout: float = 5.0) -> RedisClient:
    """A client for ``url`` that has answered PING, or ``StoreUnavailable``.

    Retries until ``timeout`` because an embedded redis-server may still be
    binding its socket when a child starts.
    """
    # redis-py 4.3's Unix socket connections know no socket_connect_timeout.
    if url.startswith("unix://"):
        client = redis.Redis.from_url(url, decode_responses=True)
    else:
        client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return client
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise StoreUnavailable(f"cannot reach Redis at {url}: {exc}") from exc
            time.sleep(0.05)
        except redis.ResponseError as exc:
            raise StoreUnavailable(f"Redis at {url} refused: {exc}") from exc


def binary_client(client: RedisClient) -> BinaryClient:
    """A client for the same server as ``client`` whose replies stay bytes (MessagePack)."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs["decode_responses"] = False
    binary: BinaryClient = redis.Redis(
        connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )
    return binary
