"""CPU seconds each detection module's handlers spend per event, in one process.

    .venv/bin/python bench/modules.py FOLDER [--modules a,b] [--limit N] [--dump FILE]

slips' own input reader and profiler turn the Zeek folder into the entries the
ingest process would write on the bus (each channel's batch encoded by the
bus's ``encode_events``), kept in memory as bytes. Then each module in turn, under
``slipsd.testing.ModuleTestContext`` (no Redis, no daemon) with the options of
etc/slips.conf (its ``[modules] enabled`` list by default), is given every
entry of its channels in order, decoded by the bus's ``decode_entry`` as a module
host does: handlers see the very values they get in production, and a module's
garbage collections walk its own objects only, as in its own process.
``time.process_time`` is read around the handler calls of each entry (decoding
is not counted) and around ``shutdown``. FOLDER/feed.csv, when there is one, is
added to threat_intelligence's local feeds as tests/test_generated_traffic.py does.

``--dump FILE`` writes every module's evidence (once per id, as the evidence
handler stores it) as sorted JSON lines, to diff runs before and after a change.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from slipsd import config as slips_config  # noqa: E402
from slipsd.events import NEW_INPUT  # noqa: E402
from slipsd.evidence import Evidence  # noqa: E402
from slipsd.geoip import GeoIP  # noqa: E402
from slipsd.ingest import input_info  # noqa: E402
from slipsd.inputs import LineError, open_path  # noqa: E402
from slipsd.module_loader import ModuleRef, discover, load_class, module_directories  # noqa: E402
from slipsd.profiler import Profiler  # noqa: E402
from slipsd.store._batch import decode_entry, encode_events  # noqa: E402
from slipsd.testing import ModuleTestContext  # noqa: E402
from slipsd.whitelist import load_whitelist  # noqa: E402

Entry = tuple[str, bytes | str]  # channel, encoded batch of events


class _NoStore:
    """The profiler's store: profile counters are not what is measured here."""

    def set_run_meta(self, **fields: Any) -> None:
        pass

    def write_traffic(self, *args: Any) -> None:
        pass


class _Entries:
    """The profiler's producer: keeps each flushed entry as the bus would store it."""

    def __init__(self) -> None:
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self.buffered = 0
        self.entries: list[Entry] = []

    def emit(self, channel: str, event: dict[str, Any]) -> None:
        self._buffers.setdefault(channel, []).append(event)
        self.buffered += 1

    def flush(self) -> None:
        self.entries.extend((channel, encode_events(events))
                            for channel, events in self._buffers.items())
        self._buffers = {}
        self.buffered = 0

    def close(self) -> None:
        self.flush()


def read_entries(folder: Path, cfg: slips_config.Config, limit: int) -> list[Entry]:
    """The entries the ingest process would write for ``folder``, in order."""
    source = open_path(str(folder))
    producer = _Entries()
    whitelist = load_whitelist(slips_config.whitelist_file(cfg),
                               cfg.get_str("geoip", "asn_database"))
    profiler = Profiler(cast(Any, _NoStore()), cast(Any, producer),
                        width=cfg.get_float("profiles", "time_window_width"),
                        direction=cfg.get_str("profiles", "analysis_direction"),
                        batch_size=cfg.get_int("bus", "batch_size"), whitelist=whitelist)
    producer.emit(NEW_INPUT, input_info(source))

    def on_error(error: LineError) -> None:
        print(f"bad line: {error}", file=sys.stderr)

    for n, (ts, channel, event) in enumerate(source.records(on_error), 1):
        profiler.feed(ts, channel, event)
        if n == limit:
            break
    profiler.finish()
    source.close()
    return producer.entries


@dataclass
class Result:
    name: str
    events: int
    cpu: float
    evidence: list[Evidence]


def run_module(name: str, ref: ModuleRef, cfg: slips_config.Config, entries: list[Entry],
               data_dir: Path) -> Result:
    ctx = ModuleTestContext(load_class(ref), cfg.module_sections.get(name, {}),
                            home_networks=cfg.get_list("profiles", "home_networks"),
                            data_dir=data_dir / name,
                            geoip=GeoIP(cfg.get_str("geoip", "country_database"),
                                        cfg.get_str("geoip", "asn_database")))
    handlers = ctx.module.handlers()
    events, cpu = 0, 0.0
    for channel, data in entries:
        handler = handlers.get(channel)
        if handler is None:
            continue
        batch = decode_entry(channel, "0-1", {"d": data}).events
        started = time.process_time()
        for event in batch:
            handler(event)
        cpu += time.process_time() - started
        events += len(batch)
    started = time.process_time()
    ctx.finish()
    cpu += time.process_time() - started
    unique: dict[str, Evidence] = {}
    for item in ctx.evidence:  # once per id, as the evidence handler stores it
        unique.setdefault(item.id, item)
    return Result(name, events, cpu, list(unique.values()))


def load_config(folder: Path) -> slips_config.Config:
    overrides: dict[str, dict[str, str]] = {}
    feed = folder / "feed.csv"
    if feed.is_file():
        overrides["threat_intelligence"] = {"local_feeds": f"feeds, {feed}"}
    return slips_config.load(REPO / "etc" / "slips.conf", overrides)


def report(results: list[Result], reading: float) -> None:
    print(f"reading, profiling and encoding: {reading:.2f} CPU s")
    print("| module | events | CPU s | µs/event | evidence |")
    print("|---|---:|---:|---:|---:|")
    for r in sorted(results, key=lambda r: -r.cpu):
        per = r.cpu / r.events * 1e6 if r.events else 0.0
        print(f"| {r.name} | {r.events:,} | {r.cpu:.2f} | {per:.2f} | {len(r.evidence):,} |",
              flush=True)
    total = sum(r.cpu for r in results)
    print(f"| all | | {total:.2f} | | {sum(len(r.evidence) for r in results):,} |")


def dump(results: list[Result], path: Path) -> None:
    lines = sorted(json.dumps(e.to_dict(), sort_keys=True) for r in results for e in r.evidence)
    path.write_text("".join(line + "\n" for line in lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--modules", default="", help="comma-separated; default: enabled ones")
    parser.add_argument("--limit", type=int, default=0, help="input records to read (0: all)")
    parser.add_argument("--dump", type=Path, help="write every module's evidence here")
    args = parser.parse_args(argv)
    cfg = load_config(args.folder)
    names = ([n.strip() for n in args.modules.split(",") if n.strip()] if args.modules
             else cfg.get_list("modules", "enabled"))
    refs = discover(module_directories(cfg), entry_points=False)
    started = time.process_time()
    entries = read_entries(args.folder, cfg, args.limit)
    reading = time.process_time() - started
    # The entries are bytes; what the reader left behind must not be walked by the
    # collections the modules trigger.
    gc.collect()
    gc.freeze()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-modules-") as data_dir:
        for name in names:
            results.append(run_module(name, refs[name], cfg, entries, Path(data_dir)))
            gc.collect()
    report(results, reading)
    if args.dump:
        dump(results, args.dump)
    return 0


if __name__ == "__main__":
    sys.exit(main())
