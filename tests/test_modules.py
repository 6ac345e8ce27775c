"""The module API through the test context (no Redis), the loader, and the alert rule."""

from __future__ import annotations

import pytest

from slipsd.config import ConfigError
from slipsd.evidence import Evidence, LiveWindows, alerts_for
from slipsd.module import Module
from slipsd.module_loader import ModuleRef, discover, load_class
from slipsd.testing import ModuleTestContext, make_flow

from conftest import REPO, TEST_MODULES


def builtin(name: str) -> type[Module]:
    return load_class(ModuleRef(name, path=str(REPO / "modules" / name)))


def test_long_connection_reports_only_long_unicast_flows() -> None:
    ctx = ModuleTestContext(builtin("long_connection"))
    assert ctx.feed("new_flow", make_flow(duration=1500.0)) == []
    found = ctx.feed("new_flow", make_flow(duration=3000.0, uid="CLONG"))
    assert [e.type for e in found] == ["LONG_CONNECTION"]
    item = found[0]
    assert item.uids == ("CLONG",) and item.attacker == "192.168.1.10"
    assert item.confidence == 1.0 and item.threat_level == "low"
    assert "50m00s" in item.description
    assert ctx.feed("new_flow", make_flow(duration=9000.0, daddr="224.0.0.251")) == []
    assert ctx.feed("new_flow", make_flow(duration=9000.0, daddr="255.255.255.255")) == []
    assert len(ctx.feed("new_flow", make_flow(duration=9000.0, daddr="10.0.1.255"))) == 1


def test_long_connection_threshold_is_configurable() -> None:
    ctx = ModuleTestContext(builtin("long_connection"), {"threshold": "60"})
    assert len(ctx.feed("new_flow", make_flow(duration=61.0))) == 1
    with pytest.raises(ConfigError, match=r"\[long_connection\] threshold"):
        ModuleTestContext(builtin("long_connection"), {"threshold": "a while"})
    with pytest.raises(ConfigError, match="unknown key"):
        ModuleTestContext(builtin("long_connection"), {"treshold": "60"})


def test_template_module_shows_the_whole_api() -> None:
    ctx = ModuleTestContext(builtin("template"), {"ports": "4444, 5555"})
    assert "tw_closed" in ctx.module.subscriptions()
    first = ctx.feed("new_flow", make_flow(dport=4444))
    again = ctx.feed("new_flow", make_flow(dport=4444))
    assert first[0].id == again[0].id  # same key: one evidence once stored
    assert ctx.feed("new_flow", make_flow(dport=80)) == []
    assert ctx.close_window("192.168.1.10", 0) == []
    assert ctx.finish() == []


def test_stateful_module_and_window_close() -> None:
    cls = load_class(ModuleRef("flow_counter", path=str(TEST_MODULES / "flow_counter")))
    ctx = ModuleTestContext(cls)
    for _ in range(10):
        ctx.feed("new_flow", make_flow())
    assert [e.type for e in ctx.evidence] == ["MANY_FLOWS"]
    assert ctx.close_window("192.168.1.10", 0)[0].description == "10 flows"


def test_feeding_an_unread_channel_is_an_error() -> None:
    ctx = ModuleTestContext(builtin("long_connection"))
    with pytest.raises(KeyError, match="does not read 'new_dns'"):
        ctx.feed("new_dns", {})


def test_discovery_finds_shipped_and_extra_folders() -> None:
    found = discover([REPO / "modules", TEST_MODULES], entry_points=False)
    assert {"long_connection", "template", "raiser", "flow_counter"} <= set(found)


def test_bad_module_folder_is_a_clear_import_error(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "broken"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "broken.py").write_text("x = 1\n")
    with pytest.raises(ImportError, match="expected exactly one Module subclass, found 0"):
        load_class(ModuleRef("broken", path=str(folder)))


def ev(ts: float, level: str = "low", conf: float = 1.0, profile: str = "10.0.0.1",
       tw: int = 0, ident: str = "") -> Evidence:
    return Evidence("LONG_CONNECTION", profile, "1.1.1.1", level, conf, "d", ts, tw, profile,
                    "m", (), ident or f"e{ts}-{profile}-{tw}")


