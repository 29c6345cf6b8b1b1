"""Counters a client keeps about its own run, for tools and tests (`client.stats`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class ClientStats:
    sent: int = 0  # send() calls that returned
    receipted: int = 0  # RECEIPTs for tracked sends (each counted once)
    resent: int = 0  # transmissions of a tracked send after the first, on a new connection
    reconnects: int = 0  # successful reconnects after a lost connection
    refused: int = 0  # tracked sends the broker refused with ERROR
    stale_acks: int = 0  # ACK/NACKs ignored because their message came before a failover
    first_refusal: str | None = None

    def fields(self) -> dict[str, object]:
        return asdict(self)
