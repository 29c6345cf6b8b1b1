"""Header value escaping per STOMP version (STOMP 1.1 / 1.2, "Value Encoding").

1.0 has no escaping at all. 1.1 defines `\\n`, `\\c` and `\\\\`; 1.2 adds `\\r`. Any other escape is
undefined and "MUST be treated as a fatal protocol error" (1.2), so unescaping raises ProtocolError.
Escaping our own output can only fail because of our caller, so it raises ValueError instead.
"""

from __future__ import annotations

import re

from transports.stomp.frame import ProtocolError

_UNESCAPE = {
    "1.1": {"n": "\n", "c": ":", "\\": "\\"},
    "1.2": {"n": "\n", "c": ":", "\\": "\\", "r": "\r"},
}
_ESCAPE = {
    "1.1": str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c"}),
    "1.2": str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c", "\r": "\\r"}),
}
# `$` alternative: a backslash at the very end of a name or value is a dangling escape.
_ESCAPE_SEQUENCE = re.compile(r"\\(.|$)", re.DOTALL)


def unescape(text: str, version: str) -> str:
    """Decode the escapes of a received header name or value; 1.0 text is returned unchanged."""
    if version == "1.0" or "\\" not in text:
        return text
    table = _UNESCAPE[version]

    def replace(match: re.Match[str]) -> str:
        decoded = table.get(match.group(1))
        if decoded is None:
            raise ProtocolError(
                f"undefined escape sequence {match.group(0)!r} in header {text[:64]!r} (STOMP {version})"
            )
        return decoded

    return _ESCAPE_SEQUENCE.sub(replace, text)


def escape(text: str, version: str, what: str = "header") -> str:
    """Encode a header name or value for sending; ValueError if `version` cannot represent it."""
    if "\0" in text:
        # A NUL ends a frame for any peer that does not trust content-length.
        raise ValueError(f"{what} {text[:64]!r} contains NUL")
    if version == "1.2":
        return text.translate(_ESCAPE["1.2"])
    if "\r" in text:
        # 1.1 has no escape for CR, and a CR before the LF is taken as part of the line ending.
        raise ValueError(f"{what} {text[:64]!r} contains a CR, which STOMP {version} cannot carry")
    if version == "1.1":
        return text.translate(_ESCAPE["1.1"])
    return raw(text, version, what)


def raw(text: str, version: str, what: str = "header") -> str:
    """Check that text can be sent without escaping (STOMP 1.0, or a CONNECT/CONNECTED frame)."""
    if "\n" in text or "\r" in text or "\0" in text:
        raise ValueError(f"{what} {text[:64]!r} contains a line break or NUL, which STOMP {version} "
                         "cannot carry unescaped")
    return text
