"""STOMP command names, grouped by who may send them (STOMP 1.2, "Client Frames" / "Server Frames")."""

from __future__ import annotations

CLIENT_COMMANDS = frozenset(
    {
        "CONNECT",
        "STOMP",
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "ACK",
        "NACK",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "DISCONNECT",
    }
)
SERVER_COMMANDS = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})

# STOMP 1.2, "Value Encoding": CONNECT and CONNECTED frames do not escape the colon or backslash in
# header values, for backward compatibility with 1.0 peers that do not know which version they will get.
# STOMP is the 1.1+ spelling of CONNECT, so it follows the same rule.
RAW_HEADER_COMMANDS = frozenset({"CONNECT", "STOMP", "CONNECTED"})

VERSIONS = ("1.0", "1.1", "1.2")

# BatonMQ's duplicate-detection header: the producer's own id for one message, kept across resends
# (the broker drops a copy it already stored; design.md section 3, "Duplicate detection").
PRODUCER_ID_HEADER = "batonmq.producer-id"
