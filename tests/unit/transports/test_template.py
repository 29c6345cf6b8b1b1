"""A frame template plus one receiver's headers is byte for byte the frame `encode` makes, and fails
where `encode` fails: for every version's escaping, with and without a body or content-length."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.stomp import Frame, StompParser, encode
from transports.stomp.template import frame_template, render

PROPERTY = settings(max_examples=400, deadline=None)
VERSIONS = st.sampled_from(["1.0", "1.1", "1.2"])
# Every character with a meaning in a header line, beside plain ones.
TEXT = st.text(alphabet=st.sampled_from(list("ab:\\\r\n\0é-1")), max_size=6)
HEADERS = st.dictionaries(TEXT, TEXT, max_size=5)
BODIES = st.sampled_from([b"", b"x", b"hello\nworld", b"a\0b"])


def outcome(make: object) -> bytes | str:
    """The bytes made, or 'ValueError' (messages may word the failure differently)."""
    try:
        return make()  # type: ignore[operator,no-any-return]
    except ValueError:
        return "ValueError"


def merged(common: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    return {**common, **extra}


@PROPERTY
@given(common=HEADERS, extra=HEADERS, body=BODIES, version=VERSIONS,
       command=st.sampled_from(["MESSAGE", "CONNECTED", "ERROR"]), content_length=st.booleans())
def test_render_is_encode_of_the_merged_headers(common: dict[str, str], extra: dict[str, str], body: bytes,
                                                version: str, command: str, content_length: bool) -> None:
    extra = {k: v for k, v in extra.items() if k not in common and k != "content-length"}
    expected = outcome(lambda: encode(Frame(command, merged(common, extra), body), version, content_length))

    def made() -> bytes:
        return render(frame_template(command, common, body, version, content_length), extra)

    assert outcome(made) == expected


@PROPERTY
@given(extra=HEADERS, version=VERSIONS)
def test_one_template_serves_many_receivers(extra: dict[str, str], version: str) -> None:
    common = {"destination": "/topic/a:b", "message-id": "ID:host-1:7", "x": "back\\slash"}
    template = frame_template("MESSAGE", common, b"payload", version)
    for sub_id in ("1", "sub:2", "3"):
        receiver = {"subscription": sub_id, **{k: v for k, v in extra.items() if k not in template.names}}
        frame = Frame("MESSAGE", merged(common, receiver), b"payload")
        expected = outcome(lambda f=frame: encode(f, version))
        assert outcome(lambda h=receiver: render(template, h)) == expected


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_rendered_frame_parses_back_with_the_receivers_headers(version: str) -> None:
    common = {"destination": "/topic/t", "message-id": "ID:b-1:1:1", "note": "a:b\\c\nd"}
    template = frame_template("MESSAGE", common, b"body\0with nul", version)
    parser = StompParser()
    parser.version = version
    parser.feed(render(template, {"subscription": "s:1", "ack": "7", "redelivered": "true"}))
    frame = parser.next_frame()
    assert frame == Frame("MESSAGE", {**common, "subscription": "s:1", "ack": "7", "redelivered": "true",
                                      "content-length": "13"}, b"body\0with nul")


@pytest.mark.parametrize("name", ["destination", "content-length"])
def test_an_extra_header_may_not_repeat_a_common_one(name: str) -> None:
    template = frame_template("MESSAGE", {"destination": "/topic/t"}, b"x")
    with pytest.raises(ValueError, match=name):
        render(template, {name: "other"})


def test_what_encode_refuses_the_template_refuses() -> None:
    with pytest.raises(ValueError, match="CR"):
        frame_template("MESSAGE", {"h": "a\rb"}, b"", "1.1")
    with pytest.raises(ValueError, match="line break"):
        render(frame_template("MESSAGE", {}, b"", "1.0"), {"subscription": "a\nb"})
    with pytest.raises(ValueError, match="content-length"):
        frame_template("MESSAGE", {"content-length": "3"}, b"four")
    with pytest.raises(ValueError, match="command"):
        frame_template("message", {}, b"")
    with pytest.raises(ValueError, match="version"):
        frame_template("MESSAGE", {}, b"", "2.0")
