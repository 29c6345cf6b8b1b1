from __future__ import annotations

import pytest

from tests.helpers.cluster import HOSTS, BrokerProc, free_port, stop_all


@pytest.fixture
def cluster(tmp_path):
    """Factory: start `n` brokers on 127.0.0.2.. sharing one data directory and one port."""
    started: list[BrokerProc] = []
    port = free_port()

    def make(n: int = 3, store: str = "journal", extra: tuple[str, ...] = ()) -> list[BrokerProc]:
        brokers = [
            BrokerProc(f"b{i + 1}", HOSTS[i], port, tmp_path / "shared", store=store, extra=extra)
            for i in range(n)
        ]
        for broker in brokers:
            started.append(broker.start())
        return brokers

    yield make
    stop_all(started)
