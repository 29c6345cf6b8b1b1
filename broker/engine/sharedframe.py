"""The MESSAGE frame that a topic fan-out's copies of one message share, encoded once per version.

A fan-out to a thousand subscribers used to build and encode a thousand MESSAGE frames that differ
only in `subscription` (and `ack`, `redelivered`): a copy of the headers, the escaping of every
header and the frame's assembly, per subscriber. The copies now carry one SharedFrame; the first
subscriber of each STOMP version to be written to encodes the common part (the message's headers,
`destination`, `message-id`, the body's framing) as a template (transports/stomp/template.py), and
every subscriber adds its own headers to it. The frame sent is byte for byte the one built header by
header.

A template serves a copy only while the copy still has the content it was made from: a copy whose
headers were replaced since (a message group's first message for its consumer, a move to the DLQ)
is encoded on its own, as is any message a subscriber would see differently (a temporary
destination named as that connection knows it) or whose headers the template cannot carry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transports.stomp.template import FrameTemplate, frame_template

if TYPE_CHECKING:
    from broker.engine.message import Message

# Set per subscriber (subscription.py): a message's own headers must not hold them for a template.
SUBSCRIBER_HEADERS = frozenset({"destination", "message-id", "subscription", "ack", "redelivered",
                                "content-length"})


class SharedFrame:
    """The templates of one message's MESSAGE frame, by STOMP version (None: that version cannot
    share one; each copy is then encoded on its own)."""

    __slots__ = ("_by_version", "_headers", "_body", "_destination", "_message_id")

    def __init__(self, message: Message) -> None:
        self._headers = message.headers
        self._body = message.body
        self._destination = message.destination
        self._message_id = message.message_id
        self._by_version: dict[str, FrameTemplate | None] = {}

    def template(self, message: Message, version: str) -> FrameTemplate | None:
        """The template for `message` in `version`, or None if the copy must be encoded on its own."""
        if not (message.headers is self._headers and message.body is self._body
                and message.destination == self._destination and message.message_id == self._message_id):
            return None
        try:
            return self._by_version[version]
        except KeyError:
            template = self._by_version[version] = self._make(version)
            return template

    def _make(self, version: str) -> FrameTemplate | None:
        if not SUBSCRIBER_HEADERS.isdisjoint(self._headers):
            return None
        common = dict(self._headers)
        common["destination"] = self._destination
        common["message-id"] = self._message_id
        try:
            return frame_template("MESSAGE", common, self._body, version)
        except ValueError:  # the Frame path flattens what this version cannot carry
            return None
