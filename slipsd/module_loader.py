"""Finding modules: folders ``<dir>/<name>/<name>.py`` and the ``slips.modules`` entry points.

Module folders are imported by path under a private package name, so the
``modules`` folder is never a top-level package and two module directories
can't shadow each other's imports.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipsd.config import Config, ConfigError
from slipsd.events import TRAFFIC_CHANNELS
from slipsd.module import Module

ENTRY_POINT_GROUP = "slips.modules"
BUILTIN = "builtin"


@dataclass(frozen=True)
class ModuleRef:
    """Where a module comes from: a folder, or an entry point ``pkg.mod:Class``."""

    name: str
    path: str = ""
    entry_point: str = ""

    @property
    def origin(self) -> str:
        return self.path or f"entry point {self.entry_point}"


def builtin_directory() -> Path:
    installed = Path("/usr/share/slips/modules")
    checkout = Path(__file__).resolve().parents[1] / "modules"
    return checkout if checkout.is_dir() else installed


def module_directories(config: Config) -> list[Path]:
    return [
        builtin_directory() if entry == BUILTIN else Path(entry)
        for entry in config.get_list("modules", "directories")
    ]


def discover(directories: list[Path], entry_points: bool = True) -> dict[str, ModuleRef]:
    """Every module available, by name; earlier directories win over later ones."""
    found: dict[str, ModuleRef] = {}
    for directory in directories:
        if not directory.is_dir():
            continue
        for folder in sorted(directory.iterdir()):
            if (folder / f"{folder.name}.py").is_file() and folder.name not in found:
                found[folder.name] = ModuleRef(folder.name, path=str(folder))
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            found.setdefault(ep.name, ModuleRef(ep.name, entry_point=ep.value))
    return found


def load_class(ref: ModuleRef) -> type[Module]:
    """Import a module's code and return its one ``Module`` subclass."""
    if ref.entry_point:
        target, _, attr = ref.entry_point.partition(":")
        obj: Any = importlib.import_module(target)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        candidates = [obj] if inspect.isclass(obj) else _module_classes(obj)
    else:
        folder = Path(ref.path)
        package = f"slips_modules_{abs(hash(folder.resolve())):x}_{ref.name}"
        if package not in sys.modules:
            spec = importlib.util.spec_from_file_location(
                package, folder / "__init__.py", submodule_search_locations=[str(folder)]
            )
            if spec is None or spec.loader is None:
                raise ImportError(f"{folder}: not a module folder (no __init__.py)")
            pkg = importlib.util.module_from_spec(spec)
            sys.modules[package] = pkg
            spec.loader.exec_module(pkg)
        candidates = _module_classes(importlib.import_module(f"{package}.{ref.name}"))
    classes = [c for c in candidates if issubclass(c, Module) and c is not Module]
    if len(classes) != 1:
        raise ImportError(
            f"{ref.origin}: expected exactly one Module subclass, found {len(classes)}"
        )
    cls = classes[0]
    unknown = [ch for ch in cls.subscriptions() if ch not in TRAFFIC_CHANNELS]
    if unknown:
        raise ImportError(f"{ref.origin}: module {ref.name!r} reads unknown channel(s) "
                          f"{', '.join(unknown)} (known: {', '.join(TRAFFIC_CHANNELS)})")
    if cls.name != ref.name:
        raise ImportError(f"{ref.origin}: class {cls.__name__} is named {cls.name!r}, "
                          f"expected {ref.name!r} (the folder or entry point name)")
    return cls


def _module_classes(mod: Any) -> list[type[Module]]:
    return [
        obj for obj in vars(mod).values()
        if inspect.isclass(obj) and issubclass(obj, Module) and obj is not Module
        and obj.__module__ == mod.__name__
    ]


def validate_modules(config: Config) -> dict[str, ModuleRef]:
    """Check enabled modules exist, load, and accept their config sections.

    Returns the enabled modules. Sections naming no known module are errors,
    so a misspelt module section is not silently ignored.
    """
    available = discover(module_directories(config), config.get_bool("modules", "entry_points"))
    problems: list[str] = []
    enabled: dict[str, ModuleRef] = {}
    for name in config.get_list("modules", "enabled"):
        ref = available.get(name)
        if ref is None:
            known = ", ".join(sorted(available)) or "none"
            problems.append(f"{config.origin('modules', 'enabled')}: [modules] enabled: "
                            f"unknown module {name!r} (available: {known})")
            continue
        enabled[name] = ref
    for name in config.get_list("modules", "isolate"):
        if name not in available:
            problems.append(f"{config.origin('modules', 'isolate')}: [modules] isolate: "
                            f"unknown module {name!r}")
    for section, raw in config.module_sections.items():
        ref = available.get(section)
        if ref is None:
            first_key = next(iter(raw), "")
            problems.append(f"{config.origin(section, first_key)}: [{section}]: unknown "
                            "section (neither a slips section nor a module)")
            continue
        try:
            cls = load_class(ref)
            sources = {config.origin(section, k) for k in raw}
            cls.parse_options(raw, ", ".join(sorted(sources)))
        except ConfigError as exc:
            problems.extend(exc.problems)
        except Exception as exc:
            problems.append(f"{ref.origin}: module {section!r} failed to load: {exc}")
    for name, ref in enabled.items():
        if name in config.module_sections:
            continue
        try:
            load_class(ref)
        except Exception as exc:
            problems.append(f"{ref.origin}: module {name!r} failed to load: {exc}")
    if problems:
        raise ConfigError(problems)
    return enabled


def unavailable_reason(ref: ModuleRef, raw_options: Mapping[str, str]) -> str | None:
    """Why a (valid) module cannot run now, per its own ``unavailable()``; None if it can."""
    try:
        cls = load_class(ref)
        return cls.unavailable(cls.parse_options(raw_options, f"[{ref.name}]"))
    except Exception as exc:  # the module's own check must not take slipsd down
        return f"its availability check failed: {type(exc).__name__}: {exc}"
