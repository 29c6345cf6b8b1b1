"""STOMP frame encoder: Frames in, bytes out, headers escaped as the negotiated version requires.

Pure functions: no sockets, no asyncio. Its inverse is the parser in codec.py.
"""

from __future__ import annotations

from transports.stomp.commands import RAW_HEADER_COMMANDS, VERSIONS
from transports.stomp.escape import escape, raw
from transports.stomp.frame import Frame


def encode(frame: Frame, version: str = "1.2", content_length: bool = True) -> bytes:
    """Serialise a frame, escaping headers as `version` requires; ValueError if it cannot be represented."""
    if version not in VERSIONS:
        raise ValueError(f"unknown STOMP version {version!r}")
    command = frame.command
    if not (command.isascii() and command.isalpha() and command.isupper()):
        raise ValueError(f"invalid command {command!r}: expected upper-case ASCII letters")
    headers = frame.headers
    escaped = version != "1.0" and command not in RAW_HEADER_COMMANDS
    text = _plain_header_block(headers, escaped)
    if text is None:  # something to escape, or to refuse: header by header
        text = "\n".join([header_line(name, value, version, escaped) for name, value in headers.items()])
    body = frame.body
    declared = headers.get("content-length")
    if declared is not None and declared != str(len(body)):
        raise ValueError(f"content-length header {declared!r} does not match the body length {len(body)}")
    lines = [command, text] if headers else [command]
    if declared is None:
        if body and content_length:
            lines.append(f"content-length:{len(body)}")
        elif b"\0" in body:
            raise ValueError("a body containing NUL needs a content-length header")
    lines.append("\n")
    # One copy of the body, not two (`head + body + NUL` would copy it twice).
    return b"".join(("\n".join(lines).encode("utf-8"), body, b"\0"))


def _plain_header_block(headers: dict[str, str], escaped: bool) -> str | None:
    """The header lines, if no name or value needs more than ':' escaped; else None.

    Most frames we send (MESSAGE, RECEIPT) are such, and for them a few scans and replaces in C
    replace two escape calls per header. Each name is joined to its value by a NUL first: a NUL or
    LF anywhere else shows in the counts, and once no backslash or CR is found, the only escape left
    is ':' (every message id has one), as `\\c` in all names and values at once (1.1 and 1.2 escape a
    name's the same way; unescaped versions refuse one); the NULs then become the separating colons.
    Half the cost of the regex scans, split and zip it replaced (2.8 -> 1.45 us for a MESSAGE).
    """
    if not headers:
        return ""
    block = "\n".join(map("\0".join, headers.items()))
    count = len(headers)
    if (block.count("\0") != count or block.count("\n") != count - 1 or "\\" in block or "\r" in block
            or "" in headers):
        return None
    if escaped:
        return block.replace(":", "\\c").replace("\0", ":")
    if ":" in "".join(headers):
        return None
    return block.replace("\0", ":")


def header_line(name: str, value: str, version: str, escaped: bool) -> str:
    """One header as `name:value` for `version`, escaped where the command escapes (or refused)."""
    if not name:
        raise ValueError("empty header name")
    if escaped:
        return f"{escape(name, version, 'header name')}:{escape(value, version, 'header value')}"
    if ":" in name:
        raise ValueError(f"header name {name!r} contains ':', which cannot be sent unescaped")
    return f"{raw(name, version, 'header name')}:{raw(value, version, 'header value')}"
