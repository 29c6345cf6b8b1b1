"""The daemon's collector settings: fewer collections, the start-up objects frozen out of them."""

from __future__ import annotations

import gc

from broker.daemon.run import GC_THRESHOLDS, tune_gc


def test_tune_gc_freezes_the_start_up_objects_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 1000  # modules, classes and functions imported so far
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # cycles made later are still found
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
