"""The STOMP parser and encoder, rule by rule (STOMP 1.2 "Frames and Headers", "Value Encoding")."""

from __future__ import annotations

import pytest

from transports.stomp import HEARTBEAT, Frame, ProtocolError, StompParser, encode

SEND = b"SEND\ndestination:/queue/a\nreceipt:r-1\n\nhello\0"
SEND_CRLF = b"SEND\r\ndestination:/queue/a\r\nreceipt:r-1\r\n\r\nhello\0"
NUL_BODY = b"SEND\ndestination:/queue/b\ncontent-length:5\n\na\0b\0c\0"
NO_HEADERS = b"DISCONNECT\n\n\0"
SAMPLES = [SEND, SEND_CRLF, NUL_BODY, NO_HEADERS, b"\n\r\n" + SEND + b"\n"]


def parse_all(data: bytes, parser: StompParser | None = None, chunk: int | None = None) -> list[Frame]:
    parser = parser or StompParser()
    frames = []
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        parser.feed(data[start : start + step])
        while (frame := parser.next_frame()) is not None:
            frames.append(frame)
    return frames


def parse_one(data: bytes, **limits: int) -> Frame:
    frames = parse_all(data, StompParser(**limits))
    assert len(frames) == 1
    return frames[0]


def raises(data: bytes, match: str, version: str = "1.2", **limits: int) -> ProtocolError:
    parser = StompParser(**limits)
    parser.version = version
    with pytest.raises(ProtocolError, match=match) as info:
        parse_all(data, parser)
    return info.value


# -- framing -------------------------------------------------------------------------------------------


def test_simple_send() -> None:
    assert parse_one(SEND) == Frame("SEND", {"destination": "/queue/a", "receipt": "r-1"}, b"hello")


def test_crlf_line_endings() -> None:
    assert parse_one(SEND_CRLF) == parse_one(SEND)


def test_mixed_line_endings() -> None:
    assert parse_one(b"SEND\r\ndestination:/queue/a\nreceipt:r-1\r\n\nhello\0") == parse_one(SEND)


@pytest.mark.parametrize(
    ("data", "headers", "body"),
    [
        (b"SEND\r\n\r\n\n\nx\0", {}, b"\n\nx"),
        (b"SEND\r\na:1\r\nb:2\r\n\r\nx\n\ny\0", {"a": "1", "b": "2"}, b"x\n\ny"),
        (b"SEND\na:1\r\n\r\nx\n\ny\0", {"a": "1"}, b"x\n\ny"),  # LF command, CR LF headers
        (b"SEND\r\na:1\n\r\nx\0", {"a": "1"}, b"x"),  # a bare LF among CR LF lines
        (b"SEND\r\na:1\nb:2\r\n\r\nx\0", {"a": "1", "b": "2"}, b"x"),
        (b"SEND\na:1\r\n\nx\0", {"a": "1"}, b"x"),  # CR LF line, then a bare LF blank line
        (b"SEND\na:x\ry\n\nz\0", {"a": "x\ry"}, b"z"),  # a raw CR inside a value is kept
        (b"SEND\r\na:x\ry\r\n\r\nz\0", {"a": "x\ry"}, b"z"),
    ],
)
def test_line_ending_variants(data: bytes, headers: dict[str, str], body: bytes) -> None:
    expected = [Frame("SEND", headers, body)]
    assert parse_all(data) == expected
    assert parse_all(data, chunk=1) == expected
    assert parse_all(data * 3) == expected * 3


def test_frame_without_headers_or_body() -> None:
    assert parse_one(NO_HEADERS) == Frame("DISCONNECT", {}, b"")


def test_content_length_body_may_contain_nul() -> None:
    assert parse_one(NUL_BODY).body == b"a\0b\0c"


def test_content_length_zero() -> None:
    assert parse_one(b"SEND\ncontent-length:0\n\n\0").body == b""


def test_content_length_not_followed_by_nul() -> None:
    raises(b"SEND\ncontent-length:2\n\nabc\0", "not followed by NUL")


def test_body_without_content_length_ends_at_first_nul() -> None:
    frames = parse_all(b"SEND\n\nab\0SEND\n\ncd\0")
    assert [f.body for f in frames] == [b"ab", b"cd"]


