"""`batonmq start` failures end with one line and a documented exit code, never a traceback.

Ports in use and unusable data directories are found before the lock (exit 2, nothing written to
the shared directory); a connector that cannot be bound when a slave becomes master ends that term
gracefully with exit 6 and the lock released. Every daemon run ends with `stopped, exit N`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cluster import HOSTS, free_port, serves
from tests.helpers.daemon import ROOT, clean_env, daemon, without_dac_override

START_FLAGS = ("--lock-acquire-interval", "0.1", "--lock-keepalive-period", "0.3", "--lock-timeout", "2")
MASTER = r"role recovering -> master"
TRACEBACK = "Traceback"


def start_once(*args: str, env: dict[str, str] | None = None,
               prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [*(prefix or []), sys.executable, "-m", "broker", "start", *args]
    return subprocess.run(command, cwd=ROOT, env=clean_env(env), capture_output=True, text=True, timeout=30,
                          check=False)


def one_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@contextlib.contextmanager
def listening(host: str, port: int) -> Iterator[socket.socket]:
    """Another program holding host:port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
        yield sock


def status(data_dir: Path) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "broker", "status", "--data", str(data_dir), "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def unprivileged() -> list[str]:
    prefix = without_dac_override()
    if prefix and shutil.which(prefix[0]) is None:
        pytest.skip("running as root without setpriv: permission bits cannot bind this test's broker")
    return prefix


def test_data_directory_without_permission(tmp_path, unprivileged):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)  # r-x: readable, nothing can be created in it
    line = one_line(start_once("--data", str(locked / "data"), prefix=unprivileged))
    assert line == f"batonmq: cannot start: data directory {locked}/data: cannot create it: permission denied"
    line = one_line(start_once("--data", str(locked), prefix=unprivileged))
    assert line == (f"batonmq: cannot start: data directory {locked}: cannot create files in it: "
                    "permission denied")
    assert list(locked.iterdir()) == []


def test_lock_file_left_by_another_user(tmp_path, unprivileged):
    data = tmp_path / "data"
    data.mkdir()
    (data / "lock").write_text("")
    (data / "lock").chmod(0o444)  # as a broker run by another user would leave it, for us
    line = one_line(start_once("--data", str(data), prefix=unprivileged))
    assert line == f"batonmq: cannot start: data directory {data}: cannot write lock: permission denied"
    assert sorted(p.name for p in data.iterdir()) == ["lock"]  # no epoch bumped, no store opened


def test_data_path_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    line = one_line(start_once("--data", str(tmp_path / "file")))
    assert line.endswith(f"data directory {tmp_path / 'file'}: exists and is not a directory")


def test_metrics_port_in_use(tmp_path):
    port = free_port(("127.0.0.1",))
    with listening("127.0.0.1", port):
        result = start_once("--data", str(tmp_path), "--metrics-port", str(port),
                            env={"BATONMQ_METRICS_HOST": "127.0.0.1"})
    line = one_line(result)
    assert line == (f"batonmq: cannot start: metrics port 127.0.0.1:{port}: cannot listen: address already "
                    "in use")
    assert not (tmp_path / "epoch").exists()


def test_connector_port_in_use_with_no_master_here(tmp_path):
    port = free_port(("127.0.0.1",))
    with listening("127.0.0.1", port):
        line = one_line(start_once("--data", str(tmp_path), "--connector", f"tcp://127.0.0.1:{port}"))
    assert line == (f"batonmq: cannot start: connector tcp://127.0.0.1:{port}: address already in use, and "
                    f"no master of {tmp_path} runs on this host")
    assert not (tmp_path / "epoch").exists()  # refused before the lock


def test_connector_address_this_host_does_not_have(tmp_path):
    line = one_line(start_once("--data", str(tmp_path), "--connector", "tcp://192.0.2.1:61616"))
    assert line == "batonmq: cannot start: connector tcp://192.0.2.1:61616: cannot listen: cannot assign " \
                   "requested address"


def test_a_slave_on_its_masters_host_and_address_waits(tmp_path):
    # Two brokers of one group on one host with one connector address: legal, they never serve at once.
    port = free_port(HOSTS[:1])
    args = ["--data", str(tmp_path), "--connector", f"tcp://{HOSTS[0]}:{port}", *START_FLAGS]
    with daemon([*args, "--name", "a"]) as first:
        first.wait_for(MASTER)
        with daemon([*args, "--name", "b"]) as second:
            second.wait_for(rf"broker b: connector tcp://{HOSTS[0]}:{port} is in use, by the master "
                            r"\(broker a ")
            second.wait_for(r"role starting -> slave")
            assert first.stop() == 0
            second.wait_for(MASTER)
            assert serves(HOSTS[0], port)
            assert second.stop() == 0
    assert first.lines[-1].endswith("broker a: stopped, exit 0")
    assert second.lines[-1].endswith("broker b: stopped, exit 0")


def test_connector_taken_before_takeover_exits_6_and_releases_the_lock(tmp_path):
    port = free_port(HOSTS[:2])
    common = ["--data", str(tmp_path), *START_FLAGS]
    with daemon([*common, "--name", "a", "--connector", f"tcp://{HOSTS[0]}:{port}"]) as first:
        first.wait_for(MASTER)
        with daemon([*common, "--name", "b", "--connector", f"tcp://{HOSTS[1]}:{port}"]) as second:
            second.wait_for(r"role starting -> slave")
            with listening(HOSTS[1], port):  # taken after b's check, before b becomes master
                assert first.stop() == 0
                assert second.wait_exit() == 6
    errors = [line for line in second.lines if " ERROR " in line]
    assert len(errors) == 1, second.text()
    assert errors[0].endswith(f"broker b: cannot listen on tcp://{HOSTS[1]}:{port}: address already in use; "
                              "releasing the lock")
    assert TRACEBACK not in second.text()
    assert second.lines[-1].endswith("broker b: stopped, exit 6")
    code, fields = status(tmp_path)
    assert (code, fields["master"], fields["holder"]["name"], fields["holder"]["epoch"]) == (1, False, "b", 2)


def test_version_is_the_installed_one():
    from importlib.metadata import version

    for command in ([sys.executable, "-m", "broker"], [str(Path(sys.executable).parent / "batonmq")]):
        result = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=30,
                                check=False)
        assert (result.returncode, result.stdout) == (0, f"batonmq {version('batonmq')}\n")
