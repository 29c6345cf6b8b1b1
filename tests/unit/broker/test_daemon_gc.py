"""The daemon's collector settings: fewer collections, the start-up objects frozen out of them."""

from __future__ import annotations

import gc

from broker.daemon import gcpauses
from broker.daemon.gcpauses import PAUSES, GcPauses
from broker.daemon.run import GC_THRESHOLDS, tune_gc


def test_tune_gc_freezes_the_start_up_objects_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 1000  # modules, classes and functions imported so far
        assert PAUSES._callback in gc.callbacks  # pauses are watched
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # cycles made later are still found
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        PAUSES.uninstall()


def test_collector_pauses_are_counted_per_generation_and_slow_ones_noted(monkeypatch) -> None:
    pauses = GcPauses()
    pauses.install()
    try:
        gc.collect()
        assert pauses.collections[2] == 1 and pauses.seconds[2] > 0
        assert pauses.longest[2] == pauses.seconds[2]
        assert pauses.take_slow() == [] or pauses.longest[2] >= gcpauses.SLOW_PAUSE
        monkeypatch.setattr(gcpauses, "SLOW_PAUSE", 0.0)
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        gc.collect(1)
        slow = pauses.take_slow()  # an automatic young collection may have come in between
        assert any(generation == 1 and pause > 0 and freed >= 1 for generation, pause, freed in slow)
        assert pauses.take_slow() == []
    finally:
        pauses.uninstall()
    assert pauses._callback not in gc.callbacks
