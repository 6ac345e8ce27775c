"""The process that reads a run's input, profiles it and publishes it on the bus."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipsd.events import LOG_CHANNELS, NEW_INPUT, TRAFFIC_CHANNELS
from slipsd.inputs import Input, InputError, LineError, open_fd, open_path
from slipsd.inputs.follow import FollowInput, Wakeup
from slipsd.profiler import Profiler
from slipsd.stopsignal import StopOnSigterm
from slipsd.store import Producer, Store, connect, resume_state
from slipsd.whitelist import Whitelist, load_whitelist

log = logging.getLogger(__name__)

SAVE_SECONDS = 5.0  # live: longest time between saves of the read positions
TRIM_SECONDS = 10.0  # live: longest time between trims of what every reader has read
INGEST = "ingest"  # the name the ingest process reports ``done`` under
ERRORS_LOGGED = 50  # bad lines logged one by one; all are counted


@dataclass
class IngestSpec:
    run_id: str
    redis_url: str
    source_name: str
    source_path: str = ""
    source_fd: int = -1  # inherited descriptor of the file or folder to read
    width: float = 3600.0
    direction: str = "out"
    batch_size: int = 500
    max_lag: int = 200
    readers: list[str] = field(default_factory=list)  # consumer names to wait for
    ready_timeout: float = 30.0
    follow_dirs: list[str] = field(default_factory=list)  # live: sensor folders to follow
    zeek: str = ""  # read captures with this zeek program; empty: the flowmeter
    poll_seconds: float = 1.0  # at most this long between looks, when inotify is silent
    whitelist: str = ""  # whitelist file (config.whitelist_file); empty: none
    asn_database: str = ""  # [geoip] asn_database: organisations' AS numbers in the whitelist
    # [database] keep_windows. Live only: the ingest forgets what the retention sweep
    # deletes from Redis. An analysis keeps everything, whatever this says.
    keep_windows: int = 0


def input_info(source: Input) -> dict[str, Any]:
    """What the input can provide. Zeek watches every protocol, so a missing http.log
    in its folder means no HTTP was seen; a single log file or a flow-only format
    (Argus, nfdump) declares a smaller ``log_types`` so that modules do not read the
    absence of records as evidence."""
    declared = getattr(source, "log_types", None)
    log_types = sorted(declared) if declared is not None else sorted(LOG_CHANNELS)
    return {"source": source.name, "log_types": log_types}


def open_whitelist(spec: IngestSpec, store: Store) -> Whitelist | None:
    """The run's whitelist; what was read (entries, bad lines) goes in the run's metadata."""
    whitelist = load_whitelist(spec.whitelist, spec.asn_database)
    if whitelist is not None:
        store.set_run_meta(whitelist=whitelist.info())
        log.info("whitelist %s: %d entries, %d bad lines", whitelist.path,
                 len(whitelist.entries), whitelist.bad_lines)
    return whitelist


def run_ingest(spec: IngestSpec) -> int:
    if spec.follow_dirs:
        return run_live_ingest(spec)
    store = Store(connect(spec.redis_url), spec.run_id)
    try:
        if spec.source_fd >= 0:
            source = open_fd(spec.source_fd, spec.source_name, zeek=spec.zeek)
        else:
            source = open_path(spec.source_path, zeek=spec.zeek)
    except InputError as exc:
        log.error("%s", exc)
        store.set_run_meta(input_error=str(exc))
        store.record_errors([str(exc)])
        # The readers still need an end of stream to finish the run.
        Producer(store.redis, spec.run_id, TRAFFIC_CHANNELS).close()
        store.publish_module_done(INGEST, failed=str(exc))
        return 0
    store.set_run_meta(total_lines=source.count_lines())
    missing = store.wait_ready(spec.readers, spec.ready_timeout)
    if missing:
        log.warning("starting without readers that never became ready: %s", sorted(missing))
    whitelist = open_whitelist(spec, store)
    producer = Producer(store.redis, spec.run_id, TRAFFIC_CHANNELS, max_lag=spec.max_lag)
    producer.emit(NEW_INPUT, input_info(source))
    profiler = Profiler(store, producer, width=spec.width, direction=spec.direction,
                        batch_size=spec.batch_size, whitelist=whitelist)
    bad: list[str] = []
    bad_count = 0

    def on_error(error: LineError) -> None:
        nonlocal bad_count
        bad_count += 1
        if bad_count <= ERRORS_LOGGED:
            log.warning("bad input line: %s", error)
        bad.append(str(error))
        if len(bad) >= 100:
            store.record_errors(bad)
            bad.clear()

    try:
        profiler.feed_all(source.records(on_error))
    except (InputError, OSError) as exc:
        # What was read stands; the run ends now, marked failed with the reason.
        message = str(exc) if isinstance(exc, InputError) else f"{spec.source_name}: {exc}"
        log.error("reading stopped: %s", message)
        store.set_run_meta(input_error=message)
        bad.append(message)
    store.record_errors(bad)
    files = [dataclasses.asdict(f) for f in source.files]
    store.add_counts({
        "lines": sum(f.lines for f in source.files),
        "bad_lines": sum(f.bad for f in source.files),
        "late_events": profiler.counts.late,
    })
    store.set_run_meta(files=files, ignored=source.ignored,
                       backpressure_seconds=round(producer.waited_seconds, 3))
    if bad_count > ERRORS_LOGGED:
        log.warning("%d bad input lines in all (first %d logged)", bad_count, ERRORS_LOGGED)
    profiler.finish()
    # Last: the evidence handler takes this as "the run's statistics are complete".
    store.publish_module_done(INGEST)
    source.close()
    if spec.source_fd >= 0:
        os.close(spec.source_fd)
    return 0


def run_live_ingest(spec: IngestSpec) -> int:
    """Follow the sensors' folders until SIGTERM, resuming where a previous process stopped."""
    store = Store(connect(spec.redis_url), spec.run_id)
    meta = store.run_meta()
    positions = {k: (int(v[0]), int(v[1])) for k, v in meta.get("positions", {}).items()}
    folders = [Path(d) for d in spec.follow_dirs]
    follow = FollowInput(folders, "live", positions=positions)
    wakeup = Wakeup(folders)
    missing = store.wait_ready(spec.readers, spec.ready_timeout)
    if missing:
        log.warning("following without readers that never became ready: %s", sorted(missing))
    whitelist = open_whitelist(spec, store)
    producer = Producer(store.redis, spec.run_id, TRAFFIC_CHANNELS, max_lag=spec.max_lag,
                        compress=False)  # trimmed as it is read: nothing to keep small
    profiler = Profiler(store, producer, width=spec.width, direction=spec.direction,
                        batch_size=spec.batch_size, whitelist=whitelist,
                        keep_windows=spec.keep_windows)
    if "first_ts" in meta:
        profiler.resume(float(meta["first_ts"]), *resume_state(store))
    else:
        producer.emit(NEW_INPUT, {"source": "live", "log_types": sorted(LOG_CHANNELS)})
    stop = threading.Event()

    # The loop's wait returns and sees the stop flag (set from StopOnSigterm's thread:
    # the main thread may be inside that wait, holding the event's lock).
    StopOnSigterm(stop.set, wakeup.wake)
    bad: list[str] = []

    def on_error(error: LineError) -> None:
        log.warning("bad input line: %s", error)
        bad.append(str(error))

    saved = trimmed = time.monotonic()
    while not stop.is_set():
        records = follow.poll(on_error)
        # Files are read one after the other: order this poll's lines by time.
        records.sort(key=lambda r: r[0])
        profiler.feed_all(records)
        # When idle, and every few seconds on a link that never is: publish what is
        # buffered, and save where reading stopped so a restart does not count twice.
        if not records or time.monotonic() - saved > SAVE_SECONDS:
            profiler.flush()
            store.set_run_meta(positions=follow.positions)
            store.record_errors(bad)
            store.add_counts({"bad_lines": len(bad)})
            bad.clear()
            saved = time.monotonic()
            if saved - trimmed > TRIM_SECONDS:
                # A live run never ends: what every reader acknowledged must go, or Redis
                # grows with the traffic. A restarted reader replays what is left.
                removed = producer.trim_acknowledged()
                log.debug("trimmed %d acknowledged stream entries", removed)
                trimmed = saved
        if not records:
            wakeup.wait(spec.poll_seconds)
    wakeup.close()
    profiler.flush()
    store.set_run_meta(positions=follow.positions)
    follow.close()
    return 0
