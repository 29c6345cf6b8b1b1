"""Build one validated BrokerConfig from its sources: flags > `BATONMQ_*` environment > file > defaults.

Each source becomes a Layer (a nested dict plus where each value came from); layers are deep-merged
(tables merge key by key, lists and scalars replace) and the result is validated once by the model.
Every failure -- missing file, TOML/XML syntax, unknown key, out-of-range value -- is a ConfigError
naming the dotted setting and saying why in one line, so `batonmq start` can print it and exit 2
(design.md section 6) instead of showing a traceback.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from config.env import env_settings
from config.errors import ConfigError
from config.model import SCHEMES_CONTEXT, BrokerConfig
from config.placeholders import activemq_properties
from config.xml import parse_activemq_xml

log = logging.getLogger("batonmq.config")

# A configuration file is a few kilobytes; the bound keeps a wrong path (a log, a disk image) from
# being read into memory whole.
MAX_FILE_BYTES = 256 * 1024
# tomllib's time grows with the square of a dotted key's parts (measured: a single key of 100,000
# parts takes ~20 s). TOML keys and inline tables cannot span lines, so bounding the line
# bounds that cost; bounding nesting keeps the recursive merge and validation far from the stack limit.
MAX_TOML_LINE = 4096
MAX_DEPTH = 8

Path_ = tuple[str, ...]


@dataclass(frozen=True)
class Layer:
    """One source of settings: `values` mirror the model's nesting; `origins` name individual keys."""

    source: str
    values: Mapping[str, Any]
    origins: Mapping[Path_, str] = field(default_factory=dict)
    # What the source holds that BatonMQ ignores (one line each), logged once the whole config is valid.
    warnings: tuple[str, ...] = ()
    # Settings the source names with an undefined placeholder: an error unless a higher layer sets them.
    deferred: Mapping[Path_, ConfigError] = field(default_factory=dict)

    def describe(self, path: Path_) -> str:
        origin = self.origins.get(path)
        return f"{origin} in {self.source}" if origin else self.source


def build_config(
    file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    schemes: Collection[str] | None = None,
) -> BrokerConfig:
    """Merge the sources and validate. `environ=None` reads `os.environ`; pass `{}` to ignore it.

    In `overrides` (from command-line flags) a None leaf means "flag not given" and is dropped.
    `schemes` are the connector schemes a transport serves (transports.registry.SCHEMES); a
    connector with another is refused. None checks only the `scheme://HOST:PORT` syntax.
    """
    environ = os.environ if environ is None else environ
    layers: list[Layer] = []
    if file is not None:
        layers.append(load_file(Path(file), environ, schemes))
    layers.append(environment_layer(environ))
    if overrides:
        layers.append(Layer("command line", _drop_none(overrides)))
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.values)
    _check_deferred(layers)
    try:
        context = {SCHEMES_CONTEXT: schemes} if schemes is not None else None
        config = BrokerConfig.model_validate(merged, context=context)
    except ValidationError as exc:
        raise _translate(exc, layers) from None
    for layer in layers:
        for line in layer.warnings:
            log.warning("%s: %s", layer.source, line)
    return config


def _check_deferred(layers: list[Layer]) -> None:
    for index, layer in enumerate(layers):
        for path, error in layer.deferred.items():
            if not any(_holds(higher.values, path) for higher in layers[index + 1:]):
                raise ConfigError(error.key, f"{error.problem} [from {layer.source}]")


