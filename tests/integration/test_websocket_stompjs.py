"""@stomp/stompjs against a real `batonmq start` with a tcp:// and a ws:// connector: from node (the `ws`
package as its WebSocket) and from a page in headless Chromium (playwright-core drives Debian's
chromium). stomp.py fills the queue the JavaScript client consumes and acks, and drains the one it
produces to, so both clients meet on the same queues. The scenario is tests/js/scenario.mjs.

The JavaScript packages come from tests/js/package-lock.json into tests/js/node_modules (git-ignored),
installed by `npm ci` on first use and again when the lock file is newer. Skipped, saying why, only
where node or npm (or, for the browser test, chromium) is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cluster import BrokerProc, free_port
from tests.helpers.stomppy import connect
from tests.integration.test_stomp_messaging import Peer

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "tests" / "js"
HOST = "127.0.0.1"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BEAT_MS = 200


@pytest.fixture(scope="module")
def node_modules() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the stompjs tests (apt-get install nodejs npm)")
    installed = JS / "node_modules" / ".package-lock.json"  # npm writes it after an install
    if not installed.exists() or installed.stat().st_mtime < (JS / "package-lock.json").stat().st_mtime:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS, check=True,
                       timeout=600, stdin=subprocess.DEVNULL)
    return JS / "node_modules"


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int]]:
    """A broker process: (tcp port, ws port). Heart-beats every 200 ms so a short idle shows them."""
    tcp_port, ws_port = free_port((HOST,)), free_port((HOST,))
    monkeypatch.setenv("BATONMQ_LIMITS__HEARTBEAT_SEND_MS", str(BEAT_MS))
    monkeypatch.setenv("BATONMQ_LIMITS__HEARTBEAT_RECV_MS", str(BEAT_MS))
    proc = BrokerProc("js", HOST, tcp_port, tmp_path, extra=("--connector", f"ws://{HOST}:{ws_port}"))
    proc.start()
    try:
        assert proc.wait_role("master", 15), proc.log_text()
        yield tcp_port, ws_port
    finally:
        proc.stop()


def fill(port: int, destination: str, bodies: list[str]) -> None:
    conn, recorder = connect(HOST, port)
    try:
        for i, body in enumerate(bodies):
            conn.send(destination, body, headers={"persistent": "true"}, receipt=f"fill-{i}")
            assert recorder.wait_receipt(f"fill-{i}", 5.0)
    finally:
        conn.disconnect()


def run_client(script: str, ws_port: int, name: str, timeout_ms: int = 10000) -> dict[str, Any]:
    cfg = {"url": f"ws://{HOST}:{ws_port}/", "inbox": f"/queue/{name}.in", "outbox": f"/queue/{name}.out",
           "expect": 3, "send": 3, "heartbeatMs": BEAT_MS, "idleMs": 1000, "timeoutMs": timeout_ms,
           "label": name}
    started = time.monotonic()
    done = subprocess.run(["node", script, json.dumps(cfg)], cwd=JS, capture_output=True, text=True,
                          timeout=timeout_ms / 1000 + 30, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["seconds"] = time.monotonic() - started
    return result


def check(result: dict[str, Any], tcp_port: int, name: str) -> None:
    assert result["received"] == [f"{name} from stomp.py {i}" for i in range(3)]
    assert result["acked"] == 3 and result["sent"] == 3
    assert (result["version"], result["subprotocol"]) == ("1.2", "v12.stomp")
    # One second idle with 200 ms beats both ways: beats arrived as messages and kept the socket.
    assert result["heartbeats"] >= 3 and result["connectedAfterIdle"] is True
    drain = Peer(tcp_port)
    try:
        drain.conn.subscribe(f"/queue/{name}.out", id="out", ack="auto")
        assert drain.bodies(3) == [f"{name} {i}" for i in range(3)]
        drain.conn.subscribe(f"/queue/{name}.in", id="in", ack="auto")
        assert drain.nothing(0.5)  # acked by stompjs: removed, not redelivered after its DISCONNECT
    finally:
        drain.close()


def test_stompjs_from_node(node_modules: Path, broker: tuple[int, int]) -> None:
    tcp_port, ws_port = broker
    fill(tcp_port, "/queue/node.in", [f"node from stomp.py {i}" for i in range(3)])
    result = run_client("node_client.mjs", ws_port, "node")
    check(result, tcp_port, "node")
    print(f"stompjs from node: {result['seconds']:.2f} s")


def test_stompjs_in_headless_chromium(node_modules: Path, broker: tuple[int, int]) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    tcp_port, ws_port = broker
    fill(tcp_port, "/queue/browser.in", [f"browser from stomp.py {i}" for i in range(3)])
    result = run_client("browser_client.mjs", ws_port, "browser")
    assert "HeadlessChrome" in result["userAgent"]
    check(result, tcp_port, "browser")
    print(f"stompjs in headless Chromium: {result['seconds']:.2f} s")


def test_the_readme_stompjs_example_runs_as_written(node_modules: Path, broker: tuple[int, int],
                                                     tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## WebSocket"):]
    example = section[section.index("```js\n") + 6:section.index("```\n", section.index("```js\n") + 6)]
    assert "ws://127.0.0.1:61614/" in example
    script = tmp_path / "orders.mjs"
    script.write_text(example.replace("61614", str(broker[1])))  # the test's free port, nothing else
    (tmp_path / "node_modules").symlink_to(node_modules)  # where `npm install` would have put them
    done = subprocess.run(["node", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stdout) == (0, "received: hello\n"), done.stderr
