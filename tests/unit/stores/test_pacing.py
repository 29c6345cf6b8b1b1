"""The periodic maintenance pace (stores/pacing.py): the configured interval for a cheap pass,
a gap that keeps an expensive one to MAX_SHARE of the time."""

import pytest

from stores.pacing import MAX_SHARE, next_due, stretched_gap


def test_a_cheap_pass_keeps_the_configured_interval() -> None:
    assert next_due(100.0, 0.01, 5.0) == 105.0  # 100k live messages: about 10 ms a checkpoint
    assert next_due(100.0, 0.0, 5.0) == 105.0


@pytest.mark.parametrize("took", [0.3, 1.0, 2.5])
def test_an_expensive_pass_takes_at_most_its_share_of_the_time(took: float) -> None:
    finished = 50.0
    due = next_due(finished, took, 5.0)
    assert due > finished + 5.0
    assert took / (took + (due - finished)) == pytest.approx(MAX_SHARE)


def test_the_gap_grows_with_the_cost_and_is_never_negative() -> None:
    assert stretched_gap(-1.0) == 0.0
    gaps = [stretched_gap(t) for t in (0.1, 0.5, 1.0, 2.0)]
    assert gaps == sorted(gaps) and gaps[0] < 5.0 < gaps[-1]
