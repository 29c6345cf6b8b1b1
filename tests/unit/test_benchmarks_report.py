"""Percentiles, summaries and tables of the benchmarks (benchmarks/report.py)."""

import json
import statistics

import pytest

from benchmarks.report import machine_info, percentile, render_table, summarize, write_json


def test_percentile_interpolates_between_closest_ranks():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]  # order must not matter
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 25) == 2.0
    assert percentile(values, 90) == pytest.approx(4.6)
    assert percentile([7.0], 99) == 7.0


def test_percentile_agrees_with_statistics_inclusive_quantiles():
    values = [float((i * 37) % 101) for i in range(250)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (1, 10, 50, 90, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1])


def test_percentile_of_nothing_is_missing_not_zero():
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_skips_missing_values():
    summary = summarize([None, 10.0, 20.0, None, 30.0])
    assert summary == {"p50": 20.0, "p90": 28.0, "p99": 29.8, "max": 30.0}
    assert summarize([None, None]) == {"p50": None, "p90": None, "p99": None, "max": None}


def test_render_table_pads_columns():
    text = render_table(["a", "long header"], [["wide cell", "1"], ["x", "22"]])
    lines = text.splitlines()
    assert lines[0] == "| a         | long header |"
    assert lines[1] == "|-----------|-------------|"
    assert lines[3] == "| x         | 22          |"
    assert len({len(line) for line in lines}) == 1


def test_machine_info_and_json(tmp_path):
    info = machine_info()
    assert info["cores"] and info["platform"] and info["python"]
    write_json(tmp_path / "out.json", {"machine": info})
    assert json.loads((tmp_path / "out.json").read_text())["machine"]["cores"] == info["cores"]
