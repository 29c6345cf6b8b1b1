"""The transport seam: the small interfaces between the broker, the STOMP connection and the I/O.

Three layers, each seeing the next only through a Protocol here:

    broker (FrameHandler)  <- frames ->  Connection (FrameLink)  <- bytes ->  a transport (Wire)

`transports.connection.Connection` is written once: it feeds the sans-I/O parser, keeps the bounded
queue of pending frames, negotiates nothing but applies heart-beats, pauses delivery when the peer is
slow and closes gracefully. A transport only moves bytes: TCP (and TLS next) through an asyncio
Protocol, WebSocket later through whole messages. `transports.server.StompServer` owns a listener's
connections, its connection limit and its staged shutdown, whatever the transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from transports.memory import Share
from transports.stomp.frame import Frame

_SANITIZE = str.maketrans({"\r": " ", "\n": " ", "\0": " "})


class FrameHandler(Protocol):
    """The broker's side of one connection (broker.engine.session.Session)."""

    async def handle(self, frame: Frame) -> None:
        """Handle one frame; frames of a connection arrive strictly in order, one at a time."""

    def connection_lost(self, exc: BaseException | None) -> None:
        """The connection is gone (closed by either side); called once."""

    def writing_resumed(self) -> None:
        """The transport drained below its low-water mark: dispatch may resume."""

    async def finish(self) -> None:
        """Graceful shutdown: return once the work of frames already handled is done (receipts sent)."""


class FrameLink(Protocol):
    """What a FrameHandler sees of its connection: frames out, negotiated settings in, who the peer is.

    `scheme` is the connector's URI scheme (`tcp`, `stomp`; later `ssl`, `ws`) and `peer_certificate`
    the TLS client certificate as `ssl.SSLObject.getpeercert()` gives it (None without TLS), so that
    an authenticator can decide by how the client came in.
    """

    peer: str  # the client's address, "host:port"
    scheme: str
    peer_certificate: Mapping[str, object] | None

    @property
    def writable(self) -> bool:
        """False while the peer reads slower than we write: hold deliveries back."""

    @property
    def memory(self) -> Share | None:
        """The connection's share of the memory budget (transports/memory.py); None: none kept."""

    def send(self, frame: Frame) -> bool:
        """Encode and write one frame; False if the connection is closing (the frame is dropped)."""

    def send_encoded(self, data: bytes) -> bool:
        """Write one frame encoded already with the negotiated version (a template's rendering,
        transports/stomp/template.py); False if the connection is closing."""

    def set_version(self, version: str) -> None:
        """The STOMP version CONNECT negotiated: frames are parsed and encoded by its rules from now on."""

    def start_heartbeat(self, send_ms: int, expect_ms: int) -> None:
        """CONNECT is complete (this ends the connect timeout): send a beat every `send_ms`; a peer
        silent for longer than the grace × `expect_ms` is dropped."""

    def close(self, error: Frame | None = None) -> None:
        """Send `error` (if any), flush what is written, close."""


class Wire(Protocol):
    """What a transport supplies to a Connection: the I/O of one peer, nothing of STOMP.

    Every `write` carries exactly one encoded frame or one heart-beat EOL, so a message-oriented
    transport (WebSocket) sends each as one message; a byte stream just writes it. The transport in
    turn calls the Connection's `received`, `pause_writing`, `resume_writing` and `connection_lost`.
    """

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer without blocking; call `pause_writing` past a high-water mark."""

    def pause_reading(self) -> None:
        """Deliver no more `received` calls until `resume_reading` (back-pressure on the peer)."""

    def resume_reading(self) -> None: ...

    def write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the peer (counted in the memory budget while paused)."""

    def is_closing(self) -> bool: ...

    def close(self) -> None:
        """Flush what was written, then close; `connection_lost` follows."""

    def abort(self) -> None:
        """Close at once, unsent bytes dropped; `connection_lost` follows."""


def error_frame(message: str, detail: str = "") -> Frame:
    """An ERROR frame whose `message` header survives any version's encoding (no CR, LF or NUL)."""
    return Frame("ERROR", {"message": message.translate(_SANITIZE)[:500], "content-type": "text/plain"},
                 (detail or message).encode("utf-8", "replace"))


def flatten_headers(frame: Frame) -> Frame:
    """The frame with headers a STOMP 1.0 peer can carry: no CR, LF, NUL, and no colon in a name."""
    headers = {k.translate(_SANITIZE).replace(":", "_"): v.translate(_SANITIZE)
               for k, v in frame.headers.items()}
    return Frame(frame.command, headers, frame.body)
