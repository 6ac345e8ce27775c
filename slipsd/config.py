"""Layered INI configuration: ``slips.conf`` < ``slips.local`` < ``slips.d/*.conf``.

Every key is declared in ``SCHEMA`` with its type and default, so a typo or a
bad value is reported with the file, section and key that caused it, and a bad
file never half-applies: ``load`` either returns a complete valid ``Config`` or
raises ``ConfigError`` listing every problem found.

How each value is parsed is in ``config_values.py``; the folders and files a
configuration points to (runtime, state, output, whitelist) are in ``config_paths.py``.
``parse_bool``, ``parse_list`` and ``whitelist_file`` are still imported from
here (by slipsd.module, the tests and bench/), hence their re-export.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipsd.config_paths import beside
from slipsd.config_paths import whitelist_file as whitelist_file
from slipsd.config_values import (
    Parser,
    choice,
    parse_interfaces,
    parse_networks,
    parse_non_negative_int,
    parse_processes,
    parse_redis_url,
    positive,
)
from slipsd.config_values import parse_bool as parse_bool
from slipsd.config_values import parse_list as parse_list


@dataclass(frozen=True)
class Key:
    parse: Parser
    default: str
    help: str


# The one list of configuration keys; docs/configuration.md and etc/slips.conf
# are checked against it by the test suite.
SCHEMA: dict[str, dict[str, Key]] = {
    "daemon": {
        "runtime_dir": Key(str, "", "socket and embedded Redis live here; empty: "
                           "$RUNTIME_DIRECTORY, else /run/slips"),
        "state_dir": Key(str, "", "empty: $STATE_DIRECTORY, else /var/lib/slips"),
        "log_level": Key(choice("debug", "info", "warning", "error"), "info", "daemon log level"),
        "socket_group": Key(str, "slips", "group of the control socket (mode 0660): its "
                            "members may use read-only commands"),
        "admin_group": Key(str, "", "members may also use changing commands (analyze, "
                           "reload, stop); root and slipsd's own user always may"),
    },
    "database": {
        "url": Key(parse_redis_url, "", "external Redis (redis://, unix://); empty: start an "
                   "embedded redis-server on a private Unix socket"),
        "redis_server": Key(str, "redis-server", "program started for the embedded Redis"),
        "start_timeout": Key(positive(float), "10", "seconds to wait for Redis to answer"),
        "keep_runs": Key(parse_non_negative_int, "10", "finished analyses whose profiles, evidence "
                         "and alerts stay in Redis; older ones are deleted (their output "
                         "folders stay)"),
        "keep_windows": Key(positive(int), "24", "time windows of the live run kept in "
                            "Redis (with its profiles, evidence and alerts); older ones are "
                            "deleted (the output files keep them)"),
    },
    "sensors": {
        "interfaces": Key(parse_interfaces, "", "interfaces to capture on live; empty: no live "
                          "capture, analyses only"),
        "sensor": Key(choice("auto", "zeek", "flowmeter"), "auto", "auto: zeek when found, "
                      "else the flowmeter"),
        "zeek": Key(str, "", "zeek program; empty: PATH, then /opt/zeek/bin/zeek"),
        "bpf_filter": Key(str, "", "capture filter (BPF syntax) for live sensors"),
        "tcp_inactivity_timeout": Key(positive(float), "3600", "seconds before zeek "
                                      "considers an idle TCP connection over"),
    },
    "output": {
        "directory": Key(str, "", "one folder per run is created here; empty: "
                         "<state_dir>/output"),
    },
    "profiles": {
        "analysis_direction": Key(choice("out", "all"), "out", "out: profile sources only; "
                                  "all: destinations get profiles too"),
        "time_window_width": Key(positive(float), "3600", "seconds per time window"),
        "home_networks": Key(parse_networks, "", "local networks (CIDRs); empty: guessed"),
    },
    "modules": {
        "directories": Key(parse_list, "builtin", "folders holding module folders; 'builtin' is "
                           "the modules shipped with slips"),
        "enabled": Key(parse_list, "long_connection, flows, scans, arp, tunnels, correlation, "
                       "logins, ip_info, dns, tls, http, threat_intelligence, beaconing",
                       "modules to run"),
        "entry_points": Key(parse_bool, "yes", "also load modules from the 'slips.modules' "
                            "entry point group"),
        "processes": Key(parse_processes, "auto", "processes the shipped modules share, each "
                         "decoding the traffic once for all its modules; auto is one per CPU, "
                         "0 one per module"),
        "isolate": Key(parse_list, "", "shipped modules that get a process of their own "
                       "(modules from other folders and entry points always do)"),
    },
    "alerts": {
        "threshold": Key(positive(float), "1.0", "sum of threat level x confidence in one "
                         "profile and window that raises an alert, for a 3600 s window"),
        "scale_with_window": Key(parse_bool, "yes", "scale the threshold linearly with "
                                 "time_window_width"),
    },
    "bus": {
        "batch_size": Key(positive(int), "500", "events per stream entry"),
        "max_lag": Key(positive(int), "200", "entries a consumer group may fall behind "
                       "before producers wait"),
    },
    "geoip": {
        "country_database": Key(str, "/var/lib/GeoIP/GeoLite2-Country.mmdb", "MaxMind .mmdb "
                                "giving an IP's country; a missing file disables the lookup"),
        "asn_database": Key(str, "/var/lib/GeoIP/GeoLite2-ASN.mmdb", "MaxMind .mmdb giving an "
                            "IP's autonomous system; a missing file disables the lookup"),
    },
    "whitelist": {
        "file": Key(str, "", "whitelist file; empty: whitelist.conf beside slips.conf, "
                    "else none"),
    },
    "supervision": {
        "backoff_initial": Key(positive(float), "0.5", "first restart delay, seconds"),
        "backoff_max": Key(positive(float), "30", "longest restart delay, seconds"),
        "start_seconds": Key(positive(float), "2", "a child that dies sooner counts as a "
                             "quick crash"),
        "fatal_after": Key(positive(int), "5", "quick crashes in a row before a child is "
                           "marked fatal"),
        "stop_timeout": Key(positive(float), "10", "seconds between SIGTERM and SIGKILL"),
    },
}


class ConfigError(Exception):
    """One or more configuration problems, each naming file, section and key."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Config:
    """A complete, validated configuration.

    Sections not in ``SCHEMA`` are module sections: kept as raw strings here
    and validated against each module's declared options by the module loader.
    """

    values: Mapping[str, Mapping[str, Any]]
    origins: Mapping[tuple[str, str], str] = field(default_factory=dict)
    module_sections: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    def get_str(self, section: str, key: str) -> str:
        return str(self.values[section][key])

    def get_int(self, section: str, key: str) -> int:
        return int(self.values[section][key])

    def get_float(self, section: str, key: str) -> float:
        return float(self.values[section][key])

    def get_bool(self, section: str, key: str) -> bool:
        return bool(self.values[section][key])

    def get_list(self, section: str, key: str) -> list[str]:
        return list(self.values[section][key])

    def origin(self, section: str, key: str) -> str:
        return self.origins.get((section, key), "default")

    def flat(self) -> dict[str, Any]:
        """``section.key`` -> value, for diffs between two configurations."""
        out = {f"{s}.{k}": v for s, keys in self.values.items() for k, v in keys.items()}
        for name, keys in self.module_sections.items():
            out.update({f"{name}.{k}": v for k, v in keys.items()})
        return out


