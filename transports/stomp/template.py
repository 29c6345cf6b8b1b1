"""A frame encoded once for many receivers, each adding a few headers of its own.

A topic's fan-out writes one message to hundreds of subscribers; what differs between their MESSAGE
frames is a few headers (`subscription`, `ack`, `redelivered`), while the rest (the user's headers,
`destination`, `message-id`, the body) is the same. `frame_template` escapes and encodes that
common part once for one STOMP version; `render` adds one receiver's headers. Pure functions: no
sockets, no asyncio.

`render(frame_template(command, common, body, version), extra)` is byte for byte
`encode(Frame(command, {**common, **extra}, body), version)` (the common headers first, then the
receiver's, then `content-length`), and raises ValueError in the same cases, but one: an extra header
that repeats a common one (or is `content-length`) is refused, since a dict would have replaced the
common value in its place.
"""

from __future__ import annotations

from dataclasses import dataclass

from transports.stomp.commands import RAW_HEADER_COMMANDS, VERSIONS
from transports.stomp.encoder import header_line

# What a value may hold to be sent as it is under every version (the usual case for an extra header).
_PLAIN_UNSAFE = frozenset("\\:\r\n\0")


@dataclass(frozen=True, slots=True, eq=False)
class FrameTemplate:
    version: str
    escaped: bool  # header names and values are escaped (1.1, 1.2; not CONNECT/CONNECTED)
    head: bytes  # the command line and the common header lines, each ending in LF
    tail: bytes  # the content-length line, if any, and the blank line that ends the headers
    body: bytes
    names: frozenset[str]  # the common header names, and content-length: no extra header may be one

    @property
    def size(self) -> int:
        """The bytes this template holds beside the body (which it shares, not copies)."""
        return len(self.head) + len(self.tail)


def frame_template(command: str, headers: dict[str, str], body: bytes, version: str = "1.2",
                   content_length: bool = True) -> FrameTemplate:
    """The common part of a frame, encoded as `encode` would; ValueError if it cannot be represented."""
    if version not in VERSIONS:
        raise ValueError(f"unknown STOMP version {version!r}")
    if not (command.isascii() and command.isalpha() and command.isupper()):
        raise ValueError(f"invalid command {command!r}: expected upper-case ASCII letters")
    escaped = version != "1.0" and command not in RAW_HEADER_COMMANDS
    lines = [command, *(header_line(name, value, version, escaped) for name, value in headers.items())]
    declared = headers.get("content-length")
    if declared is not None and declared != str(len(body)):
        raise ValueError(f"content-length header {declared!r} does not match the body length {len(body)}")
    tail = "\n"
    if declared is None:
        if body and content_length:
            tail = f"content-length:{len(body)}\n\n"
        elif b"\0" in body:
            raise ValueError("a body containing NUL needs a content-length header")
    head = "".join([line + "\n" for line in lines])
    return FrameTemplate(version, escaped, head.encode("utf-8"), tail.encode("ascii"), body,
                         frozenset(headers) | {"content-length"})


def render(template: FrameTemplate, headers: dict[str, str]) -> bytes:
    """The whole frame: the template with `headers` after its own; ValueError as `encode` raises it,
    or if a header repeats one of the template's."""
    if not template.names.isdisjoint(headers):
        repeated = sorted(template.names.intersection(headers))
        raise ValueError(f"header {repeated[0]!r} is already in the frame's template")
    version, escaped = template.version, template.escaped
    lines = "".join([
        f"{name}:{value}\n" if _PLAIN_UNSAFE.isdisjoint(name) and _PLAIN_UNSAFE.isdisjoint(value) and name
        else header_line(name, value, version, escaped) + "\n"
        for name, value in headers.items()
    ])
    # One copy of the body, as `encode` makes.
    return b"".join((template.head, lines.encode("utf-8"), template.tail, template.body, b"\0"))
