"""The ActiveMQ comparison without a broker: samples, medians, ratios, goals, the generated activemq.xml."""

import importlib.util
from pathlib import Path

import defusedxml.ElementTree as ET
import pytest

from benchmarks import compare
from benchmarks.activemq import ensure_available
from benchmarks.activemq_config import Limits, activemq_xml, is_loopback, java_command
from benchmarks.compare_report import (
    ACTIVEMQ,
    CEILING,
    GOALS,
    Goal,
    build_document,
    goal_met,
    median,
    ratio,
    render_text,
    sample,
)

CORE = "{http://activemq.apache.org/schema/core}"


def _result(role, rate, p99=None, errors=()):
    return {role: {"count": 100, "elapsed": 1.0, "rate": rate, "latency_p50": None, "latency_p99": p99,
                   "errors": list(errors)}}


def test_median_skips_missing_rounds():
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0]) == 2.5
    assert median([None, None]) is None and median([]) is None


def test_ratio_reads_greater_than_one_as_batonmq_ahead():
    assert ratio(3000.0, 1500.0) == 2.0
    assert ratio(2.0, 4.0, lower_is_better=True) == 2.0  # our p99 half of theirs
    assert ratio(None, 1.0) is None and ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None and ratio(0.0, 1.0, lower_is_better=True) is None


def test_goal_met_at_the_goal_and_not_below():
    goal = Goal("rate", 2.0)
    assert goal_met(2.0, goal) is True
    assert goal_met(1.99, goal) is False
    assert goal_met(None, goal) is None
    assert GOALS["fanout-10"].ratio == 1.5 and GOALS["latency-100"].lower_is_better


def test_sample_refuses_failed_runs():
    assert sample(_result("produce", 1200.0), "produce", "rate") == 1200.0
    assert sample({"error": "broker died"}, "produce", "rate") is None
    assert sample(_result("produce", 1200.0, errors=["LinkError"]), "produce", "rate") is None
    assert sample(_result("consume", 10.0), "produce", "rate") is None  # the shown role is missing
    assert sample(_result("consume", 100.0, p99=None), "consume", "latency_p99") is None
    zero = _result("produce", 0.0)
    zero["produce"]["count"] = 0
    assert sample(zero, "produce", "rate") is None


def _runs(key, role, figures, metric="rate"):
    """figures: {target: [per-round value or None]}."""
    runs = []
    for target, values in figures.items():
        for number, value in enumerate(values, start=1):
            if value is None:
                result = {"error": "x"}
            elif metric == "rate":
                result = _result(role, value, p99=1.0)
            else:
                result = _result(role, 100.0, p99=value)
            runs.append({"round": number, "target": target, "scenario": key, "result": result})
    return runs


def _document(runs, keys, stores=("journal", "leveldb")):
    labels = {**{s: f"BatonMQ {s}" for s in stores}, ACTIVEMQ: "ActiveMQ 5.17.2", CEILING: "sink"}
    return build_document(runs, keys, list(stores), 3, labels, {"cores": 2}, {"quick": True})


def test_document_medians_ratios_and_goals():
    runs = _runs("receipted-1", "produce", {"journal": [3000.0, 2800.0, 2600.0],
                                            "leveldb": [2000.0, None, 1800.0],
                                            ACTIVEMQ: [1300.0, 1400.0, 1200.0],
                                            CEILING: [20000.0, 21000.0, 22000.0]})
    runs += _runs("latency-100", "consume", {"journal": [1.5, 1.6, 1.4], "leveldb": [None, None, None],
                                             ACTIVEMQ: [3.0, 3.2, 3.4], CEILING: [0.5, 0.5, 0.5]},
                  metric="latency_p99")
    document = _document(runs, ["receipted-1", "latency-100"])
    receipted, latency = document["scenarios"]
    assert receipted["medians"] == {"journal": 2800.0, "leveldb": 1900.0, ACTIVEMQ: 1300.0, CEILING: 21000.0}
    assert receipted["ratios"]["journal"] == pytest.approx(2800 / 1300)
    assert receipted["goal_met"] == {"journal": True, "leveldb": False}
    assert receipted["round_ratios"]["leveldb"][1] is None
    assert latency["ratios"]["journal"] == pytest.approx(3.2 / 1.5)  # ActiveMQ's p99 over ours
    assert latency["goal_met"] == {"journal": True, "leveldb": None}
    assert document["goals"] == {"met": 2, "missed": 1, "no_data": 1, "total": 4}
    text = render_text(document)
    assert "2.15x (2.00-2.31) met" in text and "MISSED" in text and "no data" in text
    assert "1,900 (2/3)" in text  # a median over fewer rounds says so


