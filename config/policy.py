"""Per-destination policies (`[[policy]]`), as ActiveMQ's <policyEntry queue="ORDERS.>" memoryLimit=...>.

Each entry names one queue or one topic pattern (`.`-separated, `*` one element, `>` the rest) and
overrides, for the destinations it is chosen for, the broker-wide memory limit of a destination
(limits.destination_memory_limit), the store cursor's window (store.cursor_window) and whether a
producer is held back when the destination is full (flow control) or refused at once. Which entry a
destination gets is ActiveMQ's rule (broker/engine/policies.py, docs/memory.md "Per-destination
policies"); a destination no entry matches keeps the broker-wide settings.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.security import check_pattern
from config.units import parse_size

# A configuration is read whole and each new destination looks through these entries.
MAX_POLICIES = 1000
# ActiveMQ's cursorMemoryHighWaterMark default: a cursor pages at 70% of the destination's limit.
HIGH_WATER_PERCENT = 70


class DestinationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)

    queue: str | None = None
    topic: str | None = None
    # Undelivered bytes the destination may hold (its share of limits.memory_budget).
    memory_limit: int | None = Field(None, ge=1024)
    # Bytes of its waiting messages a durable queue keeps in memory (docs/paging.md). Unset: the
    # smaller of store.cursor_window and 70% of memory_limit, or store.cursor_window without one.
    cursor_window: int | None = Field(None, ge=1024)
    # False: a producer that would be held back is refused at once (ActiveMQ's sendFailIfNoSpace for
    # this destination) instead of waiting limits.producer_flow_control_timeout.
    producer_flow_control: bool = True

    @field_validator("memory_limit", "cursor_window", mode="before")
    @classmethod
    def _sizes(cls, value: object) -> object:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("queue", "topic")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            if "," in value:
                raise ValueError(f"{value[:60]!r}: one pattern per [[policy]] (no comma-separated list)")
            check_pattern(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DestinationPolicy:
        if (self.queue is None) == (self.topic is None):
            raise ValueError("a policy names exactly one of queue or topic")
        if self.memory_limit is not None and self.cursor_window is not None \
                and self.cursor_window > self.memory_limit:
            raise ValueError(f"{self.label}: cursor_window ({self.cursor_window}) exceeds memory_limit "
                             f"({self.memory_limit})")
        return self

    @property
    def kind(self) -> str:
        return "queue" if self.queue is not None else "topic"

    @property
    def pattern(self) -> str:
        return self.queue if self.queue is not None else str(self.topic)

    @property
    def label(self) -> str:
        """How error messages and logs name this entry: policy[queue="ORDERS.>"]."""
        return f'policy[{self.kind}="{self.pattern}"]'

    def window(self, store_window: int) -> int:
        """The cursor window this entry gives, store.cursor_window being `store_window`."""
        if self.cursor_window is not None:
            return self.cursor_window
        if self.memory_limit is not None:
            return max(1024, min(store_window, self.memory_limit * HIGH_WATER_PERCENT // 100))
        return store_window


def check_policies(policies: list[DestinationPolicy]) -> list[DestinationPolicy]:
    """No pattern twice for the same kind: which of the two would apply is a guess."""
    seen: set[tuple[str, str]] = set()
    for policy in policies:
        key = (policy.kind, policy.pattern)
        if key in seen:
            raise ValueError(f"{policy.label} is configured twice")
        seen.add(key)
    return policies
