"""VirusTotal v3 over HTTP, and the pacing that keeps slips inside the API's limits.

Nothing here drops work: the client sorts every answer into what the caller
should do next, and the pacer only ever makes the caller wait.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import fcntl
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import requests

KEY_PATTERN = re.compile(r"[0-9a-fA-F]{64}")
# A Retry-After beyond a day is taken for garbage rather than obeyed.
MAX_RETRY_AFTER = 86400.0


def read_api_key(path: str) -> str:
    """The key in ``path``; ValueError with a reason a user can act on otherwise."""
    if not path:
        raise ValueError("api_key_file is not set")
    try:
        text = Path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        raise ValueError(f"api_key_file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"api_key_file {path}: cannot read it: {reason}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1 or not KEY_PATTERN.fullmatch(lines[0]):
        raise ValueError(f"api_key_file {path}: expected one line of 64 hexadecimal "
                         f"characters (a VirusTotal API key)")
    return lines[0]


Outcome = Literal["found", "unknown", "throttled", "retry", "denied"]


@dataclass(frozen=True)
class Answer:
    """What one request came to. ``retry_after`` is set only for a 429 that said."""

    outcome: Outcome
    attributes: dict[str, Any] = field(default_factory=dict)
    retry_after: float | None = None
    detail: str = ""


PATHS = {"ip": "ip_addresses", "domain": "domains"}


class Client:
    def __init__(self, url: str, key: str, timeout: float) -> None:
        self.base = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"x-apikey": key, "Accept": "application/json",
                                     "User-Agent": "slips-virustotal"})

    def get(self, kind: str, name: str) -> Answer:
        url = f"{self.base}/{PATHS[kind]}/{quote(name, safe=':')}"
        try:
            reply = self.session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            return Answer("retry", detail=f"{type(exc).__name__}: {exc}")
        status = reply.status_code
        if status == 200:
            try:
                attributes = reply.json()["data"]["attributes"]
            except (ValueError, KeyError, TypeError):
                return Answer("retry", detail="HTTP 200 without data.attributes")
            if not isinstance(attributes, dict):
                return Answer("retry", detail="HTTP 200 without data.attributes")
            return Answer("found", attributes=attributes)
        if status == 404:
            return Answer("unknown")
        if status in (401, 403):
            return Answer("denied", detail=f"HTTP {status}: {_error_text(reply)}")
        if status == 429:
            return Answer("throttled", retry_after=_retry_after(reply.headers.get("Retry-After")),
                          detail=f"HTTP 429: {_error_text(reply)}")
        # 5xx, and other codes VirusTotal documents as transient or does not document.
        return Answer("retry", detail=f"HTTP {status}: {_error_text(reply)}")

    def close(self) -> None:
        self.session.close()


def _error_text(reply: requests.Response) -> str:
    try:
        error = reply.json()["error"]
        return f"{error.get('code', '')} {error.get('message', '')}".strip()
    except (ValueError, KeyError, TypeError, AttributeError):
        return reply.reason or ""


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class Pacer:
    """Spaces requests at least 60/per_minute seconds apart and counts them per UTC day.

    The state lives in a small file under the module's data folder, locked
    while it changes, so runs going on at the same time (the live run and an
    analysis) share one budget, and a restarted module does not start with a
    fresh one. Even spacing rather than bursts: the public API allows 4 a
    minute, and one every 15 s never trips it.
    """

    def __init__(self, state_file: Path, per_minute: float, daily: int) -> None:
        self.path = state_file
        self.interval = 60.0 / per_minute
        self.daily = daily
        self.quota_waits = 0

    def acquire(self, stop: threading.Event, on_quota: Any = None) -> bool:
        """Wait until one more request is allowed and count it; False once ``stop`` is set."""
        while not stop.is_set():
            delay, quota_full = self._try_take()
            if delay <= 0:
                return True
            if quota_full:
                self.quota_waits += 1
                if on_quota is not None:
                    on_quota(delay)
                # Wake regularly: a stop, or a wall clock that is set, must be noticed.
                delay = min(delay, 60.0)
            if stop.wait(delay):
                return False
        return False

    def _try_take(self) -> tuple[float, bool]:
        """(0, False) when a request was counted, else (seconds to wait, quota is why)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            state: dict[str, Any] = {}
            with contextlib.suppress(ValueError):
                loaded = json.loads(handle.read() or "{}")
                state = loaded if isinstance(loaded, dict) else {}
            now = time.time()
            today = dt.datetime.fromtimestamp(now, dt.UTC).date()
            used = int(state.get("used", 0)) if state.get("day") == today.isoformat() else 0
            if self.daily > 0 and used >= self.daily:
                midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(),
                                               tzinfo=dt.UTC)
                return max(midnight.timestamp() - now, 0.001), True
            # A wall clock set backwards must not stall us for longer than one interval.
            wait = min(float(state.get("next", 0.0)) - now, self.interval)
            if wait > 0:
                return wait, False
            state = {"day": today.isoformat(), "used": used + 1, "next": now + self.interval}
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(state))
            handle.flush()
            os.fsync(handle.fileno())
            return 0.0, False

    def used_today(self) -> int:
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        today = dt.datetime.now(dt.UTC).date().isoformat()
        return int(state.get("used", 0)) if state.get("day") == today else 0
