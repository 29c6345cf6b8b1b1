"""The pure decisions of failover: is a lost link worth a reconnect, is a refused frame worth a
resend, and what to write on the new connection. No I/O here; `failover.py` acts on the answers.

The rules, after ActiveMQ's FailoverTransport (design.md section 5):

- A link lost to EOF, a socket error or a heart-beat timeout is reconnected.
- A link ended by an ERROR frame (STOMP 1.2 "ERROR": the server closes after it) is reconnected
  too, unless the ERROR says that *we* broke the protocol: reconnecting would only repeat the
  fault, so the client fails instead. A broker-side condition (store write failed, not master any
  more, too many connections, internal error) is transient: the frame it names is resent after the
  reconnect. Any other refusal (bad destination, destination full, ...) fails that one frame.
- The replay re-SUBSCRIBEs every live subscription with its original frame (same id, ack mode,
  selector, prefetch, durable name), then resends every un-receipted SEND in its original order
  with its original `batonmq.producer-id`, so the broker's duplicate detection drops a copy whose
  first RECEIPT was lost.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from transports.client.ledger import PendingSend
from transports.stomp.frame import Frame

if TYPE_CHECKING:
    from transports.client.subscription import Subscription

# ERROR messages that mean our frames broke STOMP (the broker's ClientError names and the codec's
# ProtocolError texts). Matched as prefixes of the ERROR's `message` header, case-insensitively.
PROTOCOL_FAULTS: tuple[str, ...] = (
    "unknown command", "invalid command", "not connected", "already connected",
    "unsupported protocol version", "missing id", "missing ack id", "missing destination",
    "missing transaction", "invalid ack mode", "duplicate subscription", "duplicate transaction",
    "unknown ack id", "unknown transaction", "frame too large", "frame body", "header line",
    "too many headers", "invalid content-length", "undefined escape sequence", "invalid heart-beat",
    "receive buffer overflow", "command line too long",
)
# Refusals caused by the broker's state, not by the frame: the frame is resent after a reconnect.
TRANSIENT_REFUSALS: tuple[str, ...] = (
    "message not persisted", "broker is not master", "too many connections", "internal error",
    "shutting down", "broker stopping",
)
# This many links in a row ended by ERROR with no receipt in between: stop, it would go on for ever.
MAX_ERROR_STREAK = 3


class Verdict(enum.Enum):
    RECONNECT = "reconnect"
    FAIL = "fail"


def _matches(message: str, prefixes: tuple[str, ...]) -> bool:
    lowered = message.strip().lower()
    return any(lowered.startswith(prefix) for prefix in prefixes)


def is_protocol_fault(broker_error: str) -> bool:
    return _matches(broker_error, PROTOCOL_FAULTS)


def is_transient_refusal(broker_error: str) -> bool:
    """Whether a frame refused with this ERROR should be resent after the reconnect."""
    return _matches(broker_error, TRANSIENT_REFUSALS)


def judge_loss(broker_error: str | None, error_streak: int) -> Verdict:
    """What to do after a lost link. `broker_error` is the ERROR message that ended it (None for
    EOF, reset, heart-beat timeout); `error_streak` counts links ended by ERROR in a row, this one
    included, without a receipt or message in between."""
    if broker_error is None:
        return Verdict.RECONNECT
    if is_protocol_fault(broker_error) or error_streak >= MAX_ERROR_STREAK:
        return Verdict.FAIL
    return Verdict.RECONNECT


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """What to write on a new connection, in this order."""

    subscribes: tuple[tuple[str, Frame], ...]  # (subscription id, SUBSCRIBE frame)
    resends: tuple[PendingSend, ...]

    def __len__(self) -> int:
        return len(self.subscribes) + len(self.resends)


def plan_replay(subscriptions: Iterable[Subscription], pending: Iterable[PendingSend]) -> ReplayPlan:
    """Subscriptions first (so messages resent to a queue we consume can reach us), then sends in
    their original order. Each SUBSCRIBE is a fresh copy without the old connection's receipt id."""
    subscribes = tuple((sub.id, resubscribe_frame(sub.frame)) for sub in subscriptions if not sub.ended)
    resends = tuple(entry for entry in pending if not entry.future.done())
    return ReplayPlan(subscribes, resends)


def resubscribe_frame(original: Frame) -> Frame:
    headers = {k: v for k, v in original.headers.items() if k != "receipt"}
    return Frame("SUBSCRIBE", headers)
