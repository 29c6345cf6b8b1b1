"""The generic part of reading ActiveMQ XML: settings with their origins, warnings, strict attributes.

An attribute is either honoured (it maps to a setting), known and harmless here (ignored with one
WARNING naming it), allowed only with its harmless value, or an error: unknown names are errors
because a misspelt attribute must not silently leave a default in force. Shared by config/xml.py
(broker, stores), config/xmlconnectors.py, config/xmlpolicy.py and config/xmlsecurity.py (the plugins).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from config.errors import ConfigError
from config.placeholders import expand, first_unresolved, unresolved_problem

Path_ = tuple[str, ...]
Convert = Callable[[str], Any]
Table = dict[str, tuple[Path_, Convert]]  # attribute -> (setting path, converter)


@dataclass(frozen=True)
class Known:
    """What an element may carry besides the honoured attributes.

    `ignored`: attribute -> why it changes nothing here (logged once). `only`: attribute -> (the
    one value that is harmless, usually ActiveMQ's default, and why any other is refused).
    """

    ignored: Mapping[str, str] = field(default_factory=dict)
    only: Mapping[str, tuple[str, str]] = field(default_factory=dict)


NOTHING = Known()


@dataclass
class XmlMapping:
    """The settings found, as a nested dict, and where each came from (`kahaDB@checkpointInterval`).

    `properties` are the placeholder values (`activemq.data` -> path) used while reading.
    `warnings` are the WARNING lines for what was ignored. `deferred` holds settings whose value
    names an undefined placeholder: an error only if no higher layer (flag, environment) sets them.
    """

    properties: Mapping[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[Path_, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    deferred: dict[Path_, ConfigError] = field(default_factory=dict)

    def set(self, path: Path_, value: Any, origin: str, replace: bool = False) -> None:
        if path in self.origins and not replace:
            raise ConfigError(origin, f"sets the same setting as {self.origins[path]}; use only one of them")
        node = self.values
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        self.origins[path] = origin
        self.deferred.pop(path, None)

    def put(self, path: Path_, text: str, origin: str, convert_: Convert = str,
            replace: bool = False) -> None:
        """Convert and set an attribute's text, or defer it if it names an undefined placeholder."""
        name = first_unresolved(text)
        if name is None:
            self.set(path, convert(origin, text, convert_), origin, replace)
            return
        if path in self.origins and not replace:
            raise ConfigError(origin, f"sets the same setting as {self.origins[path]}; use only one of them")
        self._unset(path)
        self.deferred[path] = ConfigError(origin, unresolved_problem(name, text))

    def agree(self, path: Path_, value: Any, origin: str) -> None:
        """Set a broker-wide value that several elements may each give, as long as they agree."""
        if path in self.origins and self._get(path) != value:
            first = self.origins[path]
            raise ConfigError(origin, f"{value!r} differs from {self._get(path)!r} given by {first}; BatonMQ "
                                      f"has one {'.'.join(path)} for the whole broker: give one value")
        if path not in self.origins:
            self.set(path, value, origin)

    def append(self, path: Path_, item: Any) -> None:
        """Add one item to a list setting (a [[policy]]). No origin is kept: a list's items come
        from several elements, and their errors name the item (policy[2].queue)."""
        node = self.values
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node.setdefault(path[-1], []).append(item)

    def warn(self, line: str) -> None:
        if line not in self.warnings:
            self.warnings.append(line)

    def ignore(self, what: str, why: str) -> None:
        self.warn(f"ignored {what}: {why}")

    def _get(self, path: Path_) -> Any:
        node: Any = self.values
        for part in path:
            node = node[part]
        return node

    def _unset(self, path: Path_) -> None:
        node: Any = self.values
        for part in path[:-1]:
            node = node.get(part, {})
        node.pop(path[-1], None)
        self.origins.pop(path, None)


def convert(key: str, text: str, convert_: Convert) -> Any:
    try:
        return convert_(text)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


def attributes(
    element: Element,
    label: str,
    allowed: set[str] | frozenset[str],
    out: XmlMapping | None = None,
    known: Known = NOTHING,
) -> dict[str, str]:
    """The honoured attributes by local name, placeholders expanded from `out.properties`.

    Known harmless ones are reported on `out` and left out; an honoured value that names an undefined
    placeholder is returned as written (XmlMapping.put defers it). Without `out` any placeholder is
    an error, as is every attribute outside `allowed`.
    """
    attrs: dict[str, str] = {}
    for raw_name, raw_value in element.attrib.items():
        name = _local_attribute(raw_name)
        if name is None:
            continue  # xsi:schemaLocation and the like: about the document, not the broker
        key = f"{label}@{name}"
        value = expand(raw_value, out.properties if out is not None else {})
        if name in allowed:
            if out is None and first_unresolved(value) is not None:
                raise ConfigError(key, unresolved_problem(str(first_unresolved(value)), raw_value))
            attrs[name] = value
        elif out is not None and name in known.ignored:
            out.ignore(key, known.ignored[name])
        elif out is not None and name in known.only:
            _check_only(key, value, *known.only[name])
        else:
            honoured = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(key, f"unknown attribute (honoured here: {honoured})")
    return attrs


def _check_only(key: str, value: str, harmless: str, why: str) -> None:
    if value.strip().lower() != harmless.lower():
        raise ConfigError(key, f"only {harmless!r} is accepted: {why}")


def _local_attribute(name: str) -> str | None:
    namespace, _, local_name = name.rpartition("}")
    return None if namespace.endswith("XMLSchema-instance") else local_name


def children(element: Element) -> list[Element]:
    return [child for child in element if isinstance(child.tag, str)]


def local(tag: str) -> str:
    return tag.rpartition("}")[2]
