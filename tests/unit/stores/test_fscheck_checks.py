"""stores.fscheck.checks on a real local directory, with real holder processes.

Every check must pass here (local ext4/tmpfs). Failure paths are made real where a local file
system allows it: a fake mountinfo table for the file-system warnings, and a holder whose lock
outlives its SIGKILL (a forked child keeps the locked open file description) for release-on-death.
"""

from __future__ import annotations

import os
import random
import time

from stores.fscheck import report
from stores.fscheck.checks import (
    FAIL,
    PASS,
    SKIP,
    CheckResult,
    Options,
    check_basic,
    check_exclusive,
    check_handover,
    check_keepalive,
    check_release_on_death,
    run_all,
)
from stores.fscheck.mountinfo import mount_of


def fake_mount(path, fs_line: str):
    text = "22 1 253:1 / / rw - ext4 /dev/vda1 rw\n" + fs_line.replace("MNT", str(path)) + "\n"
    return mount_of(text, str(path))


def test_basic_passes_and_names_lock_kind_and_file_system(tmp_path):
    result = check_basic(tmp_path / "b", fake_mount(tmp_path, "30 22 0:30 / MNT rw - ext4 /dev/x rw"))
    assert result.status == PASS, result
    assert result.details["lock_kind"] in ("OFD", "classic POSIX")
    assert "lock (OFD lock)" in result.explanation or "classic" in result.explanation
    assert "file system ext4" in result.explanation and "local" in result.explanation


def test_basic_fails_on_nfs_version_3(tmp_path):
    line = "30 22 0:30 / MNT rw - nfs filer:/x rw,vers=3,hard,proto=tcp,local_lock=none"
    result = check_basic(tmp_path / "b", fake_mount(tmp_path, line))
    assert result.status == FAIL
    assert "NFS version 3" in result.explanation
    assert "not released when a client host crashes" in result.explanation
    assert result.advice and any("error: NFS version 3" in w for w in result.details["warnings"])


def test_basic_fails_on_local_lock_all(tmp_path):
    line = "30 22 0:30 / MNT rw - nfs4 filer:/x rw,vers=4.2,hard,local_lock=all"
    result = check_basic(tmp_path / "b", fake_mount(tmp_path, line))
    assert result.status == FAIL and "node-local" in result.explanation


def test_basic_passes_with_a_caution_on_ocfs2(tmp_path):
    result = check_basic(tmp_path / "b", fake_mount(tmp_path, "30 22 8:1 / MNT rw - ocfs2 /dev/sdc rw"))
    assert result.status == PASS
    assert any("cluster stack" in w for w in result.details["warnings"])
    assert "cluster stack" in report.text(tmp_path, [result])


def test_exclusive_passes_with_a_holder_in_another_process(tmp_path):
    result = check_exclusive(tmp_path / "e")
    assert result.status == PASS, result
    assert result.details["identity_seen"] is True
    assert result.details["holder_pid"] != os.getpid()


def test_release_on_death_passes_and_reports_the_time(tmp_path):
    result = check_release_on_death(tmp_path / "d", bound=10.0)
    assert result.status == PASS, result
    assert 0 <= result.details["seconds"] < 10
    assert "90 s" in result.explanation  # the dead-host case is stated


def test_release_on_death_fails_when_the_lock_outlives_its_holder(tmp_path):
    started = time.monotonic()
    result = check_release_on_death(tmp_path / "d", bound=0.5, linger=30.0)
    took = time.monotonic() - started
    assert result.status == FAIL
    assert result.explanation.startswith("the lock was still held 0.5 s after its holder (pid ")
    assert "--release-bound" in result.advice
    assert 0.5 <= took < 10  # waited the bound, and did not wait for the lingering child
    # The check cleaned up the lingering holder: the lock is free again.
    from stores.lock.directory import DirectoryLock

    lock = DirectoryLock(tmp_path / "d")
    assert lock.wait_acquire(5.0)
    lock.release()


def test_handover_reads_every_fsynced_record(tmp_path):
    result = check_handover(tmp_path / "h", bound=10.0, rng=random.Random(7))
    assert result.status == PASS, result
    assert result.details["intact"] >= result.details["synced"] >= 5


def test_keepalive_detects_replace_delete_overwrite(tmp_path):
    result = check_keepalive(tmp_path / "k")
    assert result.status == PASS, result
    detected = result.details["detected"]
    assert "replaced" in detected["replaced"] and "deleted" in detected["deleted"]
    assert set(detected) <= {"replaced", "deleted", "overwritten"}


def test_run_all_passes_locally_and_leaves_nothing_behind(tmp_path):
    (tmp_path / "lock").write_bytes(b"a broker's lock file")
    results = run_all(tmp_path, Options())
    assert [r.name for r in results] == ["basic", "exclusive", "exclusive-peer", "release-on-death",
                                         "handover", "keep-alive"]
    assert {r.name: r.status for r in results if r.status != PASS} == {"exclusive-peer": SKIP}
    assert report.passed(results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]
    assert (tmp_path / "lock").read_bytes() == b"a broker's lock file"


def test_report_text_and_json():
    results = [CheckResult("basic", PASS, "fine"), CheckResult("exclusive-peer", SKIP, "not asked"),
               CheckResult("handover", FAIL, "record 3 torn", "do not use this", {"synced": 3})]
    text = report.text("/d", results).splitlines()
    assert text[1] == "PASS  basic           fine"
    assert text[3] == "FAIL  handover        record 3 torn"
    assert text[4] == "      what to do: do not use this"
    assert text[-1] == "NOT SAFE for a shared broker data directory: 1 passed, 1 failed, 1 skipped"
    fields = report.fields("/d", results)
    assert fields["ok"] is False and fields["checks"][2]["details"] == {"synced": 3}
    assert report.passed(results[:2]) and not report.passed(results[1:2])  # only skipped: not ok