def layer_files(main: Path) -> list[Path]:
    """The files read, lowest precedence first; missing overrides are skipped."""
    files = [main]
    local = main.with_suffix(".local")
    if local.is_file():
        files.append(local)
    drop_in = main.parent / (main.stem + ".d")
    if drop_in.is_dir():
        files.extend(sorted(p for p in drop_in.glob("*.conf") if p.is_file()))
    return files


def load(main: Path, overrides: Mapping[str, Mapping[str, str]] | None = None) -> Config:
    """Read and validate ``main`` and its overrides; ``overrides`` win over all files."""
    if not main.is_file():
        raise ConfigError([f"{main}: configuration file not found"])
    raw: dict[str, dict[str, tuple[str, str]]] = {}
    problems: list[str] = []
    files = layer_files(main)
    for path in files:
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle, source=str(path))
        except (configparser.Error, UnicodeDecodeError, OSError) as exc:
            problems.append(f"{path}: {_one_line(exc)}")
            continue
        for section in parser.sections():
            for key, value in parser.items(section, raw=True):
                raw.setdefault(section, {})[key] = (value, str(path))
    for section, keys in (overrides or {}).items():
        for key, value in keys.items():
            raw.setdefault(section, {})[key] = (value, "command line")

    values: dict[str, dict[str, Any]] = {}
    origins: dict[tuple[str, str], str] = {}
    for section, specs in SCHEMA.items():
        values[section] = {}
        given = raw.get(section, {})
        for key, spec in specs.items():
            text, origin = given.get(key, (spec.default, "default"))
            try:
                values[section][key] = spec.parse(text)
            except ValueError as exc:
                problems.append(f"{origin}: [{section}] {key}: {exc}")
            origins[(section, key)] = origin
        for key in given.keys() - specs.keys():
            known = ", ".join(sorted(specs))
            problems.append(
                f"{given[key][1]}: [{section}] {key}: unknown key (known: {known})"
            )
    module_sections = {
        section: {key: text for key, (text, _) in given_keys.items()}
        for section, given_keys in raw.items()
        if section not in SCHEMA
    }
    for section, given_keys in raw.items():
        if section not in SCHEMA:
            for key, (_, origin) in given_keys.items():
                origins[(section, key)] = origin
    problems += _missing_files(main, values, origins)
    if problems:
        raise ConfigError(problems)
    return Config(values, origins, module_sections, tuple(str(p) for p in files))


def _missing_files(main: Path, values: Mapping[str, Mapping[str, Any]],
                   origins: Mapping[tuple[str, str], str]) -> list[str]:
    """Files the configuration names that must exist (defaults beside slips.conf need not)."""
    configured = str(values.get("whitelist", {}).get("file") or "")
    path = beside(main, configured)
    if configured and not path.is_file():
        why = "not a regular file" if path.exists() else "no such file"
        return [f"{origins[('whitelist', 'file')]}: [whitelist] file: {path}: {why}"]
    return []


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def default_config_path() -> Path:
    """$SLIPS_CONFIG, then systemd's configuration directory, then /etc, then the checkout."""
    if env := os.environ.get("SLIPS_CONFIG"):
        return Path(env)
    if conf_dir := os.environ.get("CONFIGURATION_DIRECTORY"):
        return Path(conf_dir.split(":")[0]) / "slips.conf"
    system = Path("/etc/slips/slips.conf")
    if system.is_file():
        return system
    return Path(__file__).resolve().parents[1] / "etc" / "slips.conf"


def alert_threshold(config: Config) -> float:
    threshold = config.get_float("alerts", "threshold")
    if config.get_bool("alerts", "scale_with_window"):
        threshold *= config.get_float("profiles", "time_window_width") / 3600.0
    return threshold