@pytest.mark.parametrize("sample", SAMPLES)
def test_split_at_every_byte_boundary(sample: bytes) -> None:
    whole = parse_all(sample)
    assert len(whole) == 1
    for cut in range(len(sample) + 1):
        parser = StompParser()
        parser.feed(sample[:cut])
        first = parser.next_frame()
        parser.feed(sample[cut:])
        rest = [first] if first is not None else []
        while (frame := parser.next_frame()) is not None:
            rest.append(frame)
        assert rest == whole, f"cut at {cut}"


@pytest.mark.parametrize("sample", SAMPLES)
def test_one_byte_at_a_time(sample: bytes) -> None:
    assert parse_all(sample, chunk=1) == parse_all(sample)


def test_several_frames_in_one_feed() -> None:
    stream = SEND + b"\n" + NUL_BODY + SEND_CRLF + b"\r\n" + NO_HEADERS
    frames = parse_all(stream)
    assert [f.command for f in frames] == ["SEND", "SEND", "SEND", "DISCONNECT"]
    assert frames[1].body == b"a\0b\0c"


def test_many_frames_in_odd_chunks() -> None:
    frames = [Frame("SEND", {"destination": f"/queue/{i}", "n": str(i)}, b"x" * (i % 7)) for i in range(300)]
    stream = b"".join(encode(f, content_length=bool(i % 2)) + b"\n" * (i % 3) for i, f in enumerate(frames))
    for chunk in (1, 3, 7, 64, 4096):
        parsed = parse_all(stream, chunk=chunk)
        assert [f.headers["n"] for f in parsed] == [str(i) for i in range(300)]
        assert [f.body for f in parsed] == [f.body for f in frames]


def test_large_body_across_many_feeds_is_linear_enough() -> None:
    body = b"y" * (2 * 1024 * 1024)
    data = encode(Frame("SEND", {"destination": "/queue/big"}, body), content_length=False)
    assert parse_all(data, chunk=1024)[0].body == body


def test_next_frame_before_any_feed() -> None:
    assert StompParser().next_frame() is None


# -- heart-beats ---------------------------------------------------------------------------------------


def test_heartbeats_between_frames_are_skipped_and_counted() -> None:
    parser = StompParser()
    frames = parse_all(b"\n\r\n\n" + SEND + b"\r\n\n" + SEND, parser)
    assert len(frames) == 2
    assert parser.heartbeats == 5


def test_heartbeats_alone() -> None:
    parser = StompParser()
    for _ in range(10):
        parser.feed(HEARTBEAT)
        assert parser.next_frame() is None
    parser.feed(b"\r")
    assert parser.next_frame() is None
    assert parser.heartbeats == 10
    parser.feed(b"\n")
    assert parser.next_frame() is None
    assert parser.heartbeats == 11


def test_lone_cr_is_not_a_heartbeat() -> None:
    raises(b"\rSEND\n\n\0", "invalid command")


@pytest.mark.parametrize("before", [b"\0", b"\0\n", b"\n\0\0", b"\r\n\0", b"\0\r\n\0\n"])
def test_nul_before_a_command_is_a_heartbeat(before: bytes) -> None:
    # ActiveMQ skips NULs before a command (a STOMP 1.0 keep-alive habit): so do we, and count them.
    parser = StompParser()
    frames = parse_all(before + SEND + before + SEND, parser)
    assert [f.command for f in frames] == ["SEND", "SEND"]
    assert parser.heartbeats == 2 * (before.count(b"\0") + before.count(b"\n"))


def test_nul_alone_fed_byte_by_byte_leaves_nothing_buffered() -> None:
    parser = StompParser()
    for _ in range(100):
        parser.feed(b"\0")
        assert parser.next_frame() is None
    assert parser.heartbeats == 100 and parser.buffered == 0


def test_nul_between_cr_and_lf_leaves_a_lone_cr() -> None:
    raises(b"\r\0\nSEND\n\n\0", "invalid command")


# -- commands ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"send\n\n\0", b"SE ND\n\n\0", b"\x01\n\n", b"S3ND\n\n\0", b"SEND:\n\n\0", b"S\xc3\x89ND\n\n\0"],
)
def test_invalid_command(data: bytes) -> None:
    raises(data, "invalid command")


def test_empty_command_line_is_a_heartbeat_not_a_frame() -> None:
    parser = StompParser()
    assert parse_all(b"\n\n\n", parser) == [] and parser.heartbeats == 3


