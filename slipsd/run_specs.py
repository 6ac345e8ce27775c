"""The jobs of a run's children, as the JSON each gets on its command line.

Everything a child needs is decided here, from the configuration of the
moment, so a child never reads configuration that may change during its run.
"""

from __future__ import annotations

import logging
from typing import Any

from slipsd.config import Config, alert_threshold
from slipsd.config_paths import state_dir, whitelist_file
from slipsd.module_loader import ModuleRef

log = logging.getLogger(__name__)


def evidence(config: Config, run_id: str, redis_url: str, output: str, modules: list[str],
             live: bool) -> dict[str, Any]:
    return {
        "run_id": run_id, "redis_url": redis_url, "output_dir": output,
        "threshold": alert_threshold(config), "modules": modules, "live": live,
        "whitelist": whitelist_file(config),
        "asn_database": config.get_str("geoip", "asn_database"),
    }


def module_host(config: Config, run_id: str, redis_url: str,
                modules: list[ModuleRef]) -> dict[str, Any]:
    return {
        "run_id": run_id, "redis_url": redis_url,
        "modules": [{
            "name": ref.name, "path": ref.path, "entry_point": ref.entry_point,
            "options": dict(config.module_sections.get(ref.name, {})),
            "data_dir": str(state_dir(config) / "modules" / ref.name),
        } for ref in modules],
        "home_networks": config.get_list("profiles", "home_networks"),
        "country_database": config.get_str("geoip", "country_database"),
        "asn_database": config.get_str("geoip", "asn_database"),
    }


def ingest(config: Config, run_id: str, redis_url: str, modules: list[str]) -> dict[str, Any]:
    """The parts of an ingest's job common to analyses and the live run."""
    return {
        "run_id": run_id, "redis_url": redis_url,
        "width": config.get_float("profiles", "time_window_width"),
        "direction": config.get_str("profiles", "analysis_direction"),
        "batch_size": config.get_int("bus", "batch_size"),
        "max_lag": config.get_int("bus", "max_lag"),
        "readers": [*modules, "evidence"],  # names that mark themselves ready
        "whitelist": whitelist_file(config),
        "asn_database": config.get_str("geoip", "asn_database"),
        # The live ingest forgets what retention deletes from Redis; analyses ignore it.
        "keep_windows": config.get_int("database", "keep_windows"),
    }


def capture_zeek(config: Config) -> str:
    """The zeek to read captures with, per [sensors] sensor; "" for the flowmeter."""
    from slipsd.sensors.zeek import SensorError, choose_sensor, find_zeek

    try:
        zeek = find_zeek(config.get_str("sensors", "zeek"))
        chosen = choose_sensor(config.get_str("sensors", "sensor"), zeek)
    except SensorError as exc:
        log.warning("%s; captures are read with the flowmeter", exc)
        return ""
    return (zeek or "") if chosen == "zeek" else ""