def _holds(values: Mapping[str, Any], path: Path_) -> bool:
    node: Any = values
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def load_file(path: Path, environ: Mapping[str, str] | None = None,
              schemes: Collection[str] | None = None) -> Layer:
    """Read a `.toml` or ActiveMQ-style `.xml` file into a Layer. An XML file's `${activemq.*}`
    placeholders come from `environ`'s ACTIVEMQ_* variables; `schemes` as for build_config."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".xml"):
        shown = suffix or "(none)"
        raise ConfigError("<file>", f"{path}: unsupported file type {shown!r}; use .toml or .xml")
    data = _read(path)
    if suffix == ".xml":
        properties = activemq_properties(os.environ if environ is None else environ)
        mapping = parse_activemq_xml(data, str(path), properties, schemes)
        return Layer(str(path), mapping.values, mapping.origins, tuple(mapping.warnings), mapping.deferred)
    return Layer(str(path), _parse_toml(data, path))


def environment_layer(environ: Mapping[str, str]) -> Layer:
    values: dict[str, Any] = {}
    origins: dict[Path_, str] = {}
    for path, (name, value) in env_settings(environ).items():
        values = deep_merge(values, _nest(path, value))
        origins[path] = name
    return Layer("environment", values, origins)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: tables merge recursively, anything else (lists included) in `over` replaces."""
    merged = {key: deep_merge({}, val) if isinstance(val, Mapping) else val for key, val in base.items()}
    for key, value in over.items():
        if isinstance(value, Mapping):
            below = merged.get(key)
            merged[key] = deep_merge(below if isinstance(below, Mapping) else {}, value)
        else:
            merged[key] = value
    return merged


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("<file>", f"no such file: {path}") from None
    except IsADirectoryError:
        raise ConfigError("<file>", f"is a directory, not a file: {path}") from None
    except PermissionError:
        raise ConfigError("<file>", f"permission denied: {path}") from None
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError("<file>", f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB, not a config file")
    return data


def _parse_toml(data: bytes, path: Path) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("<file>", f"{path}: not UTF-8 text (byte {exc.start})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_TOML_LINE:
            raise ConfigError("<file>", f"{path}: line {number} is longer than {MAX_TOML_LINE} characters")
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message already ends with "(at line L, column C)".
        raise ConfigError("<file>", f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError("<file>", f"{path}: arrays or tables nested too deeply") from None
    _check_depth(values, path)
    return values


def _check_depth(tree: Any, path: Path) -> None:
    """Iteratively, so that the check itself cannot overflow the stack."""
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(tree, ())]
    while pending:
        node, key = pending.pop()
        if len(key) > MAX_DEPTH:
            problem = f"nested more than {MAX_DEPTH} levels deep [from {path}]"
            raise ConfigError(_dotted(key[:MAX_DEPTH]), problem)
        if isinstance(node, dict):
            pending += [(value, key + (str(name),)) for name, value in node.items()]
        elif isinstance(node, list):
            pending += [(value, key + (index,)) for index, value in enumerate(node)]


def _nest(path: Path_, value: Any) -> dict[str, Any]:
    *parents, leaf = path
    tree: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        tree = {part: tree}
    return tree


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out[key] = _drop_none(value)
        elif value is not None:
            out[key] = value
    return out


# --- pydantic errors -> ConfigError(key, one line) ---------------------------------------------


def _translate(exc: ValidationError, layers: list[Layer]) -> ConfigError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    problem = _problem(first, loc)
    source = _source(loc, layers)
    if source:
        problem += f" [from {source}]"
    if len(errors) > 1:
        more = len(errors) - 1
        problem += f"; {more} more problem{'s' if more > 1 else ''} not shown"
    return ConfigError(_dotted(loc), problem)


def _dotted(loc: tuple[Any, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "<config>"


def _problem(error: Any, loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown setting" + _suggestion(loc)
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        choices = str(error.get("ctx", {}).get("expected", "")).replace("'", "").replace(" or ", ", ")
        text = f"must be one of {choices}"
    else:
        # pydantic says "Input should be greater than 0"; we say "must be greater than 0".
        text = str(error["msg"])
        head, sep, tail = text.partition(" should ")
        if sep and " " not in head.strip():
            text = "must " + tail
    return text + _got(error.get("input"))


def _got(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple) or value is None:
        return ""
    shown = repr(value)
    return f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"


def _source(loc: tuple[Any, ...], layers: list[Layer]) -> str | None:
    """Which layer supplied the value at `loc` (the highest one that contains it)."""
    for layer in reversed(layers):
        node: Any = layer.values
        path: list[str] = []
        found = True
        for part in loc:
            if not isinstance(node, Mapping):
                break  # the layer set a whole list or scalar above this point
            if part not in node:
                found = False
                break
            path.append(part)
            node = node[part]
        if found:
            return layer.describe(tuple(path))
    return None


def _suggestion(loc: tuple[Any, ...]) -> str:
    model: type[BaseModel] = BrokerConfig
    for part in loc[:-1]:
        info = model.model_fields.get(str(part))
        annotation = info.annotation if info is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""
