"""`BATONMQ_*` environment variables as a nested override dict (the layer between file and flags).

Named shortcuts (`BATONMQ_DATA`, `BATONMQ_STORE`, ...) mirror the command-line flags; any other
setting is reachable as `BATONMQ_<SECTION>__<FIELD>` (for example `BATONMQ_LIMITS__MAX_FRAME_SIZE`).
Values stay strings: pydantic coerces them, so the error for `BATONMQ_METRICS_PORT=abc` names the
setting and the variable together. A misspelt `BATONMQ_*` name is an error, never silently ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from config.errors import ConfigError
from config.model import BrokerConfig

PREFIX = "BATONMQ_"

# Read by the command line to find the file; not a setting.
NOT_SETTINGS = frozenset({"BATONMQ_CONFIG"})

SHORTCUTS: dict[str, tuple[str, ...]] = {
    "BATONMQ_NAME": ("name",),
    "BATONMQ_DATA": ("data_dir",),
    "BATONMQ_STORE": ("store", "type"),
    "BATONMQ_STORE_USAGE_LIMIT": ("store", "usage_limit"),
    "BATONMQ_STORE_USAGE_TIMEOUT": ("store", "usage_timeout"),
    "BATONMQ_CONNECTORS": ("connectors",),
    "BATONMQ_METRICS_PORT": ("metrics_port",),
    "BATONMQ_METRICS_HOST": ("metrics_host",),
    "BATONMQ_METRICS_DESTINATION_NAMES": ("metrics_destination_names",),
    "BATONMQ_ADMIN_PORT": ("admin", "port"),
    "BATONMQ_ADMIN_HOST": ("admin", "host"),
    "BATONMQ_TLS_CERT": ("tls", "cert"),
    "BATONMQ_TLS_KEY": ("tls", "key"),
    "BATONMQ_TLS_CA": ("tls", "ca"),
    "BATONMQ_TLS_CLIENT_AUTH": ("tls", "client_auth"),
    "BATONMQ_LOCK_ACQUIRE_INTERVAL": ("lock", "acquire_interval"),
    "BATONMQ_LOCK_KEEPALIVE_PERIOD": ("lock", "keepalive_period"),
    "BATONMQ_LOCK_TIMEOUT": ("lock", "lock_timeout"),
}


def env_settings(environ: Mapping[str, str]) -> dict[tuple[str, ...], tuple[str, Any]]:
    """Each `BATONMQ_*` setting as path -> (variable name, value); raises ConfigError on unknown names."""
    found: dict[tuple[str, ...], tuple[str, Any]] = {}
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in NOT_SETTINGS:
            continue
        path = SHORTCUTS.get(name) or _nested_path(name)
        if path in found:
            raise ConfigError(name, f"sets the same setting as {found[path][0]}; use only one of them")
        found[path] = (name, _value(path, environ[name]))
    return found


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The `BATONMQ_*` settings as a nested dict, e.g. {"store": {"type": "leveldb"}}."""
    tree: dict[str, Any] = {}
    for path, (_, value) in env_settings(environ).items():
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _value(path: tuple[str, ...], raw: str) -> Any:
    if path == ("connectors",):
        # A comma-separated list; empty items (a trailing comma) are dropped, an empty list is
        # left for the model to reject ("at least 1 item").
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _nested_path(name: str) -> tuple[str, str]:
    section, sep, field = name[len(PREFIX) :].lower().partition("__")
    model = _section_model(section)
    if not sep or model is None or field not in model.model_fields:
        raise ConfigError(name, f"unknown environment variable{_suggestion(name)}")
    return section, field


def _section_model(section: str) -> type[BaseModel] | None:
    info = BrokerConfig.model_fields.get(section)
    annotation = info.annotation if info is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _known_names() -> list[str]:
    names = list(SHORTCUTS)
    for section in BrokerConfig.model_fields:
        model = _section_model(section)
        if model is not None:
            names += [f"{PREFIX}{section.upper()}__{field.upper()}" for field in model.model_fields]
    return names


def _suggestion(name: str) -> str:
    close = difflib.get_close_matches(name, _known_names(), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""
