"""The append log's index checkpoint (FORMAT.md, "Checkpoint"): the replayed state as of a log
position, so that recovery replays only the log after it. Encode/decode and `usable` are pure;
`write` streams the encoding to its file, `read` reads it back.

Never trusted over the log: recovery uses a checkpoint only when the segments it describes are
exactly the honoured segments up to its position, with the same epochs, sealed, and its position
lies within the honoured log (`usable`); otherwise it replays everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from stores import ckptframe, framing, fsio
from stores import columns as codec
from stores.appendlog.state import LogState
from stores.base import DurableSubscription
from stores.columns import int_of as _int
from stores.columns import str_of as _str
from stores.entries import Packed, Prefixes

MAGIC = b"BMQACKP1"
NAME = "index.checkpoint"  # in the store directory; written through NAME + ".tmp"
TEMP_NAME = NAME + ".tmp"


class CheckpointError(ValueError):
    pass


@dataclass(slots=True)
class Checkpoint:
    pos: tuple[int, int]  # (segment, offset): every record before it is reflected, none after
    last: tuple[int, int]  # (offset, CRC) of the record ending at pos: pos's segment header if none
    segments: list[tuple[int, int]]  # (number, header epoch) of each honoured segment up to pos's
    window: int  # the duplicate_window the producers were kept under
    snapshot_base: int | None = None  # the base of the newest complete compaction snapshot before pos
    prefixes: list[str] = field(default_factory=list)
    queues: list[tuple[str, Packed]] = field(default_factory=list)  # in queue order, sized columns
    subscriptions: list[DurableSubscription] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)  # oldest first


def snapshot(state: LogState, pos: tuple[int, int], last: tuple[int, int], segments: Mapping[int, int],
             snapshot_base: int | None = None) -> Checkpoint:
    """Take what a checkpoint needs out of `state` (writer thread): each queue's blocks as they are
    now (QueueEntries.frozen: no copy but of its tail), so the encoding can go on in another thread
    while the writer changes the state."""
    return Checkpoint(
        pos=pos,
        last=last,
        segments=sorted(segments.items()),
        window=state.window,
        snapshot_base=snapshot_base,
        prefixes=list(state.prefixes.names),
        queues=[(queue, entries.frozen()) for queue, entries in state.queues.items()],
        subscriptions=list(state.subscriptions.values()),
        producers=list(state.producers),
    )


def _payload(cp: Checkpoint) -> Iterator[bytes | memoryview]:
    packer = msgpack.Packer(use_bin_type=True)
    yield b"".join([packer.pack_map_header(9),
                    packer.pack("pos"), packer.pack(list(cp.pos)),
                    packer.pack("last"), packer.pack(list(cp.last)),
                    packer.pack("segments"), packer.pack([list(s) for s in cp.segments]),
                    packer.pack("window"), packer.pack(cp.window),
                    packer.pack("base"), packer.pack(cp.snapshot_base),
                    packer.pack("prefixes"), packer.pack(cp.prefixes),
                    packer.pack("queues")])
    yield from codec.encode_queues_on(packer, cp.queues, cp.subscriptions, cp.producers)


def encode(cp: Checkpoint) -> bytes:
    stream = ckptframe.Stream(MAGIC, _payload(cp))
    payload = b"".join(stream)
    return stream.head() + payload


def write(path: Path, cp: Checkpoint, replace: Callable[[Path, Path], None] | None = None) -> None:
    """Write `cp` to `path` atomically, a part at a time (no copy of the whole encoding in
    memory); `replace` renames the finished temp file over `path` (the store's decides whether)."""
    stream = ckptframe.Stream(MAGIC, _payload(cp))
    fsio.write_streamed_atomically(path, ckptframe.HEAD_SIZE, stream, stream.head, replace)


def read(path: Path) -> Checkpoint | None:
    """The checkpoint at `path`; None if there is none; CheckpointError if it is not one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode(data)


def decode(data: bytes) -> Checkpoint:
    try:
        payload = ckptframe.payload(data, MAGIC)
    except ckptframe.FrameError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        return _checkpoint(_body(payload))
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"malformed content: {exc}") from None


def _body(payload: memoryview) -> dict[str, object]:
    """The payload's map, "queues" read straight into checked columns (never a million objects)."""
    unpacker = msgpack.Unpacker(raw=False, use_list=True, max_buffer_size=max(len(payload), 1))
    unpacker.feed(payload)
    body: dict[str, object] = {}
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        if key == "queues":
            if "prefixes" not in body:
                raise ValueError("the queues come before the prefixes")
            body[key] = codec.decode_queues(unpacker, Prefixes(body["prefixes"]), sized=True)  # type: ignore[arg-type]
        elif key == "prefixes":
            body[key] = codec.prefix_table(tuple(unpacker.unpack()))
        else:
            body[key] = unpacker.unpack()
    if unpacker.tell() != len(payload):
        raise ValueError(f"{len(payload) - unpacker.tell()} bytes after the checkpoint's map")
    return body


def _checkpoint(body: dict[str, object]) -> Checkpoint:
    pos: list[object] = body["pos"]  # type: ignore[assignment]
    segment, offset = _int(pos[0]), _int(pos[1])
    if len(pos) != 2:
        raise ValueError("the position is not [segment, offset]")
    producers = [_str(p) for p in body["producers"]]  # type: ignore[attr-defined]
    window = _int(body["window"])
    if len(set(producers)) != len(producers) or len(producers) > window:
        raise ValueError("the producer window repeats an id or exceeds its size")
    subs = [_subscription(s) for s in body["subs"]]  # type: ignore[attr-defined]
    if len({s.key for s in subs}) != len(subs):
        raise ValueError("a subscription key is repeated")
    queues: list[tuple[str, Packed]] = body["queues"]  # type: ignore[assignment]
    if len({queue for queue, _ in queues}) != len(queues):
        raise ValueError("a queue is repeated")
    segments = [(_int(n), _int(e)) for n, e in body["segments"]]  # type: ignore[attr-defined]
    numbers = [n for n, _ in segments]
    if not segments or numbers[-1] != segment or numbers != sorted(set(numbers)):
        raise ValueError("the segments are out of order or do not end with the position's")
    base = body["base"]
    last: list[object] = body["last"]  # type: ignore[assignment]
    if len(last) != 2 or _int(last[0]) >= offset:
        raise ValueError("the last record is not [offset, crc] before the position")
    return Checkpoint(
        pos=(segment, offset),
        last=(_int(last[0]), _int(last[1])),
        segments=segments,
        window=window,
        snapshot_base=None if base is None else _int(base),
        prefixes=body["prefixes"],  # type: ignore[arg-type]
        queues=queues,
        subscriptions=subs,
        producers=producers,
    )


def _subscription(fields: object) -> DurableSubscription:
    if not DurableSubscription.valid_fields(fields):
        raise ValueError(f"malformed subscription {str(fields)[:200]}")
    return DurableSubscription(*fields)  # type: ignore[misc]


def usable(cp: Checkpoint, honoured: Mapping[int, int], seals: Mapping[int, int],
           end: Callable[[int], int], head: Callable[[int, int], bytes], window: int) -> str | None:
    """Why `cp` does not describe a prefix of the log as recovery now reads it (None: it does).
    `honoured`: the honoured segments -> their header epochs, in order; `seals`: the sealed ends
    (FORMAT.md, "Recovery" steps 3-4); `end(n)`: segment n's honoured end (its seal or size);
    `head(n, offset)`: the frame header (9 bytes) at that offset of segment n."""
    number, offset = cp.pos
    if window != cp.window:
        return f"it kept {cp.window} producer ids, duplicate_window is now {window}"
    prefix = [(n, epoch) for n, epoch in honoured.items() if n <= number]
    if prefix != cp.segments:
        return (f"it describes segments {_names(cp.segments)}, the honoured log up to "
                f"log-{number}.seg is {_names(prefix)} (compacted, deleted, or written by another master)")
    unsealed = [n for n, _ in prefix[:-1] if n not in seals]
    if unsealed:
        return f"log-{unsealed[0]}.seg is not sealed"
    if offset > end(number):
        return f"its position log-{number}.seg@{offset} is beyond the honoured end {end(number)}"
    at, crc = cp.last
    found = head(number, at)
    size = framing.frame_size(found)
    if size is None or at + size != offset or int.from_bytes(found[:4], "little") != crc:
        return f"the record it ends after (log-{number}.seg@{at}, CRC {crc:#010x}) is not there"
    return None


def _names(segments: list[tuple[int, int]]) -> str:
    shown = ", ".join(f"{n} (epoch {e})" for n, e in segments[:8])
    return f"[{shown}{', ...' if len(segments) > 8 else ''}]"