def test_garbage_is_rejected_before_its_eol() -> None:
    parser = StompParser()
    parser.feed(b"GET / HTTP/1.1")
    with pytest.raises(ProtocolError, match="invalid command"):
        parser.next_frame()


def test_overlong_command_is_rejected_before_its_eol() -> None:
    parser = StompParser()
    parser.feed(b"A" * 100)
    with pytest.raises(ProtocolError, match="command line too long"):
        parser.next_frame()


def test_unknown_but_wellformed_command_is_the_sessions_business() -> None:
    assert parse_one(b"FROB\n\n\0").command == "FROB"


# -- headers -------------------------------------------------------------------------------------------


def test_repeated_header_first_wins() -> None:
    frame = parse_one(b"MESSAGE\nfoo:World\nfoo:Hello\n\n\0")
    assert frame.headers == {"foo": "World"}


def test_value_may_contain_colon_and_be_empty() -> None:
    frame = parse_one(b"SEND\nurl:http://x:1/\nempty:\n\n\0")
    assert frame.headers == {"url": "http://x:1/", "empty": ""}


def test_whitespace_is_kept() -> None:
    assert parse_one(b"SEND\n a : b \n\n\0").headers == {" a ": " b "}


def test_header_line_without_colon() -> None:
    raises(b"SEND\ndestination\n\n\0", "without ':'")


def test_header_with_empty_name() -> None:
    raises(b"SEND\n:value\n\n\0", "empty name")


def test_utf8_headers() -> None:
    frame = parse_one("SEND\nclé:värde ☃\n\n\0".encode())
    assert frame.headers == {"clé": "värde ☃"}


def test_invalid_utf8_header() -> None:
    raises(b"SEND\nname:\xff\xfe\n\n\0", "not valid UTF-8")


def test_nul_in_header() -> None:
    raises(b"SEND\nname:a\0b\n\n\0", "NUL byte")


# -- escaping per version ------------------------------------------------------------------------------

ESCAPED = b"MESSAGE\na\\cb:x\\\\y\\nz\n\n\0"


def parse_as(data: bytes, version: str) -> Frame:
    parser = StompParser()
    parser.version = version
    frames = parse_all(data, parser)
    assert len(frames) == 1
    return frames[0]


def test_unescape_1_2() -> None:
    assert parse_as(ESCAPED, "1.2").headers == {"a:b": "x\\y\nz"}
    assert parse_as(b"MESSAGE\nk:a\\rb\n\n\0", "1.2").headers == {"k": "a\rb"}


def test_unescape_1_1_has_no_cr_escape() -> None:
    assert parse_as(ESCAPED, "1.1").headers == {"a:b": "x\\y\nz"}
    raises(b"MESSAGE\nk:a\\rb\n\n\0", "undefined escape", version="1.1")


def test_no_unescaping_in_1_0() -> None:
    assert parse_as(ESCAPED, "1.0").headers == {"a\\cb": "x\\\\y\\nz"}
    assert parse_as(b"MESSAGE\nk:a\\tb\n\n\0", "1.0").headers == {"k": "a\\tb"}


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize("bad", [b"a\\tb", b"ab\\", b"\\x"])
def test_undefined_escape_is_fatal(version: str, bad: bytes) -> None:
    raises(b"MESSAGE\nk:" + bad + b"\n\n\0", "undefined escape", version=version)


@pytest.mark.parametrize("command", [b"CONNECT", b"STOMP", b"CONNECTED"])
def test_connect_frames_are_not_unescaped(command: bytes) -> None:
    frame = parse_as(command + b"\nlogin:a\\cb\npasscode:p\\t\\\n\n\0", "1.2")
    assert frame.headers == {"login": "a\\cb", "passcode": "p\\t\\"}


def test_version_governs_later_frames() -> None:
    parser = StompParser()
    parser.feed(b"CONNECT\naccept-version:1.0\n\n\0")
    assert parser.next_frame() is not None
    parser.version = "1.0"
    parser.feed(b"SEND\nk:a\\tb\n\n\0")
    assert parser.next_frame().headers == {"k": "a\\tb"}


def test_unknown_version_refused() -> None:
    with pytest.raises(ValueError):
        StompParser().version = "2.0"


