"""ActiveMQ destination wildcards: names are `.`-separated elements; in a pattern `*` matches any one
element and a last element `>` matches whatever follows, nothing included (`FOO.>` matches `FOO`,
`FOO.BAR` and `FOO.BAR.BAZ`, as ActiveMQ's DestinationMap does; `>` alone matches every name).

Only patterns (configuration) have wildcards: BatonMQ routes by exact name, so a `*` or `>` in a
destination a client names is an ordinary character there and is matched literally by a pattern's
literal element, or by a wildcard as any other element would be.
"""

from __future__ import annotations

Pattern = tuple[str, ...]


def compile_pattern(text: str) -> Pattern:
    """Split a pattern checked by config.security.check_pattern."""
    return tuple(text.split("."))


def matches(pattern: Pattern, name: str) -> bool:
    elements = name.split(".")
    if pattern[-1] == ">":
        fixed = pattern[:-1]
        if len(elements) < len(fixed):
            return False
    else:
        fixed = pattern
        if len(elements) != len(fixed):
            return False
    return all(p == "*" or p == e for p, e in zip(fixed, elements, strict=False))
