"""stores.fscheck.mountinfo: the file system under a directory, and what it means for the lock."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from stores.fscheck.mountinfo import CAUTION, ERROR, mount_of, parse, parse_line, read_mount

ROOT = "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro"
NFS4 = ("95 22 0:52 / /srv/mq rw,relatime shared:60 - nfs4 filer:/export/mq rw,vers=4.2,rsize=1048576,"
        "wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.5,"
        "local_lock=none,addr=10.0.0.9")
NFS3 = ("96 22 0:53 / /srv/v3 rw,relatime - nfs filer:/export/v3 rw,vers=3,rsize=65536,hard,proto=tcp,"
        "mountvers=3,mountproto=tcp,local_lock=none,addr=10.0.0.9")
LOCAL_ALL = ("97 22 0:54 / /srv/local rw,relatime - nfs4 filer:/export/l rw,vers=4.1,hard,proto=tcp,"
             "local_lock=all,addr=10.0.0.9")


def table(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def severities(mount) -> list[str]:
    return [w.severity for w in mount.warnings]


def test_nfs4_with_recommended_options_has_no_warning():
    mount = mount_of(table(ROOT, NFS4), "/srv/mq/data")
    assert mount is not None
    assert (mount.fs_type, mount.source, mount.mount_point) == ("nfs4", "filer:/export/mq", "/srv/mq")
    assert mount.nfs_version == "4.2" and mount.super_options["local_lock"] == "none"
    assert mount.warnings == () and not mount.local
    assert mount.describe() == "NFS version 4.2 (filer:/export/mq on /srv/mq)"


def test_nfs_version_3_is_an_error():
    mount = mount_of(table(ROOT, NFS3), "/srv/v3")
    assert mount.nfs_version == "3"
    assert severities(mount) == [ERROR]
    assert "not released when a client host crashes" in mount.warnings[0].text


def test_local_lock_all_and_nolock_are_errors_and_flock_a_caution():
    mount = mount_of(table(ROOT, LOCAL_ALL), "/srv/local/x")
    assert severities(mount) == [ERROR]
    assert "node-local" in mount.warnings[0].text and "local_lock=all" in mount.warnings[0].text
    posix = LOCAL_ALL.replace("local_lock=all", "local_lock=posix")
    assert severities(mount_of(table(posix), "/srv/local")) == [ERROR]
    flock = LOCAL_ALL.replace("local_lock=all", "local_lock=flock")
    assert severities(mount_of(table(flock), "/srv/local")) == [CAUTION]


def test_soft_mount_ocfs2_gfs2_and_untested_kinds():
    soft = NFS4.replace(",hard,", ",soft,")
    assert severities(mount_of(table(soft), "/srv/mq")) == [CAUTION]
    ocfs2 = "40 22 8:33 / /cluster rw - ocfs2 /dev/sdc1 rw,cluster_stack=pcmk"
    assert "cluster stack" in mount_of(table(ocfs2), "/cluster").warnings[0].text
    gfs2 = "41 22 8:34 / /g rw - gfs2 /dev/sdd1 rw,localflocks"
    assert severities(mount_of(table(gfs2), "/g")) == [ERROR]
    fuse = "42 22 0:60 / /f rw - fuse.sshfs host:/x rw,user_id=0"
    assert severities(mount_of(table(fuse), "/f/y")) == [CAUTION]
    assert mount_of(table(ROOT), "/var/lib").local and mount_of(table(ROOT), "/").warnings == ()


def test_longest_mount_point_wins_and_the_last_of_stacked_mounts():
    tmp = "30 22 0:30 / /srv rw - tmpfs tmpfs rw"
    assert mount_of(table(ROOT, NFS4, tmp), "/srv/mq/x").fs_type == "nfs4"
    assert mount_of(table(ROOT, NFS4, tmp), "/srv/mqueue").fs_type == "tmpfs"  # not under /srv/mq
    over = "98 95 0:70 / /srv/mq rw - xfs /dev/sde rw"
    assert mount_of(table(ROOT, NFS4, over), "/srv/mq").fs_type == "xfs"


def test_escaped_mount_point_and_optional_fields():
    line = r"50 22 0:40 /sub /mnt/my\040share rw,nosuid shared:7 master:3 - nfs4 filer:/a\040b rw,vers=4.1"
    mount = parse_line(line)
    assert mount.mount_point == "/mnt/my share" and mount.source == "filer:/a b"
    assert mount.mount_options == ("rw", "nosuid") and mount.nfs_version == "4.1"


def test_malformed_lines_are_skipped():
    assert parse("garbage\n1 2 3\n\n- - -\n" + ROOT) == [parse_line(ROOT)]
    assert parse_line("1 2 3:4 / / rw shared:1 ext4 /dev/x rw") is None  # no separator


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_parser_never_raises(text):
    for mount in parse(text):
        assert isinstance(mount.warnings, tuple)


def test_this_host_names_the_temporary_directory(tmp_path):
    mount = read_mount(str(tmp_path))
    if not os.path.exists("/proc/self/mountinfo"):
        assert mount is None
        return
    assert mount is not None and mount.fs_type
    assert str(tmp_path.resolve()).startswith(mount.mount_point)