def test_escape_in_fast_and_slow_header_paths_agree() -> None:
    # CR LF endings take the line-by-line path, LF endings the block path.
    assert parse_as(ESCAPED.replace(b"\n", b"\r\n"), "1.2") == parse_as(ESCAPED, "1.2")


# -- limits --------------------------------------------------------------------------------------------


def test_header_line_too_long() -> None:
    raises(b"SEND\nk:" + b"v" * 200 + b"\n\n\0", "header line too long", max_header_length=100)


def test_header_line_at_limit_is_fine_with_crlf() -> None:
    line = b"k:" + b"v" * 98
    assert parse_one(b"SEND\r\n" + line + b"\r\n\r\n\0", max_header_length=100).headers["k"] == "v" * 98


def test_header_line_too_long_detected_before_eol() -> None:
    parser = StompParser(max_header_length=100)
    parser.feed(b"SEND\nk:" + b"v" * 150)
    with pytest.raises(ProtocolError, match="header line too long"):
        parser.next_frame()


def test_too_many_headers() -> None:
    data = b"SEND\n" + b"".join(b"h%d:v\n" % i for i in range(11)) + b"\n\0"
    raises(data, "too many headers", max_header_count=10)
    assert len(parse_one(data, max_header_count=11).headers) == 11


def test_too_many_headers_detected_before_end_of_headers() -> None:
    parser = StompParser(max_header_count=10)
    parser.feed(b"SEND\n" + b"h:v\n" * 11)
    with pytest.raises(ProtocolError, match="too many headers"):
        parser.next_frame()


def test_repeated_headers_count_towards_the_limit() -> None:
    raises(b"SEND\n" + b"h:v\r\n" * 11 + b"\n\0", "too many headers", max_header_count=10)


def test_frame_too_large_without_content_length() -> None:
    parser = StompParser(max_frame_size=1000)
    parser.feed(b"SEND\n\n" + b"x" * 1200)
    with pytest.raises(ProtocolError, match=r"frame too large: \d+ bytes > max 1000"):
        parser.next_frame()


def test_frame_too_large_when_nul_arrives_in_the_same_feed() -> None:
    raises(b"SEND\n\n" + b"x" * 1200 + b"\0", "frame too large", max_frame_size=1000)


def test_frame_too_large_by_content_length_rejected_at_once() -> None:
    parser = StompParser()
    parser.feed(b"SEND\ncontent-length:110000000\n")
    with pytest.raises(ProtocolError, match="frame too large: 110000000 bytes > max 104857600"):
        parser.next_frame()


def test_content_length_plus_headers_too_large() -> None:
    raises(b"SEND\nk:" + b"v" * 50 + b"\ncontent-length:990\n\n", "frame too large", max_frame_size=1000)


def test_frame_exactly_at_limit() -> None:
    head = b"SEND\n\n"
    body = b"x" * (1000 - len(head))
    assert parse_one(head + body + b"\0", max_frame_size=1000).body == body
    cl = b"SEND\ncontent-length:%d\n\n" % (1000 - 25)
    assert len(cl) == 25
    assert len(parse_one(cl + b"x" * 975 + b"\0", max_frame_size=1000).body) == 975


@pytest.mark.parametrize("end", [b"", b"\n\0"])
def test_many_headers_exceeding_frame_size(end: bytes) -> None:
    raises(b"SEND\n" + (b"h:" + b"v" * 90 + b"\n") * 20 + end, "frame too large", max_frame_size=1000)


@pytest.mark.parametrize("value", [b"-5", b"abc", b"1.5", b" 5", b"", b"+5", b"\xd9\xa3", b"9" * 30])
def test_invalid_content_length(value: bytes) -> None:
    raises(b"SEND\ncontent-length:" + value + b"\n\nxxxxx\0", "invalid content-length")


def test_incomplete_data_beyond_the_feed_bound() -> None:
    parser = StompParser(max_frame_size=1024)
    with pytest.raises(ProtocolError, match="receive buffer overflow"):
        parser.feed(b"\n" * (1024 + (1 << 20) + 1))


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StompParser(max_frame_size=0)


# -- errors are sticky ---------------------------------------------------------------------------------


