"""ActiveMQ's value syntaxes: sizes (`32mb`), milliseconds and booleans, as XML attributes spell them.

Each parser raises ValueError with a one-line reason; the caller adds the key (element@attribute).
"""

from __future__ import annotations

import re

KiB = 1024

# ActiveMQ's MemoryPropertyEditor accepts digits with an optional b/k/kb/m/mb/g/gb suffix, any case,
# spaces around; multipliers are powers of 1024. No fractions ("1.5gb" is rejected there too).
# BatonMQ's own settings also take kib/mib/gib, which mean the same.
_SIZE = re.compile(r"\s*(\d{1,18})\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*", re.IGNORECASE)
_MULTIPLIER = {"b": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": KiB**2, "mb": KiB**2, "mib": KiB**2,
               "g": KiB**3, "gb": KiB**3, "gib": KiB**3}

_MILLIS = re.compile(r"\s*(\d{1,15})\s*")


def parse_size(text: str) -> int:
    """`32mb` -> 33554432; `1024kb`, `1gb`, `4096` (bytes) likewise."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"expected a size such as 4096, 1024kb, 32mb or 1gb (got {text!r})")
    digits, unit = match.groups()
    return int(digits) * _MULTIPLIER[(unit or "b").lower()]


def parse_millis(text: str) -> int:
    """A whole, non-negative number of milliseconds (ActiveMQ attributes are Java longs in ms)."""
    match = _MILLIS.fullmatch(text)
    if match is None:
        raise ValueError(f"expected a whole number of milliseconds (got {text!r})")
    return int(match.group(1))


def millis_to_seconds(text: str) -> float:
    return parse_millis(text) / 1000.0


def parse_bool(text: str) -> bool:
    """Spring converts `true`/`false` case-insensitively; anything else is an error, not false."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValueError(f"expected true or false (got {text!r})")
