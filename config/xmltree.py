"""The generic part of reading ActiveMQ XML: where each setting came from, and strict attributes.

Shared by config/xml.py (broker, stores, connectors) and config/xmlsecurity.py (the plugins).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from config.errors import ConfigError

Path_ = tuple[str, ...]
Convert = Callable[[str], Any]
Table = dict[str, tuple[Path_, Convert]]  # attribute -> (setting path, converter)


@dataclass
class XmlMapping:
    """The settings found, as a nested dict, and where each came from (`kahaDB@checkpointInterval`)."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[Path_, str] = field(default_factory=dict)

    def set(self, path: Path_, value: Any, origin: str, replace: bool = False) -> None:
        if path in self.origins and not replace:
            raise ConfigError(origin, f"sets the same setting as {self.origins[path]}; use only one of them")
        node = self.values
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        self.origins[path] = origin



def convert(key: str, text: str, convert: Convert) -> Any:
    try:
        return convert(text)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


def attributes(element: Element, label: str, allowed: set[str] | frozenset[str]) -> dict[str, str]:
    """Attributes by local name; unknown ones and Spring placeholders are errors."""
    attrs: dict[str, str] = {}
    for raw_name, value in element.attrib.items():
        name = local(raw_name)
        if name not in allowed:
            honoured = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(f"{label}@{name}", f"unknown attribute (honoured here: {honoured})")
        if "${" in value:
            problem = f"Spring placeholder in {value!r} is not expanded by BatonMQ; write the value"
            raise ConfigError(f"{label}@{name}", problem)
        attrs[name] = value
    return attrs


def children(element: Element) -> list[Element]:
    return [child for child in element if isinstance(child.tag, str)]


def local(tag: str) -> str:
    return tag.rpartition("}")[2]
