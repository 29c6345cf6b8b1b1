"""The frame of a checkpoint file, shared by the journal's and the append log's checkpoints:
an 8-byte magic, the CRC-32C and length of the payload (u32 little-endian each), the payload.
The payload is made a part at a time and written so (`Stream`), and read so (`Reader`): never
one bytes object of the whole checkpoint. Pure but for `Stream`, which only counts what passes
through it, and `Reader`, which reads a file it is given."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import crc32c

HEADER = struct.Struct("<II")  # crc32c of payload, payload length -- little-endian
MAGIC_SIZE = 8
HEAD_SIZE = MAGIC_SIZE + HEADER.size
MAX_PAYLOAD = 1 << 32


class FrameError(ValueError):
    pass


class Stream:
    """The payload's parts as they are yielded, and the head that frames those yielded so far."""

    def __init__(self, magic: bytes, parts: Iterable[bytes | memoryview]) -> None:
        assert len(magic) == MAGIC_SIZE
        self.crc = 0
        self.length = 0
        self._magic = magic
        self._parts = parts

    def __iter__(self) -> Iterator[bytes | memoryview]:
        for part in self._parts:
            self.crc = crc32c.crc32c(part, self.crc)
            self.length += len(part)
            if self.length >= MAX_PAYLOAD:
                raise FrameError("a checkpoint of 4 GiB or more cannot be framed")
            yield part

    def head(self) -> bytes:
        return self._magic + HEADER.pack(self.crc, self.length)


def payload(data: bytes, magic: bytes) -> memoryview:
    """The payload of a framed `data` with that magic; FrameError if the magic, the length or the
    CRC says it is not one."""
    if len(data) < HEAD_SIZE or not data.startswith(magic):
        raise FrameError("bad magic")
    crc, length = HEADER.unpack_from(data, MAGIC_SIZE)
    body = memoryview(data)[HEAD_SIZE:]
    if len(body) != length:
        raise FrameError(f"payload is {len(body)} bytes, header says {length}")
    if crc32c.crc32c(body) != crc:
        raise FrameError("CRC mismatch")
    return body


class Reader:
    """A framed payload read from an open file a part at a time (a file-like `read` for a streaming
    unpacker): never past the length the head gave, the CRC of what was read so far kept."""

    def __init__(self, file: BinaryIO, crc: int, length: int) -> None:
        self._file = file
        self._crc = crc
        self.length = length
        self.left = length
        self.sum = 0

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        self.sum = crc32c.crc32c(data, self.sum)
        return data

    def finish(self) -> None:
        """Read the rest; FrameError if the file's payload is not the length and CRC its head gave."""
        while self.read(1 << 20):
            pass
        if self.left or self._file.read(1):
            size = self.length - self.left + (0 if self.left else 1 + len(self._file.read()))
            raise FrameError(f"payload is {size} bytes, header says {self.length}")
        if self.sum != self._crc:
            raise FrameError("CRC mismatch")


def open_frame(file: BinaryIO, magics: tuple[bytes, ...]) -> tuple[bytes, Reader]:
    """The magic of a framed file (one of `magics`) and a Reader of its payload."""
    head = file.read(HEAD_SIZE)
    if len(head) < HEAD_SIZE or not head.startswith(magics):
        raise FrameError("bad magic")
    crc, length = HEADER.unpack_from(head, MAGIC_SIZE)
    return head[:MAGIC_SIZE], Reader(file, crc, length)
