"""The web console in a real browser: Debian's headless Chromium (playwright-core) opens the page a
broker with users serves, logged in with HTTP basic auth, sees the queue a stomp.py producer
filled (its sparkline growing as it fills) and the group (master and slave), browses it, purges
it from the page and sees the depth fall to 0; stomp.py then finds the queue empty.

The page's screenshot is written to $CONSOLE_SCREENSHOT when set (docs/images/console.png
comes from this test). Skipped, saying why, only where node, npm or chromium is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.adminhttp import AdminBroker, depth
from tests.integration.test_admin_security import ADMIN, config_file
from tests.integration.test_stomp_messaging import Peer
from tests.integration.test_websocket_stompjs import CHROMIUM, JS, node_modules  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(240)
QUEUE = "/queue/orders.eu"
BATCHES, PER_BATCH = 6, 5


def produce_in_batches(port: int, done: threading.Event) -> None:
    """Fill the queue a batch at a time, so the page's depth history has something to draw."""
    peer = Peer(port, login=ADMIN[0], passcode=ADMIN[1])
    try:
        for batch in range(BATCHES):
            for i in range(PER_BATCH):
                receipt = f"{batch}-{i}"
                peer.conn.send(QUEUE, f"order {batch * PER_BATCH + i}", headers={"persistent": "true"},
                               receipt=receipt)
                peer.receipt(receipt)
            time.sleep(0.4)
    finally:
        peer.close()
        done.set()


def test_console_shows_the_group_and_purges_a_queue(node_modules: Path, tmp_path: Path) -> None:  # noqa: F811
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    config = str(config_file(tmp_path))
    master = AdminBroker("broker-a", tmp_path / "data", "--config", config).start()
    slave = AdminBroker("broker-b", tmp_path / "data", "--config", config)
    try:
        slave.start(role="slave")
        done = threading.Event()
        screenshot = os.environ.get("CONSOLE_SCREENSHOT") or str(tmp_path / "console.png")
        cfg = {"url": master.url, "queue": QUEUE, "depth": BATCHES * PER_BATCH, "user": ADMIN[0],
               "password": ADMIN[1], "screenshot": screenshot, "timeoutMs": 60_000, "slaveUrl": slave.url}
        browser = subprocess.Popen(["node", "console_check.mjs", json.dumps(cfg)], cwd=JS, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            assert browser.stdout is not None
            first = browser.stdout.readline()  # "loaded": the page polls; fill the queue now
            if first == "loaded\n":
                threading.Thread(target=produce_in_batches, args=(master.port, done), daemon=True).start()
            out, err = browser.communicate(timeout=150)
        finally:
            if browser.poll() is None:
                browser.kill()
        assert first == "loaded\n" and browser.returncode == 0, first + err
        seen = json.loads(out.splitlines()[-1])
        assert "HeadlessChrome" in seen["userAgent"] and seen["problems"] == [] and seen["error"] == ""
        assert (seen["sawDepth"], seen["afterPurge"]) == (BATCHES * PER_BATCH, 0)
        assert seen["browsed"] == BATCHES * PER_BATCH and seen["sparkPoints"] >= 3
        assert seen["dialogs"] == [f"Purge every waiting message of {QUEUE}?"]
        assert seen["summary"].startswith("master: broker-a on ")
        # Each row's cells run together in textContent: broker, host, role, ...
        row_a, row_b = (next(r for r in seen["members"] if r.startswith(n)) for n in ("broker-a", "broker-b"))
        assert "master" in row_a and "slave" in row_b
        assert seen["slaveSays"] == "broker-b: slave"
        assert Path(screenshot).stat().st_size > 10_000
        assert done.wait(30)
        assert depth(master, QUEUE, user=ADMIN) == 0
        drain = Peer(master.port, login=ADMIN[0], passcode=ADMIN[1])
        try:
            drain.conn.subscribe(QUEUE, id="d", ack="auto")
            assert drain.nothing(0.5)
        finally:
            drain.close()
    finally:
        slave.proc.stop()
        master.proc.stop()