def test_alert_when_the_window_score_reaches_the_threshold() -> None:
    items = [ev(float(i)) for i in range(11)]  # 11 x 0.2
    alerts = alerts_for(items, threshold=1.0)
    assert len(alerts) == 2
    assert [len(a.evidence) for a in alerts] == [5, 5]  # the 11th waits for more
    assert alerts[0].score == pytest.approx(1.0)


def test_alerts_do_not_depend_on_arrival_order() -> None:
    items = [ev(float(i), level="medium", conf=0.7, profile=f"10.0.0.{i % 2}") for i in range(9)]
    forward = alerts_for(items, 1.0)
    backward = alerts_for(list(reversed(items)), 1.0)
    assert [a.id for a in forward] == [a.id for a in backward]


def test_windows_and_profiles_are_scored_apart() -> None:
    items = [ev(1, "high", profile="a"), ev(2, "high", tw=1, profile="a"),
             ev(3, "high", profile="b")]
    assert alerts_for(items, 1.0) == []
    assert len(alerts_for([*items, ev(4, "low", profile="a")], 1.0)) == 1


def test_evidence_is_validated() -> None:
    with pytest.raises(ValueError, match="threat_level"):
        ev(1, level="severe")
    with pytest.raises(ValueError, match="confidence"):
        ev(1, conf=1.5)


def test_unknown_channel_is_refused_at_load(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path)) / "typo"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "typo.py").write_text(
        "from slipsd.module import Module\n"
        "class Typo(Module):\n    name = 'typo'\n    channels = ('new_flows',)\n"
        "    def on_new_flows(self, flow): pass\n")
    with pytest.raises(ImportError, match=r"unknown channel.*new_flows"):
        load_class(ModuleRef("typo", path=str(folder)))


def make_plugin_site(root: object) -> str:
    """A third-party package registering a module through the entry point group."""
    from pathlib import Path

    site = Path(str(root)) / "site"
    info = site / "slipsext-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: slipsext\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[slips.modules]\nextmod = slipsext_mod:ExtModule\n")
    (site / "slipsext_mod.py").write_text(
        "from slipsd.module import Module\n"
        "class ExtModule(Module):\n"
        "    name = 'extmod'\n    channels = ('new_flow',)\n"
        "    def on_new_flow(self, flow):\n"
        "        self.ctx.evidence('EXT_SEEN', attacker=flow['saddr'], victim=flow['daddr'],\n"
        "            threat_level='info', confidence=1.0, description='seen', ts=flow['ts'],\n"
        "            tw=flow['tw'], uids=(flow['uid'],))\n")
    return str(site)


def test_entry_point_modules_are_found(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_plugin_site(tmp_path)
    monkeypatch.syspath_prepend(site)
    found = discover([], entry_points=True)
    assert found["extmod"].entry_point == "slipsext_mod:ExtModule"
    cls = load_class(found["extmod"])
    assert [e.type for e in ModuleTestContext(cls).feed("new_flow", make_flow())] == ["EXT_SEEN"]
    assert "extmod" not in discover([], entry_points=False)


@pytest.mark.parametrize(("log_types", "expected"), [
    (["conn", "dns", "http", "ssl"], ["NON_HTTP_PORT_80"]),
    (["conn"], []),  # a flow-only input (Argus, nfdump): no http.log can exist
])
def test_new_input_tells_modules_what_cannot_exist(log_types: list[str],
                                                   expected: list[str]) -> None:
    ctx = ModuleTestContext(builtin("correlation"))
    ctx.feed("new_input", {"source": "x", "log_types": log_types})
    ctx.feed("new_flow", make_flow(daddr="203.0.113.80", dport=80, service="", sbytes=300,
                                   history="ShADadFf", ts=1_700_000_100.0))
    ctx.finish()
    assert [e.type for e in ctx.evidence if e.type.startswith("NON_")] == expected


def test_live_windows_forget_windows_far_behind() -> None:
    live = LiveWindows(1.0, keep=3)
    for tw in range(100):  # a long live run: four low pieces a window, one short of alerting
        for i in range(4):
            assert live.add(ev(tw * 10.0 + i, tw=tw, ident=f"e{tw}-{i}")) is None
    assert sorted({tw for _, tw in live.windows}) == [96, 97, 98, 99]
    # Within reach, a window still completes its alert...
    assert live.add(ev(999.0, tw=97, ident="late-97")) is not None
    # ...while one forgotten long ago starts afresh (the bound's price, documented).
    assert live.add(ev(999.0, tw=5, ident="late-5")) is None
