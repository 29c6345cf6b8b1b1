"""SeqHints (stores/leveldb/hints.py): a page's seqs are kept only while no written group removed
their messages, including a group written between a read's snapshot and its report."""

from __future__ import annotations

from stores.leveldb.hints import SeqHints

A, B, C = ("/queue/a", "m1"), ("/queue/a", "m2"), ("/queue/a", "m3")


def test_a_read_keeps_the_seqs_it_read_until_a_group_removes_them() -> None:
    hints = SeqHints()
    hints.learn(hints.mark(), [(A, 1), (B, 2)])
    assert (hints.get(A), hints.get(B)) == (1, 2)
    hints.written([A])
    assert (hints.get(A), hints.get(B)) == (None, 2)


def test_a_removal_written_after_the_snapshot_is_not_learnt_back() -> None:
    hints = SeqHints()
    mark = hints.mark()  # the read takes its snapshot: A and B are stored
    hints.written([A])  # then a group removes A, before the read reports
    hints.written([])  # and one removes nothing
    hints.learn(mark, [(A, 1), (B, 2)])
    assert (hints.get(A), hints.get(B)) == (None, 2)


def test_removals_written_before_the_snapshot_do_not_hide_a_readd() -> None:
    hints = SeqHints()
    hints.written([A])  # the old copy of A went before the read began
    hints.learn(hints.mark(), [(A, 7)])  # the snapshot holds the new copy
    assert hints.get(A) == 7


def test_a_read_older_than_the_groups_remembered_keeps_nothing() -> None:
    hints = SeqHints(recent=2)
    mark = hints.mark()
    for key in (A, B, C):  # three removing groups: the first is no longer remembered
        hints.written([key])
    hints.learn(mark, [(("/queue/a", "m9"), 9)])
    assert len(hints) == 0
    hints.learn(hints.mark(), [(("/queue/a", "m9"), 9)])
    assert hints.get(("/queue/a", "m9")) == 9


def test_the_oldest_hints_go_first_beyond_the_capacity() -> None:
    hints = SeqHints(capacity=2)
    hints.learn(hints.mark(), [(A, 1), (B, 2)])
    hints.learn(hints.mark(), [(C, 3)])
    assert (hints.get(A), hints.get(B), hints.get(C)) == (None, 2, 3)


def test_removals_are_kept_only_while_a_read_that_began_before_them_is_in_progress() -> None:
    hints = SeqHints()
    hints.written([A])  # no read in progress: nothing to keep
    assert not hints._recent
    first, second = hints.mark(), None
    hints.written([B])
    second = hints.mark()
    hints.written([C])
    assert [group for group, _ in hints._recent] == [2, 3]
    hints.learn(first, [(B, 2)])  # B went after `first` began: not learnt
    assert hints.get(B) is None and [group for group, _ in hints._recent] == [3]
    hints.learn(second, [(A, 9), (C, 3)])
    assert (hints.get(A), hints.get(C)) == (9, None) and not hints._recent
