"""Following is an optional capability of the store contract: asked through the registry only."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.ha.standby import Standby
from config.model import BrokerConfig, StoreSettings
from stores.base import Op, Recovered
from stores.registry import STORES, create_follower, store_class


class Sink:
    def __init__(self) -> None:
        self.resets: list[Recovered] = []
        self.changes: list[list[Op]] = []

    def reset(self, recovered: Recovered) -> None:
        self.resets.append(recovered)

    def changed(self, ops: list[Op]) -> None:
        self.changes.append(ops)


@pytest.mark.parametrize("kind", sorted(STORES))
def test_every_store_answers_whether_it_can_be_followed(kind: str, tmp_path: Path) -> None:
    follower = create_follower(tmp_path, StoreSettings(type=kind), Sink())
    assert (follower is not None) == (kind == "journal")  # the journal alone offers it, so far
    standby = Standby.for_config(BrokerConfig(data_dir=tmp_path, store=StoreSettings(type=kind)))
    assert (standby is not None) == (kind == "journal")
    if follower is not None:
        follower.close()


async def test_a_store_without_the_capability_refuses_a_follower(tmp_path: Path) -> None:
    journal_follower = create_follower(tmp_path, StoreSettings(type="journal"), Sink())
    assert journal_follower is not None
    for kind in ("leveldb", "appendlog"):
        store = store_class(kind)(tmp_path / kind, StoreSettings(type=kind))
        assert store.follow_from(journal_follower) is False
        assert store.warm is False
    journal_follower.close()
