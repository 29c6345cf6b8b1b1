"""The parser's shortcut for the usual frame: all of it buffered, LF line endings, plain ASCII headers.

Most frames arrive whole within one read, and most clients send LF-terminated ASCII headers without
escapes. For those, one search finds the blank line, a few scans in C check the header block, and
the frame is built without the state machine's steps per line. Anything else (a frame cut by the
read, CR LF, a backslash, NUL or non-ASCII byte in the headers, a malformed line, any limit
reached) gets None, and the line-by-line parser in codec.py decides what it is: errors and their
wording come from that one place, and this never accepts what the careful path would refuse.
"""

from __future__ import annotations

from transports.stomp.frame import Frame

# The longest STOMP command is 11 letters; anything much longer is garbage, rejected before its EOL.
MAX_COMMAND_LENGTH = 64
MAX_LENGTH_DIGITS = 19


def whole_frame(buf: bytearray, pos: int, window: int, max_frame_size: int, max_header_count: int,
                max_header_length: int) -> tuple[Frame, int] | None:
    """The frame starting at `buf[pos]` and the index of its NUL, or None (see the module's doc).

    `window` bounds the search for the blank line, as the parser's own header-block search is.
    """
    blank = buf.find(b"\n\n", pos, pos + min(window, max_frame_size) + 2)
    if blank < 0:
        return None
    # A head that ran into a later frame would hold that frame's NUL: refused here with the rest.
    head = bytes(buf[pos:blank])
    if not head.isascii() or b"\r" in head or b"\0" in head or b"\\" in head:
        return None
    lines = head.decode("ascii").split("\n")
    command = lines[0]
    if len(command) > MAX_COMMAND_LENGTH or not (command.isalpha() and command.isupper()):
        return None
    if len(lines) > max_header_count + 1:
        return None
    if len(head) > max_header_length and max(map(len, lines)) > max_header_length:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not (colon and name):
            return None
        if name not in headers:  # STOMP 1.2, "Repeated Header Entries": the first counts
            headers[name] = value
    body_start = blank + 2
    declared = headers.get("content-length")
    if declared is None:
        end = buf.find(b"\0", body_start, pos + max_frame_size + 1)
        if end < 0:
            return None
    else:
        if not declared.isdigit() or len(declared) > MAX_LENGTH_DIGITS:
            return None
        end = body_start + int(declared)  # STOMP 1.2, "Header content-length": then a NUL
        if end >= len(buf) or buf[end] != 0:
            return None
    if end - pos > max_frame_size:
        return None
    return Frame(command, headers, bytes(buf[body_start:end])), end
