"""stores.fscheck.peer: rendezvous through files, and its failure paths with a real absent peer.

The full two-instance exchange runs as two OS processes in tests/integration/test_cli_fscheck.py.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from stores.fscheck.peer import Instance, PeerFailed, find_peer, run_peer


def announce(peer_dir, ident: str, host: str = "other-host", pid: int = 4242, age: float = 0.0) -> None:
    path = peer_dir / f"hello-{ident}.json"
    path.write_text(json.dumps({"id": ident, "host": host, "pid": pid}))
    if age:
        then = time.time() - age
        os.utime(path, (then, then))


def test_no_peer_fails_after_the_wait_and_removes_our_announcement(tmp_path):
    started = time.monotonic()
    outcome = run_peer(tmp_path, wait=0.3, step_timeout=1.0)
    assert 0.3 <= time.monotonic() - started < 5
    assert not outcome.ok and outcome.explanation.startswith("no peer announced itself in ")
    assert "--wait-for-peer" in outcome.advice
    assert list((tmp_path / "peer").iterdir()) == []


def test_leftover_announcements_are_ignored_and_a_fresh_one_is_found(tmp_path):
    peer_dir = tmp_path / "peer"
    peer_dir.mkdir()
    announce(peer_dir, "aaaa", age=3600)  # an earlier run that crashed
    (peer_dir / "hello-junk.json").write_text("{not json")
    announce(peer_dir, "bbbb", host="h2", pid=77)
    found = find_peer(peer_dir, Instance("cccc", "h1", 1), wait=1.0)
    assert found == Instance("bbbb", "h2", 77)


def test_more_than_one_other_instance_is_refused(tmp_path):
    peer_dir = tmp_path / "peer"
    peer_dir.mkdir()
    announce(peer_dir, "aaaa")
    announce(peer_dir, "bbbb")
    with pytest.raises(PeerFailed, match="more than one other instance"):
        find_peer(peer_dir, Instance("cccc", "h1", 1), wait=1.0)


def test_a_peer_that_announced_then_died_is_a_clear_failure(tmp_path):
    peer_dir = tmp_path / "peer"
    peer_dir.mkdir()
    announce(peer_dir, "0000")  # sorts first: it would hold first, and never does
    started = time.monotonic()
    outcome = run_peer(tmp_path, wait=1.0, step_timeout=0.5)
    assert time.monotonic() - started < 5
    assert not outcome.ok
    assert outcome.explanation == "the peer (host other-host pid 4242) wrote no 'holding-1' within 0.5 s"
    assert sorted(p.name for p in peer_dir.iterdir()) == ["hello-0000.json"]  # only the dead peer's