def test_rounds_rotate_so_no_target_always_goes_first():
    targets = ["journal", "leveldb", ACTIVEMQ, CEILING]
    firsts = [compare.rotation(targets, n)[0] for n in range(1, 5)]
    assert sorted(firsts) == sorted(targets)
    assert compare.rotation(targets, 5) == targets


def test_stores_option():
    assert compare.parse_stores("journal, appendlog,journal") == ["journal", "appendlog"]
    with pytest.raises(Exception, match="stores are among"):
        compare.parse_stores("sqlite")


def test_activemq_xml_is_well_formed_with_one_loopback_stomp_connector(tmp_path):
    text = activemq_xml(tmp_path / "data", "127.0.0.1", 61999, Limits(memory_mb=300))
    root = ET.fromstring(text.encode("utf-8"))
    broker = root.find(f"{CORE}broker")
    assert broker is not None and broker.get("useJmx") == "false"
    connectors = broker.findall(f"{CORE}transportConnectors/{CORE}transportConnector")
    assert [(c.get("name"), c.get("uri")) for c in connectors] == [("stomp", "stomp://127.0.0.1:61999")]
    assert not list(root.iter(f"{CORE}networkConnectors"))
    assert "61616" not in text and "jetty" not in text.lower() and "0.0.0.0" not in text
    kahadb = broker.find(f"{CORE}persistenceAdapter/{CORE}kahaDB")
    assert kahadb is not None and Path(kahadb.get("directory")).parent == tmp_path / "data"
    assert 'limit="300 mb"' in text


def test_activemq_xml_refuses_other_addresses(tmp_path):
    for host in ("0.0.0.0", "192.168.1.5", "localhost-ish", "::"):
        with pytest.raises(ValueError):
            activemq_xml(tmp_path, host, 61613)
    assert is_loopback("127.0.0.3") and is_loopback("::1") and not is_loopback("example.org")


def test_activemq_xml_escapes_paths(tmp_path):
    root = ET.fromstring(activemq_xml(tmp_path / 'a "b" & <c>', "127.0.0.1", 1).encode("utf-8"))
    assert root.find(f"{CORE}broker").get("dataDirectory").endswith('a "b" & <c>')


def test_java_command_bounds_the_heap_and_runs_in_the_foreground(tmp_path):
    cmd = java_command("/usr/bin/java", Path("/usr/share/activemq"), tmp_path, Limits(heap_mb=768))
    assert "-Xmx768m" in cmd
    assert cmd[-4:] == ["-jar", "/usr/share/activemq/bin/activemq.jar", "start",
                        f"xbean:file:{tmp_path / 'conf' / 'activemq.xml'}"]


def test_no_activemq_says_so_and_exits_0(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert "bin/activemq.jar is missing" in ensure_available(missing)  # only the Debian home is installed
    assert compare.main(["--activemq-home", str(missing), "--json", str(tmp_path / "c.json")]) == 0
    assert "ActiveMQ is not available" in capsys.readouterr().out
    assert not (tmp_path / "c.json").exists()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs the bench extra")
def test_plot_writes_a_png(tmp_path):
    from benchmarks.compare_plot import plot

    runs = _runs("receipted-1", "produce", {"journal": [2.0] * 3, "leveldb": [None] * 3,
                                            ACTIVEMQ: [1.0] * 3, CEILING: [9.0] * 3})
    document = _document(runs, ["receipted-1"])
    document["machine"]["when"] = "2026-12-02T00:00:00"
    plot(document, str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
