"""The STOMP frame and the peer-fault error."""

from __future__ import annotations

from dataclasses import dataclass, field

from config.errors import BrokerError


class ProtocolError(BrokerError):
    """The peer broke the protocol: answer with an ERROR frame, then close."""


@dataclass(slots=True)
class Frame:
    command: str
    # Insertion-ordered; a repeated header keeps its first value (STOMP 1.2 "Repeated Header Entries").
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)
