"""Incremental STOMP frame parser: bytes in, Frames out (the encoder, Frames in, bytes out, is encoder.py).

Grammar (STOMP 1.2, "Augmented BNF"): command EOL, header lines `name:value` EOL, an empty line, the
body, NUL. EOL is LF or CR LF. Between frames a peer may send bare EOLs as heart-beats; a NUL there
is skipped as one too, as ActiveMQ skips it (STOMP 1.0 clients end frames with NUL LF, and some send
a lone NUL as their keep-alive).

The parser is linear-time: it keeps one bytearray, remembers where each search stopped so that each
byte is scanned a bounded number of times however the input is chunked, and compacts the buffer only
once more than half of it is consumed (the h11 receive-buffer design). Every quantity a peer controls
has a bound, checked as soon as it is known. Common frames (uniform line endings, ASCII headers) take a
fast path that splits the whole header block in C; everything else goes line by line.
"""

from __future__ import annotations

import re
from typing import NoReturn

from transports.stomp.commands import RAW_HEADER_COMMANDS, VERSIONS
from transports.stomp.encoder import encode
from transports.stomp.escape import unescape
from transports.stomp.frame import Frame, ProtocolError
from transports.stomp.wholeframe import MAX_COMMAND_LENGTH as _MAX_COMMAND_LENGTH
from transports.stomp.wholeframe import MAX_LENGTH_DIGITS as _MAX_LENGTH_DIGITS
from transports.stomp.wholeframe import whole_frame

__all__ = ["HEARTBEAT", "StompParser", "encode"]  # encode lives in encoder.py; imported from here too

HEARTBEAT = b"\n"

# How much a caller may feed beyond one maximal frame before draining next_frame().
_FEED_SLACK = 1 << 20
# Consumed bytes are dropped from the buffer only past this, so small frames cost no memmove each.
_COMPACT_AT = 1 << 16
# How far the header-block fast path looks for the blank line. Bounded because, with odd line endings,
# the search could otherwise run through every later frame in the buffer, once per frame.
_BLOCK_WINDOW = 1 << 14

# Heart-beats: runs of LFs, of LFs and NULs, of CRs, LFs and NULs, and a CR no LF follows (not an EOL).
# The LF run is tried first: a literal repeat scans twice as fast as a class, and NULs are rare.
_LF_RUN = re.compile(rb"\n*")
_LF_NUL_RUN = re.compile(rb"[\n\0]*")
_EOL_RUN = re.compile(rb"[\r\n\0]*")
_LONE_CR = re.compile(rb"\r(?!\n)")
_EOL_BYTES = (0, 10, 13)

_IDLE, _COMMAND, _HEADERS, _BODY = range(4)


