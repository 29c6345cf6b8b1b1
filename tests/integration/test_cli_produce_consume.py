"""`python -m broker produce|consume` as real subprocesses against an in-process broker."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.server import running_broker

ROOT = Path(__file__).resolve().parents[2]


def batonmq(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def summary(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def broker():
    with running_broker() as running:
        yield running


@pytest.fixture(scope="module")
def url(broker):
    return f"tcp://127.0.0.1:{broker.port}"


def test_pipelined_produce_then_consume_counts_exactly(url):
    sent = batonmq("produce", "--url", url, "--destination", "/queue/cli1", "--count", "500", "--size", "100",
                   "--json")
    assert sent.returncode == 0, sent.stderr
    fields = summary(sent)
    assert (fields["sent"], fields["receipted"], fields["ok"], fields["error"]) == (500, 500, True, None)
    got = batonmq("consume", "--url", url, "--destination", "/queue/cli1", "--count", "500",
                  "--ack", "client", "--json", "--timeout", "5")
    assert got.returncode == 0, got.stderr
    fields = summary(got)
    assert (fields["consumed"], fields["duplicates"], fields["redelivered"]) == (500, 0, 0)
    assert got.stderr == ""  # no progress bar: stderr is not a terminal


def test_receipted_produce_with_body_template_and_print(url):
    body = "order {seq} costs {price}"  # only {seq} is substituted; {price} stays as typed
    sent = batonmq("produce", "--url", url, "--destination", "/queue/cli2", "--count", "3", "--body", body,
                   "--receipts", "--persistent")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("produce: sent 3/3, receipted 3 to /queue/cli2")
    got = batonmq("consume", "--url", url, "--destination", "/queue/cli2", "--ack", "client-individual",
                  "--print", "--timeout", "0.5")
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert lines[:3] == [f"order {n} costs {{price}}" for n in (1, 2, 3)]
    assert lines[3].startswith("consume: consumed 3 from /queue/cli2")


def test_consume_with_count_that_times_out_fails(url):
    got = batonmq("consume", "--url", url, "--destination", "/queue/empty", "--count", "2",
                  "--timeout", "0.3", "--json")
    assert got.returncode == 1
    fields = summary(got)
    assert fields["consumed"] == 0 and fields["timed_out"] and "timed out" in fields["error"]


def test_produce_rate_paces_the_run(url):
    sent = batonmq("produce", "--url", url, "--destination", "/queue/cli3", "--count", "6", "--rate", "10",
                   "--json")
    assert sent.returncode == 0, sent.stderr
    assert 0.45 <= summary(sent)["elapsed"] < 3  # 5 gaps of 100 ms


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_broker_exits_1():
    sent = batonmq("produce", "--url", f"tcp://127.0.0.1:{_dead_port()}", "--destination", "/queue/x",
                   "--json")
    assert sent.returncode == 1
    assert summary(sent)["sent"] == 0 and "cannot connect" in summary(sent)["error"]


@pytest.mark.parametrize(
    "args",
    [
        ["produce", "--url", "http://127.0.0.1:1", "--destination", "/queue/x"],
        ["consume", "--url", "failover:(tcp://127.0.0.1:1)?bogus=1", "--destination", "/queue/x"],
    ],
)
def test_bad_url_exits_2_with_one_line(args):
    result = batonmq(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("batonmq: invalid URL")
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["produce", "--url", "tcp://127.0.0.1:1", "--destination", "/queue/x", "--count", "0"],
        ["produce", "--url", "tcp://127.0.0.1:1", "--destination", "/queue/x", "--rate", "-1"],
        ["consume", "--url", "tcp://127.0.0.1:1", "--destination", "/queue/x", "--ack", "never"],
        ["produce", "--destination", "/queue/x"],
    ],
)
def test_bad_arguments_exit_2(args):
    result = batonmq(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr


@pytest.mark.parametrize("receipts", [False, True])
def test_refused_sends_make_the_run_fail(receipts):
    from config.model import Limits

    # A destination that holds ~4 KiB: the broker answers ERROR once it is full.
    limits = Limits(destination_memory_limit=4096, producer_flow_control_timeout=0)  # refused at once
    with running_broker(limits=limits) as broker:
        url = f"tcp://127.0.0.1:{broker.port}"
        flags = ["--receipts"] if receipts else []
        sent = batonmq("produce", "--url", url, "--destination", "/queue/small", "--count", "100",
                       "--size", "200", "--json", *flags)
    assert sent.returncode == 1
    fields = summary(sent)
    assert fields["ok"] is False and fields["receipted"] < 100 and fields["error"]
    if receipts:
        assert 0 < fields["receipted"] == fields["sent"]  # each one counted only once receipted
    else:
        assert fields["receipted"] == 0  # pipelined: without the final receipt nothing is certain


@pytest.mark.parametrize("command", ["produce", "consume"])
def test_destination_without_prefix_is_refused_before_connecting(command):
    # A dead port: had the tool connected first, the error would be "cannot connect".
    result = batonmq(command, "--url", f"tcp://127.0.0.1:{_dead_port()}", "--destination", "orders")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("batonmq: invalid destination 'orders': expected /queue/NAME or /topic/NAME; "
                             "for a queue write /queue/orders\n")
    empty = batonmq(command, "--url", "tcp://127.0.0.1:1", "--destination", "/topic/")
    assert empty.stderr == "batonmq: invalid destination '/topic/': the name after /topic/ is empty\n"


@pytest.mark.parametrize("receipts", [[], ["--receipts"]])
def test_the_brokers_error_text_is_reported(url, receipts):
    name = "/queue/" + "x" * 1100  # the broker's limit is 1024 characters
    sent = batonmq("produce", "--url", url, "--destination", name, "--persistent", *receipts, "--json")
    assert sent.returncode == 1
    assert "invalid destination: destination longer than 1024 characters" in summary(sent)["error"]
    got = batonmq("consume", "--url", url, "--destination", name, "--timeout", "1")
    assert got.returncode == 1
    assert got.stdout.rstrip().endswith("; error: invalid destination: destination longer than 1024 "
                                        "characters")
    # A plain tcp:// URL does not fail over, and the notice does not say it would.
    assert "connection lost (broker sent ERROR: invalid destination: " in got.stderr
    assert "failing over" not in got.stderr


def _default_sigint() -> None:
    # A test run in the background may inherit SIGINT ignored; Ctrl-C is what is being tested.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupted(*args: str, ready: Callable[[], bool],
                settle: float = 0.0) -> subprocess.CompletedProcess[str]:
    """Run a client command and send it SIGINT (Ctrl-C) once `ready()` says it is at work: a fixed
    delay is not enough on a loaded machine, where the client may still be importing."""
    proc = subprocess.Popen([sys.executable, "-m", "broker", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 60
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(settle)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def queue_stat(broker, name: str, key: str) -> int:
    return broker.stats()["destinations"].get(name, {}).get(key, 0)


def test_ctrl_c_ends_produce_with_a_true_summary(broker, url):
    sent = interrupted("produce", "--url", url, "--destination", "/queue/cut", "--count", "100000", "--rate",
                       "50", "--persistent", "--json",
                       ready=lambda: queue_stat(broker, "/queue/cut", "depth") >= 5)
    assert sent.returncode == 130, sent.stderr
    fields = summary(sent)
    assert fields["interrupted"] is True and fields["ok"] is False and fields["error"] is None
    assert 0 < fields["receipted"] == fields["sent"] < 100000  # the pipelined sends were drained
    got = batonmq("consume", "--url", url, "--destination", "/queue/cut", "--timeout", "1", "--json")
    assert summary(got)["consumed"] == fields["receipted"]


def test_ctrl_c_ends_consume_with_its_summary_and_acknowledges_what_it_took(broker, url):
    assert batonmq("produce", "--url", url, "--destination", "/queue/taken", "--count", "30").returncode == 0
    # The broker's in-flight count says the 30 were written to the client's socket; the client may
    # take a moment (longer on a loaded machine) to read them, so the summary's own count is checked
    # against what stays in the queue rather than expected to be 30.
    got = interrupted("consume", "--url", url, "--destination", "/queue/taken", "--ack", "client",
                      "--timeout", "0", ready=lambda: queue_stat(broker, "/queue/taken", "in_flight") == 30,
                      settle=1.0)
    assert got.returncode == 130, got.stderr
    taken = re.match(r"consume: consumed (\d+) from /queue/taken", got.stdout)
    assert taken is not None and "; interrupted" in got.stdout, got.stdout
    took = int(taken.group(1))
    assert 0 < took <= 30
    # Under ack:client none was acknowledged (one ACK per 100) until the interruption, which
    # acknowledged exactly what the client took: the rest is delivered again.
    again = batonmq("consume", "--url", url, "--destination", "/queue/taken", "--timeout", "0.5", "--json")
    assert summary(again)["consumed"] == 30 - took
