"""Configuration: layering, validation messages, the shipped file, --check-config."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from slipsd.config import SCHEMA, ConfigError, alert_threshold, load
from slipsd.module_loader import validate_modules

from conftest import REPO, TEST_MODULES


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_layers_override_in_order(tmp_path: Path) -> None:
    main = write(tmp_path / "slips.conf", "[profiles]\ntime_window_width = 100\n"
                 "[bus]\nbatch_size = 10\n")
    write(tmp_path / "slips.local", "[profiles]\ntime_window_width = 200\n")
    write(tmp_path / "slips.d" / "10-a.conf", "[profiles]\ntime_window_width = 300\n")
    write(tmp_path / "slips.d" / "20-b.conf", "[alerts]\nthreshold = 2\n")
    write(tmp_path / "slips.d" / "ignored.txt", "[profiles]\ntime_window_width = 999\n")
    config = load(main)
    assert config.get_float("profiles", "time_window_width") == 300
    assert config.get_int("bus", "batch_size") == 10
    assert config.get_float("alerts", "threshold") == 2
    assert config.origin("profiles", "time_window_width").endswith("10-a.conf")
    assert config.origin("bus", "max_lag") == "default"
    assert [Path(f).name for f in config.files] == ["slips.conf", "slips.local",
                                                     "10-a.conf", "20-b.conf"]


def test_every_problem_names_file_section_and_key(tmp_path: Path) -> None:
    main = write(tmp_path / "slips.conf", "[profiles]\ntime_window_width = soon\n")
    drop_in = write(tmp_path / "slips.d" / "50-x.conf",
                    "[bus]\nbatch_sise = 10\nmax_lag = -3\n[alerts]\nscale_with_window = maybe\n")
    with pytest.raises(ConfigError) as info:
        load(main)
    problems = info.value.problems
    assert len(problems) == 4
    text = "\n".join(problems)
    assert f"{main}: [profiles] time_window_width:" in text
    assert f"{drop_in}: [bus] batch_sise: unknown key" in text
    assert f"{drop_in}: [bus] max_lag: must be greater than 0" in text
    assert f"{drop_in}: [alerts] scale_with_window: expected yes or no" in text


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    main = write(tmp_path / "slips.conf", "[profiles]\n")
    local = write(tmp_path / "slips.local", "no section header here\n")
    with pytest.raises(ConfigError, match=str(local)):
        load(main)


def test_missing_main_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.conf")


def test_shipped_conf_lists_every_key_with_its_default() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "etc" / "slips.conf")
    for section, keys in SCHEMA.items():
        assert set(parser[section]) == set(keys), section
        for key, spec in keys.items():
            assert parser[section][key] == spec.default, f"[{section}] {key}"


def test_docs_list_every_key() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    for section, keys in SCHEMA.items():
        assert f"[{section}]" in doc
        for key in keys:
            assert f"`{key}`" in doc, f"[{section}] {key} is not documented"


def test_threshold_scales_with_window_width(tmp_path: Path) -> None:
    main = write(tmp_path / "slips.conf", "[profiles]\ntime_window_width = 1800\n"
                 "[alerts]\nthreshold = 2\n")
    assert alert_threshold(load(main)) == pytest.approx(1.0)
    write(tmp_path / "slips.local", "[alerts]\nscale_with_window = no\n")
    assert alert_threshold(load(main)) == pytest.approx(2.0)


def test_module_sections_are_validated(tmp_path: Path) -> None:
    main = write(tmp_path / "slips.conf",
                 f"[modules]\ndirectories = builtin, {TEST_MODULES}\n"
                 "[long_connection]\nthreshold = long\n[long_conection]\nthreshold = 5\n")
    with pytest.raises(ConfigError) as info:
        validate_modules(load(main))
    text = "\n".join(info.value.problems)
    assert "[long_connection] threshold: expected float, got 'long'" in text
    assert "[long_conection]: unknown section" in text


def test_unknown_enabled_module(tmp_path: Path) -> None:
    main = write(tmp_path / "slips.conf", "[modules]\nenabled = long_connection, nosuch\n")
    with pytest.raises(ConfigError, match="unknown module 'nosuch'"):
        validate_modules(load(main))


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slipsd", "--config", str(path),
                           "--check-config"], capture_output=True, text=True, timeout=60)


def test_check_config_cli(tmp_path: Path) -> None:
    good = check_config(REPO / "etc" / "slips.conf")
    assert good.returncode == 0, good.stderr
    assert "OK" in good.stdout and "long_connection" in good.stdout
    bad = write(tmp_path / "slips.conf", "[bus]\nmax_lag = lots\n")
    result = check_config(bad)
    assert result.returncode == 1
    assert f"{bad}: [bus] max_lag: invalid literal" in result.stderr
    assert "Traceback" not in result.stderr


def test_daemon_refuses_a_bad_config_without_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path / "slips.conf", "[profiles]\nanalysis_direction = sideways\n")
    result = subprocess.run([sys.executable, "-m", "slipsd", "--config", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert "[profiles] analysis_direction: must be one of out, all" in result.stderr
    assert "Traceback" not in result.stderr


def test_shipped_conf_lists_every_module_option_with_its_default() -> None:
    from slipsd.module_loader import ModuleRef, load_class

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "etc" / "slips.conf")
    config = load(REPO / "etc" / "slips.conf")
    for name in config.get_list("modules", "enabled"):
        cls = load_class(ModuleRef(name, path=str(REPO / "modules" / name)))
        assert set(parser[name]) == set(cls.options), name
        parsed = cls.parse_options(dict(parser[name]))
        assert parsed == {k: o.default for k, o in cls.options.items()}, name


def test_interface_names_become_folder_names(tmp_path: Path) -> None:
    main = write(tmp_path / "slips.conf", "[sensors]\ninterfaces = eth0, ../etc\n")
    with pytest.raises(ConfigError, match=r"\[sensors\] interfaces: not an interface name"):
        load(main)
