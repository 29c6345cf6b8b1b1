"""Following is an optional capability of the store contract: asked through the registry only."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.ha.standby import Standby
from config.model import BrokerConfig, StoreSettings
from stores.base import Op, Recovered
from stores.registry import STORES, create_follower, store_class

FOLLOWED = {"journal", "appendlog"}  # the stores whose slaves keep a hot standby, so far


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
    assert (follower is not None) == (kind in FOLLOWED)
    standby = Standby.for_config(BrokerConfig(data_dir=tmp_path, store=StoreSettings(type=kind)))
    assert (standby is not None) == (kind in FOLLOWED)
    if follower is not None:
        follower.close()


@pytest.mark.parametrize("source", sorted(FOLLOWED))
async def test_a_store_refuses_another_store_types_follower(tmp_path: Path, source: str) -> None:
    follower = create_follower(tmp_path, StoreSettings(type=source), Sink())
    assert follower is not None
    for kind in sorted(STORES):
        if kind != source:
            store = store_class(kind)(tmp_path / kind, StoreSettings(type=kind))
            assert store.follow_from(follower) is False
            assert store.warm is False
    follower.close()
