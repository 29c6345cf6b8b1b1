"""A store fence for tests that open stores directly."""

from __future__ import annotations

from stores.base import Fence


class EpochFence(Fence):
    """A master of `epoch` that never learns it was deposed (it checks nothing)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def check(self) -> None:
        return None