class StompParser:
    """Sans-I/O receiver: feed() bytes as they arrive, then call next_frame() until it returns None.

    `version` ("1.0", "1.1" or "1.2") decides header unescaping; the session sets it after negotiation.
    `heartbeats` counts the bare EOLs and NULs seen between frames (including the EOL many clients put
    after a frame's NUL). The frame size that max_frame_size bounds runs from the command's first byte to the
    body's last, headers included, NUL excluded. After a ProtocolError the parser is dead: every later
    call raises that error again.
    """

    def __init__(
        self,
        max_frame_size: int = 100 * 1024 * 1024,  # config.model.Limits' default
        max_header_count: int = 1000,
        max_header_length: int = 10240,
    ) -> None:
        for name, limit in (
            ("max_frame_size", max_frame_size),
            ("max_header_count", max_header_count),
            ("max_header_length", max_header_length),
        ):
            if limit < 1:
                raise ValueError(f"{name} must be positive, got {limit}")
        self.max_frame_size = max_frame_size
        self.max_header_count = max_header_count
        self.max_header_length = max_header_length
        self.heartbeats = 0
        self._version = "1.2"
        self._buf = bytearray()
        self._pos = 0  # first unconsumed byte; the start of the current frame once one has begun
        self._scan = 0  # where the next search for LF or NUL resumes
        self._state = _IDLE
        self._error: ProtocolError | None = None
        self._command = ""
        self._headers: dict[str, str] = {}
        self._header_count = 0
        self._unescape = False
        self._content_length: int | None = None
        self._body_start = 0
        self._block_tried = False
        self._resume = 0  # where the header loop's search for LF continues

    @property
    def version(self) -> str:
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        if value not in VERSIONS:
            raise ValueError(f"unknown STOMP version {value!r}; expected one of {', '.join(VERSIONS)}")
        self._version = value

    @property
    def buffered(self) -> int:
        """Bytes held: those not consumed yet, and consumed ones not yet compacted away."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._check_alive()
        self._buf += data
        pending = len(self._buf) - self._pos
        if pending > self.max_frame_size + _FEED_SLACK:
            self._fail(f"receive buffer overflow: {pending} bytes unparsed > max "
                       f"{self.max_frame_size + _FEED_SLACK}")

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes are fed."""
        self._check_alive()
        try:
            return self._advance()
        except ProtocolError as error:
            self._error = error
            raise

    # -- state machine -------------------------------------------------------------------------------

    def _advance(self) -> Frame | None:
        while True:
            if self._state == _IDLE:
                if not self._skip_heartbeats():
                    return None
                whole = whole_frame(self._buf, self._pos, _BLOCK_WINDOW, self.max_frame_size,
                                    self.max_header_count, self.max_header_length)
                if whole is not None:  # the usual frame, whole: no steps of the state machine
                    frame, end = whole
                    self._pos = end + 1
                    self._compact()
                    return frame
                self._begin_frame()
            if self._state == _COMMAND:
                line = self._read_command_line()
                if line is None:
                    return None
                self._on_command(line)
            if self._state == _HEADERS and not self._read_headers():
                return None
            return self._read_body()

    def _skip_heartbeats(self) -> bool:
        """Consume bare EOLs and NULs; True once the first byte of a frame is at self._pos. Linear and in C
        (regexes find the runs, `count` tallies them): a loop per byte stalled us 1.5 s per 10 MB."""
        buf, start = self._buf, self._pos
        if start < len(buf) and buf[start] not in _EOL_BYTES:
            return True  # the usual case: a frame follows the last one's NUL at once
        end = _LF_RUN.match(buf, start).end()  # type: ignore[union-attr]  # `*` always matches
        if end < len(buf) and buf[end] == 0:
            end = _LF_NUL_RUN.match(buf, end).end()  # type: ignore[union-attr]
        self.heartbeats += end - start
        if end < len(buf) and buf[end] == 13:
            start, end = end, _EOL_RUN.match(buf, end).end()  # type: ignore[union-attr]
            if buf.count(b"\r", start, end) != buf.count(b"\r\n", start, end):
                # Stop at the lone CR: its LF may not have arrived yet, or it starts garbage.
                end = _LONE_CR.search(buf, start, end).start()  # type: ignore[union-attr]
            self.heartbeats += buf.count(b"\n", start, end) + buf.count(b"\0", start, end)
        self._pos = end
        if end < len(buf) and not (buf[end] == 13 and end + 1 == len(buf)):
            return True  # a frame's first byte (a CR here is a lone one: the command check refuses it)
        self._compact()  # all EOLs so far, perhaps but the CR of a CR LF whose LF is still to come
        return False

    def _begin_frame(self) -> None:
        self._state = _COMMAND
        self._scan = self._pos
        self._command = ""
        self._headers = {}
        self._header_count = 0
        self._content_length = None
        self._block_tried = False
        self._resume = 0

    def _read_command_line(self) -> bytes | None:
        """The command line without its EOL, or None (after checking the partial line)."""
        buf, start = self._buf, self._scan
        # Rescanning from the line start on each feed is fine: the line is at most ~64 bytes.
        lf = buf.find(b"\n", start)
        end = len(buf) if lf < 0 else lf
        if end - start > _MAX_COMMAND_LENGTH + 1:  # +1: a CR
            self._fail(f"command line too long: more than {_MAX_COMMAND_LENGTH} bytes")
        if lf < 0:
            # Judge what has arrived so far: garbage is refused without waiting for an EOL.
            self._check_command(bytes(buf[start:]).removesuffix(b"\r"), partial=True)
            return None
        end = lf - 1 if lf > start and buf[lf - 1] == 13 else lf
        self._scan = lf + 1
        return bytes(buf[start:end])

    def _on_command(self, line: bytes) -> None:
        self._check_command(line, partial=False)
        self._command = line.decode("ascii")
        self._unescape = self._version != "1.0" and self._command not in RAW_HEADER_COMMANDS
        self._state = _HEADERS

    def _check_command(self, line: bytes, partial: bool) -> None:
        # bytes.isalpha/isupper are ASCII-only, so this admits exactly A-Z.
        if (partial and not line) or (line.isalpha() and line.isupper()):
            return
        self._fail(f"invalid command {line[:_MAX_COMMAND_LENGTH]!r}: expected upper-case ASCII letters")

    def _read_headers(self) -> bool:
        """Parse every complete header line; True once the blank line ending the headers is read.

        This is the hot loop, so it keeps state in locals and writes the scan position back on exit.
        """
        if not self._block_tried:
            self._block_tried = True
            if self._read_header_block():
                return True
        buf, scan, limit = self._buf, self._scan, self.max_header_length
        frame_limit = self._pos + self.max_frame_size
        try:
            while True:
                # Resume the LF search where the last feed's search ended, not at the line start.
                lf = buf.find(b"\n", max(scan, self._resume))
                if lf < 0:
                    self._resume = len(buf)
                    self._check_partial_line(scan)
                    return False
                end = lf - 1 if lf > scan and buf[lf - 1] == 13 else lf
                if end - scan > limit:
                    self._fail(f"header line too long: more than {limit} bytes")
                if lf > frame_limit:
                    self._check_frame_size(lf - self._pos)
                if end == scan:
                    scan = lf + 1
                    self._end_of_headers(scan)
                    return True
                line = bytes(buf[scan:end])
                scan = lf + 1
                self._header_count += 1
                if self._header_count > self.max_header_count:
                    self._fail(f"too many headers: more than {self.max_header_count}")
                self._add_header(*self._split_header(line))
        finally:
            self._scan = scan

    def _read_header_block(self) -> bool:
        """Fast path: a whole header block buffered with uniform line endings is split at C speed.

        Tried once per frame, within _BLOCK_WINDOW bytes, with the line ending the command line used.
        Anything irregular (mixed endings, a CR inside a value, a longer block) is left to the
        line-by-line loop, which handles every case.
        """
        buf, start = self._buf, self._scan
        crlf = buf[start - 2] == 13 if start - 2 >= self._pos else False
        eol = b"\r\n" if crlf else b"\n"
        # The byte before `start` is the LF ending the command line, so an empty header block is found too.
        blank = buf.find(b"\n" + eol, start - 1, start + min(_BLOCK_WINDOW, self.max_frame_size))
        if blank < 0:
            return False
        body_start = blank + 1 + len(eol)
        self._check_frame_size(body_start - 1 - self._pos)  # as the line loop counts: up to the last LF
        if blank < start:
            self._end_of_headers(body_start)
            return True
        if crlf and buf[blank - 1] != 13:
            return False
        block = bytes(buf[start : blank + 1 - len(eol)])
        separators = block.count(eol)
        if block.count(b"\r") != (separators if crlf else 0) or block.count(b"\n") != separators:
            return False  # a bare CR or LF somewhere: the careful loop decides what it means
        lines = block.split(eol)
        if len(lines) > self.max_header_count:
            self._fail(f"too many headers: more than {self.max_header_count}")
        if len(block) > self.max_header_length and max(map(len, lines)) > self.max_header_length:
            self._fail(f"header line too long: more than {self.max_header_length} bytes")
        self._header_count = len(lines)
        if b"\0" in block or b"\\" in block or not block.isascii():
            for line in lines:  # the careful path: decode, validate and unescape each line
                self._add_header(*self._split_header(line))
        else:
            # Plain ASCII without backslashes: nothing to decode or unescape, only the ':' to find.
            # _add_header inlined: this runs for every header of every frame.
            headers = self._headers
            for text in block.decode("ascii").split(eol.decode("ascii")):
                name, colon, value = text.partition(":")
                if not (colon and name):
                    self._split_header(text.encode("ascii"))  # raises with the precise reason
                if name not in headers:  # STOMP 1.2, "Repeated Header Entries": the first counts
                    headers[name] = value
                    if name == "content-length":
                        self._content_length = self._parse_content_length(value)
        self._end_of_headers(body_start)
        return True

    def _add_header(self, name: str, value: str) -> None:
        # STOMP 1.2, "Repeated Header Entries": only the first occurrence counts.
        if name not in self._headers:
            self._headers[name] = value
            if name == "content-length":
                self._content_length = self._parse_content_length(value)

    def _check_partial_line(self, start: int) -> None:
        end = len(self._buf)
        if end > start and self._buf[end - 1] == 13:
            end -= 1  # may be the CR of a CR LF
        if end - start > self.max_header_length:
            self._fail(f"header line too long: more than {self.max_header_length} bytes")
        self._check_frame_size(end - self._pos)

    def _split_header(self, line: bytes) -> tuple[str, str]:
        if b"\0" in line:
            self._fail(f"NUL byte in header line {line[:64]!r}")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            self._fail(f"header line {line[:64]!r} is not valid UTF-8: {error.reason}")
        name, colon, value = text.partition(":")
        if not colon:
            self._fail(f"header line without ':': {text[:64]!r}")
        if not name:
            self._fail(f"header line with an empty name: {text[:64]!r}")
        if self._unescape:
            return unescape(name, self._version), unescape(value, self._version)
        return name, value

    def _parse_content_length(self, value: str) -> int:
        if not (value.isascii() and value.isdigit()) or len(value) > _MAX_LENGTH_DIGITS:
            self._fail(f"invalid content-length {value[:32]!r}: expected a non-negative integer")
        length = int(value)
        self._check_frame_size(length)
        return length

    def _end_of_headers(self, body_start: int) -> None:
        self._body_start = body_start
        if self._content_length is not None:
            self._check_frame_size(self._body_start - self._pos + self._content_length)
        self._state = _BODY

    def _read_body(self) -> Frame | None:
        buf, start = self._buf, self._body_start
        if self._content_length is not None:
            # STOMP 1.2, "Header content-length": exactly that many octets, NULs included, then a NUL.
            end = start + self._content_length
            if len(buf) <= end:
                return None
            if buf[end] != 0:
                self._fail(f"frame body of content-length {self._content_length} is not followed by NUL")
        else:
            end = buf.find(b"\0", self._scan)
            if end < 0:
                self._scan = len(buf)
                self._check_frame_size(len(buf) - self._pos)
                return None
            self._check_frame_size(end - self._pos)
        frame = Frame(self._command, self._headers, bytes(buf[start:end]))
        self._pos = end + 1
        self._state = _IDLE
        self._compact()
        return frame

    # -- bounds and errors ---------------------------------------------------------------------------

    def _check_frame_size(self, size: int) -> None:
        if size > self.max_frame_size:
            self._fail(f"frame too large: {size} bytes > max {self.max_frame_size}")

    def _compact(self) -> None:
        # Only between frames, so no index but _pos points into the buffer.
        pos = self._pos
        if pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif pos > _COMPACT_AT and pos * 2 > len(self._buf):
            del self._buf[:pos]
            self._pos = 0

    def _fail(self, message: str) -> NoReturn:
        self._error = ProtocolError(message)
        self._buf = bytearray()
        raise self._error

    def _check_alive(self) -> None:
        if self._error is not None:
            raise self._error.with_traceback(None)
