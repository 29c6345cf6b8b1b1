"""Property tests: hostile bytes only ever raise ProtocolError, chunking never changes the outcome,
and parse(encode(frame)) == frame for every representable frame."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from transports.stomp import Frame, ProtocolError, StompParser, encode
from transports.stomp.commands import CLIENT_COMMANDS, RAW_HEADER_COMMANDS, SERVER_COMMANDS
from transports.stomp.encoder import _plain_header_block, header_line

FUZZ = settings(max_examples=300, deadline=None)
# Feeding byte by byte costs a call per byte: fewer examples keep the file well under 20 s on 2 cores.
FUZZ_SLOW = settings(max_examples=150, deadline=None)
SMALL_LIMITS = {"max_frame_size": 2048, "max_header_count": 12, "max_header_length": 120}
ESCAPED_COMMANDS = sorted((CLIENT_COMMANDS | SERVER_COMMANDS) - RAW_HEADER_COMMANDS)


def run(data: bytes, cuts: list[int], version: str = "1.2", **limits: int) -> tuple[list[Frame], str | None]:
    """Feed `data` split at `cuts`; return the frames and the ProtocolError message, if any."""
    parser = StompParser(**limits)
    parser.version = version
    frames: list[Frame] = []
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    try:
        for start, end in zip(bounds, bounds[1:], strict=False):
            parser.feed(data[start:end])
            while (frame := parser.next_frame()) is not None:
                frames.append(frame)
    except ProtocolError as error:
        return frames, str(error)
    return frames, None


# -- hostile input -------------------------------------------------------------------------------------


VERSIONS = st.sampled_from(["1.0", "1.1", "1.2"])
CUTS = st.lists(st.integers(0, 3000), max_size=12)


@FUZZ
@given(st.binary(max_size=2000), CUTS, VERSIONS)
def test_random_bytes_raise_only_protocol_error(data: bytes, cuts: list[int], version: str) -> None:
    frames, _ = run(data, cuts, version, **SMALL_LIMITS)
    assert all(isinstance(f, Frame) for f in frames)


_name = st.text(st.sampled_from("ab-/0é"), min_size=1, max_size=8)
_value = st.lists(st.sampled_from(["a", "0", " ", ":", "é", "\\n", "\\c", "\\\\"]), max_size=6).map("".join)
_eol = st.sampled_from(["\n", "\r\n"])
# What damage inserts: the bytes and lines that parsers get wrong.
_TRAPS = [b"\r", b"\n", b"\\", b"\\t", b"\0", b":", b"\xff", b"\xc3", b"\n\n", b"send\n",
          b"content-length:-1\n", b"content-length:99\n", b"content-length:x\n"]


@st.composite
def near_valid_stream(draw: st.DrawFn) -> bytes:
    """Valid frames (LF or CR LF, escapes, content-length or not, heart-beats between), then a little
    damage: a few bytes overwritten or trap sequences inserted, where parsers break."""
    data = bytearray()
    for _ in range(draw(st.integers(1, 4))):
        data += draw(st.sampled_from(["", "\n", "\r\n"])).encode()
        text = draw(st.sampled_from([*ESCAPED_COMMANDS, "CONNECT"])) + draw(_eol)
        for _ in range(draw(st.integers(0, 14))):
            text += draw(_name) + ":" + draw(_value) + draw(_eol)
        body = draw(st.binary(max_size=40))
        if draw(st.booleans()):
            text += f"content-length:{len(body)}" + draw(_eol)
        elif b"\0" in body:
            body = body.replace(b"\0", b"")
        data += (text + draw(_eol)).encode() + body + b"\0"
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data[at : at + 1] = bytes([draw(st.integers(0, 255))])
        else:
            data[at:at] = draw(st.sampled_from(_TRAPS))
    return bytes(data)


@FUZZ
@given(near_valid_stream(), CUTS, VERSIONS)
def test_near_valid_frames_raise_only_protocol_error_and_ignore_chunking(
    data: bytes, cuts: list[int], version: str
) -> None:
    whole = run(data, [], version, **SMALL_LIMITS)
    chunked = run(data, cuts, version, **SMALL_LIMITS)
    assert chunked[0] == whole[0]
    assert (chunked[1] is None) == (whole[1] is None)


@FUZZ_SLOW
@given(near_valid_stream(), VERSIONS)
def test_byte_at_a_time_equals_whole(data: bytes, version: str) -> None:
    whole = run(data, [], version)
    single = run(data, list(range(len(data))), version)
    assert single[0] == whole[0]
    assert (single[1] is None) == (whole[1] is None)


# -- round trip ----------------------------------------------------------------------------------------

# Names and values may hold anything but NUL in 1.2; 1.1 has no escape for CR.
_text_12 = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=20)
_text_11 = st.text(st.characters(blacklist_characters="\x00\r", blacklist_categories=["Cs"]), max_size=20)
# CONNECT/CONNECTED and 1.0 are never escaped: no line breaks anywhere, no ':' in names.
_text_raw = st.text(st.characters(blacklist_characters="\x00\r\n", blacklist_categories=["Cs"]), max_size=20)


Text = st.SearchStrategy[str]


def frames(command: Text, names: Text, values: Text) -> st.SearchStrategy[Frame]:
    # encode() itself adds content-length, so generated frames leave it out.
    headers = st.dictionaries(names.filter(lambda n: n not in ("", "content-length")), values, max_size=8)
    return st.builds(Frame, command, headers, st.binary(max_size=200))


def expected(frame: Frame) -> Frame:
    headers = dict(frame.headers)
    if frame.body:
        headers["content-length"] = str(len(frame.body))
    return Frame(frame.command, headers, frame.body)


def assert_round_trip(batch: list[Frame], version: str, cuts: list[int]) -> None:
    data = b"\n".join(encode(frame, version) for frame in batch)
    parsed, error = run(data, cuts, version)
    assert error is None
    assert parsed == [expected(frame) for frame in batch]


@FUZZ
@given(st.lists(frames(st.sampled_from(ESCAPED_COMMANDS), _text_12, _text_12), min_size=1, max_size=4),
       CUTS)
def test_round_trip_1_2(batch: list[Frame], cuts: list[int]) -> None:
    assert_round_trip(batch, "1.2", cuts)


@FUZZ
@given(st.lists(frames(st.sampled_from(ESCAPED_COMMANDS), _text_11, _text_11), min_size=1, max_size=4),
       CUTS)
def test_round_trip_1_1(batch: list[Frame], cuts: list[int]) -> None:
    assert_round_trip(batch, "1.1", cuts)


# What may sit between frames: EOLs and NULs (heart-beats, and the NUL LF of STOMP 1.0 clients).
_between = st.lists(st.sampled_from([b"\n", b"\r\n", b"\0"]), max_size=5).map(b"".join)


@FUZZ
@given(st.lists(st.tuples(_between, frames(st.sampled_from(ESCAPED_COMMANDS), _text_12, _text_12)),
                min_size=1, max_size=4), CUTS)
def test_eols_and_nuls_between_frames_are_heartbeats(
    batch: list[tuple[bytes, Frame]], cuts: list[int]
) -> None:
    data = b"".join(gap + encode(frame, "1.2") for gap, frame in batch)
    parser_frames, error = run(data, cuts)
    assert error is None
    assert parser_frames == [expected(frame) for _, frame in batch]


_raw_names = _text_raw.filter(lambda n: ":" not in n)
ESCAPING_VERSIONS = st.sampled_from(["1.1", "1.2"])


@FUZZ
@given(st.lists(frames(st.sampled_from(ESCAPED_COMMANDS), _raw_names, _text_raw), min_size=1, max_size=4),
       CUTS)
def test_round_trip_1_0(batch: list[Frame], cuts: list[int]) -> None:
    assert_round_trip(batch, "1.0", cuts)


@FUZZ
@given(frames(st.sampled_from(sorted(RAW_HEADER_COMMANDS)), _raw_names, _text_raw), ESCAPING_VERSIONS)
def test_round_trip_connect_frames_unescaped(frame: Frame, version: str) -> None:
    assert_round_trip([frame], version, [])


@FUZZ
@given(frames(st.sampled_from(ESCAPED_COMMANDS), _text_12, _text_12))
def test_encode_never_emits_what_the_parser_refuses(frame: Frame) -> None:
    for version in ("1.0", "1.1", "1.2"):
        try:
            data = encode(frame, version)
        except ValueError:
            continue
        parsed, error = run(data, [], version)
        assert error is None and parsed == [expected(frame)]


# Everything a header may hold that some version escapes or refuses.
_tricky = st.text(st.sampled_from("ab:\\\n\r\0é-"), max_size=6)


@FUZZ
@given(st.dictionaries(_tricky, _tricky, max_size=6), VERSIONS,
       st.sampled_from(["MESSAGE", "RECEIPT", "CONNECTED"]))
def test_plain_header_path_writes_what_the_careful_one_does(
    headers: dict[str, str], version: str, command: str
) -> None:
    """The encoder's plain path (a few scans for all headers) is only a shortcut: where it answers,
    it answers exactly what escaping header by header does, and it leaves every refusal to that."""
    escaped = version != "1.0" and command not in RAW_HEADER_COMMANDS
    plain = _plain_header_block(headers, escaped)
    try:
        careful = "\n".join(header_line(name, value, version, escaped) for name, value in headers.items())
    except ValueError:
        assert plain is None
        return
    assert plain is None or plain == careful


def test_plain_header_path_takes_a_usual_message() -> None:
    headers = {"destination": "/queue/a", "message-id": "ID:b-1:2", "subscription": "0", "ack": "7"}
    assert _plain_header_block(headers, True) == (
        "destination:/queue/a\nmessage-id:ID\\cb-1\\c2\nsubscription:0\nack:7")