def test_parser_is_dead_after_an_error() -> None:
    parser = StompParser()
    parser.feed(b"bogus\n\n\0")
    with pytest.raises(ProtocolError) as first:
        parser.next_frame()
    with pytest.raises(ProtocolError) as again:
        parser.next_frame()
    assert again.value is first.value
    with pytest.raises(ProtocolError):
        parser.feed(SEND)


def test_escape_error_is_sticky_too() -> None:
    parser = StompParser()
    parser.feed(b"MESSAGE\nk:\\t\n\n\0" + SEND)
    with pytest.raises(ProtocolError, match="undefined escape"):
        parser.next_frame()
    with pytest.raises(ProtocolError, match="undefined escape"):
        parser.next_frame()


# -- encode --------------------------------------------------------------------------------------------


def test_encode_adds_content_length_and_nul() -> None:
    data = encode(Frame("SEND", {"destination": "/queue/a"}, b"hi"))
    assert data == b"SEND\ndestination:/queue/a\ncontent-length:2\n\nhi\0"


def test_encode_without_content_length() -> None:
    assert encode(Frame("SEND", {"d": "x"}, b"hi"), content_length=False) == b"SEND\nd:x\n\nhi\0"


def test_encode_empty_body_has_no_content_length() -> None:
    assert encode(Frame("RECEIPT", {"receipt-id": "1"})) == b"RECEIPT\nreceipt-id:1\n\n\0"


def test_encode_keeps_matching_content_length() -> None:
    data = encode(Frame("SEND", {"content-length": "2"}, b"hi"))
    assert data == b"SEND\ncontent-length:2\n\nhi\0"


def test_encode_rejects_wrong_content_length() -> None:
    with pytest.raises(ValueError, match="does not match"):
        encode(Frame("SEND", {"content-length": "3"}, b"hi"))


def test_encode_nul_body_needs_content_length() -> None:
    with pytest.raises(ValueError, match="NUL"):
        encode(Frame("SEND", {}, b"a\0b"), content_length=False)
    assert parse_one(encode(Frame("SEND", {}, b"a\0b"))).body == b"a\0b"


def test_encode_escapes_per_version() -> None:
    frame = Frame("MESSAGE", {"a:b": "x\\y\nz\rw"})
    assert encode(frame, "1.2") == b"MESSAGE\na\\cb:x\\\\y\\nz\\rw\n\n\0"
    with pytest.raises(ValueError, match="CR"):
        encode(frame, "1.1")
    assert encode(Frame("MESSAGE", {"a:b": "x\\y\nz"}), "1.1") == b"MESSAGE\na\\cb:x\\\\y\\nz\n\n\0"


def test_encode_1_0_cannot_carry_newlines_or_colon_names() -> None:
    assert encode(Frame("MESSAGE", {"k": "a:b\\c"}), "1.0") == b"MESSAGE\nk:a:b\\c\n\n\0"
    with pytest.raises(ValueError):
        encode(Frame("MESSAGE", {"k": "a\nb"}), "1.0")
    with pytest.raises(ValueError):
        encode(Frame("MESSAGE", {"a:b": "v"}), "1.0")


@pytest.mark.parametrize("command", ["CONNECT", "CONNECTED", "STOMP"])
def test_encode_connect_frames_unescaped(command: str) -> None:
    assert encode(Frame(command, {"login": "a\\b"}), "1.2") == command.encode() + b"\nlogin:a\\b\n\n\0"
    with pytest.raises(ValueError):
        encode(Frame(command, {"login": "a\nb"}), "1.2")


@pytest.mark.parametrize(
    "frame", [Frame("send"), Frame(""), Frame("SEND", {"": "v"}), Frame("SEND", {"k": "\0"}), Frame("SÉND")]
)
def test_encode_rejects_unrepresentable_frames(frame: Frame) -> None:
    with pytest.raises(ValueError):
        encode(frame)


def test_encode_parse_round_trip_per_version() -> None:
    frame = Frame("MESSAGE", {"destination": "/queue/ä", "weird:name": "line1\nline2\\"}, b"\0body\0")
    for version in ("1.1", "1.2"):
        parser = StompParser()
        parser.version = version
        (parsed,) = parse_all(encode(frame, version), parser)
        assert parsed.headers == {**frame.headers, "content-length": "6"}
        assert parsed.body == frame.body


def test_heartbeat_constant() -> None:
    assert HEARTBEAT == b"\n"
