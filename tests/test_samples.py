"""Every module's samples.json, one test per sample, through the real reader and profiler.

A sample is Zeek log lines (JSON records, as Zeek writes them) and the
evidence they must produce; ``"expect": []`` means they must produce none.
Each evidence type a module declares must be shown by at least one sample and
documented in docs/evidence.md, so a detection without samples fails here.

    [{"name": "what it shows",
      "config": {"threshold": "60"},          (optional: module options)
      "home_networks": ["192.168.1.0/24"],    (optional: [profiles] home_networks)
      "width": 3600,                          (optional: time window width)
      "geoip": {"asn": {"203.0.113.0/24": [64500, "Example Transit"]},
                "country": {"203.0.113.0/24": "NL"}},   (optional: ctx.geoip databases)
      "logs": {"conn": [{"ts": ..., "uid": ..., "id.orig_h": ..., ...}], "dns": [...]},
      "expect": [{"type": "LONG_CONNECTION", "attacker": "10.0.0.1", "victim": "1.2.3.4",
                  "count": 1}]}]              (attacker, victim, threat_level optional;
                                               count: exact, default 1)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from slipsd.events import TRAFFIC_CHANNELS
from slipsd.evidence import Evidence
from slipsd.geoip import GeoIP
from slipsd.inputs import ZeekInput
from slipsd.module import Module
from slipsd.module_loader import ModuleRef, load_class
from slipsd.profiler import Profiler
from slipsd.store import Consumer, Producer, RedisClient, Store
from slipsd.testing import ModuleTestContext

from conftest import REPO

MODULES = sorted(p for p in (REPO / "modules").iterdir() if (p / f"{p.name}.py").is_file())


def module_class(folder: Path) -> type[Module]:
    return load_class(ModuleRef(folder.name, path=str(folder)))


def samples_of(folder: Path) -> list[dict[str, Any]]:
    path = folder / "samples.json"
    return json.loads(path.read_text()) if path.is_file() else []


def sample_params() -> list[Any]:
    return [pytest.param(folder, sample, id=f"{folder.name}:{sample['name']}")
            for folder in MODULES for sample in samples_of(folder)]


def sample_geoip(spec: dict[str, Any], folder: Path) -> GeoIP | None:
    """Small MaxMind databases holding just what the sample's "geoip" says."""
    if not spec:
        return None
    folder.mkdir()
    paths = {"asn": "", "country": ""}
    for what, db_type in (("asn", "GeoLite2-ASN"), ("country", "GeoLite2-Country")):
        if what not in spec:
            continue
        writer = MMDBWriter(ip_version=6, database_type=db_type, ipv4_compatible=True)
        for net, value in spec[what].items():
            record = ({"autonomous_system_number": value[0],
                       "autonomous_system_organization": value[1]} if what == "asn"
                      else {"country": {"iso_code": value}})
            writer.insert_network(IPSet([net]), record)
        paths[what] = str(folder / f"{what}.mmdb")
        writer.to_db_file(paths[what])
    return GeoIP(country_database=paths["country"], asn_database=paths["asn"])


def run_sample(cls: type[Module], sample: dict[str, Any], client: RedisClient,
               folder: Path) -> list[Evidence]:
    folder.mkdir()
    for log_type, records in sample["logs"].items():
        with open(folder / f"{log_type}.log", "w") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
    errors: list[str] = []
    source = ZeekInput.from_path(str(folder))
    run = f"sample-{folder.name}"
    consumer = Consumer(client, run, "sample", list(cls.subscriptions()), count=1000)
    consumer.start()
    profiler = Profiler(Store(client, run), Producer(client, run, TRAFFIC_CHANNELS, max_lag=10**9),
                        width=float(sample.get("width", 3600)))
    for ts, channel, event in source.records(lambda e: errors.append(str(e))):
        profiler.feed(ts, channel, event)
    profiler.finish()
    assert errors == [], f"the sample's log lines must be valid: {errors}"
    ctx = ModuleTestContext(cls, sample.get("config"),
                            home_networks=sample.get("home_networks", ()),
                            geoip=sample_geoip(sample.get("geoip", {}), folder.parent / "geoip"))
    while not consumer.done:
        entries = consumer.read(200)
        for entry in entries:
            for event in entry.events:
                ctx.feed(entry.channel, event)
        consumer.ack(entries)
    ctx.finish()
    unique: dict[str, Evidence] = {}
    for item in ctx.evidence:  # stored once per id, as the evidence handler does
        unique.setdefault(item.id, item)
    return list(unique.values())


def matches(item: Evidence, want: dict[str, Any]) -> bool:
    return all(getattr(item, key) == value for key, value in want.items() if key != "count")


@pytest.mark.parametrize(("folder", "sample"), sample_params())
def test_sample(folder: Path, sample: dict[str, Any], redis_client: RedisClient,
                tmp_path: Path) -> None:
    found = run_sample(module_class(folder), sample, redis_client, tmp_path / "logs")
    shown = [f"{e.type} {e.attacker}->{e.victim}: {e.description}" for e in found]
    for want in sample["expect"]:
        hits = [e for e in found if matches(e, want)]
        assert len(hits) == want.get("count", 1), f"expected {want}, got:\n" + "\n".join(shown)
    unexpected = [e for e in found if not any(matches(e, w) for w in sample["expect"])]
    assert unexpected == [], "unexpected evidence:\n" + "\n".join(shown)


@pytest.mark.parametrize("folder", MODULES, ids=[f.name for f in MODULES])
def test_every_evidence_type_has_samples_and_docs(folder: Path) -> None:
    cls = module_class(folder)
    if not cls.evidence_types:  # an enrichment module (ip_info): it must report nothing
        assert all(not s["expect"] for s in samples_of(folder)), folder.name
        return
    shown = {want["type"] for sample in samples_of(folder) for want in sample["expect"]}
    missing = set(cls.evidence_types) - shown
    assert not missing, f"{folder.name}: no sample produces {sorted(missing)}"
    assert any(not s["expect"] for s in samples_of(folder)), \
        f"{folder.name}: add a sample that must produce no evidence"
    doc = (REPO / "docs" / "evidence.md").read_text()
    for type_ in cls.evidence_types:
        assert f"## {type_}" in doc, f"{type_} is not documented in docs/evidence.md"
        assert f"| [{type_}](#{type_.lower()}) | `{folder.name}` |" in doc, \
            f"{type_} is missing from the table of evidence types in docs/evidence.md"
