"""`make run` (the README's first command) starts a broker that accepts a STOMP connection."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from config.model import BrokerConfig
from tests.helpers.rawstomp import RawStomp

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_default_config_is_the_documented_one():
    config = BrokerConfig()
    assert config.connectors == ["tcp://0.0.0.0:61616"]
    assert config.store.type == "journal"
    assert str(config.data_dir) == "data"


def test_make_run_starts_a_broker(tmp_path):
    port = free_port()
    # Only the port differs from `make run`'s defaults: tests never bind fixed ports.
    env = {**os.environ, "BATONMQ_CONNECTORS": f"tcp://127.0.0.1:{port}"}
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"DATA={tmp_path / 'data'}"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        reply = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not reply:
            try:
                with RawStomp("127.0.0.1", port) as client:
                    reply = client.connect()
            except OSError:
                time.sleep(0.1)
        assert reply.startswith("CONNECTED"), reply
        assert (tmp_path / "data" / "STORE").read_text().strip() == "journal"
        # SIGTERM to the broker alone: its graceful exit 0 becomes make's exit status.
        holder = json.loads((tmp_path / "data" / "lock").read_text())
        os.kill(holder["pid"], signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr.decode()[-2000:]
