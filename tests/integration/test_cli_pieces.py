"""The pure parts of the command line: argument parsing, body generation, duplicate counting,
the progress line. (No sockets; they live here beside the subprocess tests of the same tools.)"""

from __future__ import annotations

import io

import pytest

from broker.daemon.cli import build_parser, start_overrides
from broker.tools.consume import DuplicateTracker
from broker.tools.produce import make_body
from broker.tools.progress import Progress, render
from transports.stomp.commands import PRODUCER_ID_HEADER


def test_start_flags_become_nested_overrides():
    args = build_parser().parse_args([
        "start", "--name", "b2", "--data", "/d", "--store", "leveldb", "--connector", "tcp://127.0.0.2:1",
        "--connector", "tcp://127.0.0.3:1", "--metrics-port", "9100", "--lock-acquire-interval", "0.1",
        "--lock-keepalive-period", "0.5", "--lock-timeout", "4", "--on-lock-lost", "slave",
        "--metrics-host", "0.0.0.0", "--no-metrics-destination-names", "--tls-cert", "c.pem",
        "--tls-key", "k.pem", "--tls-ca", "ca.pem", "--tls-client-auth", "optional", "--log-level", "debug",
        "--store-usage-limit", "10gb", "--store-usage-timeout", "5",
        "--cursor-window", "64kb",
        "--admin-port", "8161", "--admin-host", "0.0.0.0",
        "--memory-budget", "512mb", "--connection-memory-limit", "8 MiB",
        "--producer-flow-control-timeout", "0", "--non-persistent", "spill", "--temp-usage", "2gb"])
    assert start_overrides(args) == {
        "name": "b2", "data_dir": "/d",
        "store": {"type": "leveldb", "usage_limit": "10gb", "usage_timeout": "5",
                  "cursor_window": "64kb"},
        "connectors": ["tcp://127.0.0.2:1", "tcp://127.0.0.3:1"], "metrics_port": "9100",
        "metrics_host": "0.0.0.0", "metrics_destination_names": False,
        "admin": {"port": "8161", "host": "0.0.0.0"},
        "tls": {"cert": "c.pem", "key": "k.pem", "ca": "ca.pem", "client_auth": "optional"},
        "lock": {"acquire_interval": "0.1", "keepalive_period": "0.5", "lock_timeout": "4",
                 "on_lock_lost": "slave"},
        "limits": {"memory_budget": "512mb", "connection_memory_limit": "8 MiB",
                   "producer_flow_control_timeout": "0", "non_persistent": "spill", "temp_usage": "2gb"}}
    assert args.log_level == "debug"


def test_absent_start_flags_are_none_so_lower_layers_show_through():
    overrides = start_overrides(build_parser().parse_args(["start"]))
    assert overrides["name"] is None and overrides["connectors"] is None
    assert overrides["store"] == {"type": None, "usage_limit": None, "usage_timeout": None,
                                  "cursor_window": None}
    assert overrides["metrics_host"] is None and overrides["metrics_destination_names"] is None
    assert overrides["tls"] == {"cert": None, "key": None, "ca": None, "client_auth": None}
    assert overrides["admin"] == {"port": None, "host": None}


def test_body_template_substitutes_only_seq():
    assert make_body("n={seq} {0} {seq!r} {{seq}}", 7, None) == b"n=7 {0} {seq!r} {7}"
    assert make_body(None, 3, None) == b"message 3"


@pytest.mark.parametrize(
    ("size", "expected"), [(0, b""), (5, b"messa"), (12, b"message 42.."), (9, b"message 4")]
)
def test_body_size_is_exact(size, expected):
    assert make_body(None, 42, size) == expected


def test_utf8_body_size_counts_bytes():
    assert len(make_body("é{seq}", 1, 10)) == 10


def test_duplicates_by_producer_id_else_by_body():
    tracker = DuplicateTracker(limit=3)
    assert not tracker.seen_before({PRODUCER_ID_HEADER: "c:1"}, b"same")
    assert tracker.seen_before({PRODUCER_ID_HEADER: "c:1"}, b"other body")  # a resend
    assert not tracker.seen_before({PRODUCER_ID_HEADER: "c:2"}, b"same")  # same body, another message
    assert not tracker.seen_before({}, b"same")
    assert tracker.seen_before({}, b"same")
    assert not tracker.saturated
    assert not tracker.seen_before({}, b"fourth")  # over the bound: counted, not remembered
    assert tracker.saturated and not tracker.seen_before({}, b"fourth")


def test_progress_is_silent_unless_a_terminal():
    stream = io.StringIO()
    progress = Progress("produce", 10, stream=stream, delay=0)
    progress.update(5)
    progress.finish()
    assert stream.getvalue() == ""


def test_progress_draws_after_the_delay_and_erases_itself():
    stream = io.StringIO()
    progress = Progress("consume", 200, stream=stream, enabled=True, delay=0, interval=0)
    progress.update(50)
    assert stream.getvalue().startswith("\rconsume [######.................")
    assert "50/200" in stream.getvalue() and "25.0%" in stream.getvalue()
    progress.finish()
    assert stream.getvalue().endswith("\r\x1b[K")
    late = Progress("x", 10, stream=io.StringIO(), enabled=True, delay=60)
    late.update(1)
    assert late.stream.getvalue() == ""  # a short run never shows a bar


def test_render_without_total():
    assert render("consume", 1500, None, 2.0) == "consume: 1500 (750 msg/s)"
