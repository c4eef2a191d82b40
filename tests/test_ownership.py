from hypothesis import given
from hypothesis import strategies as st

from vbranch.core.merge import branch_state, merge_versions
from vbranch.core.ownership import (
    ABSENT,
    EXECUTABLE,
    REGULAR,
    UNATTRIBUTED,
    FileState,
    apply_edit,
    new_record,
    reassign,
    record_change,
    spans,
    split_lines,
)

A, B, C = 1, 2, 3


def text(data: str) -> FileState:
    return FileState(True, REGULAR, data.encode())


def lines(*items: str) -> str:
    return "".join(f"{i}\n" for i in items)


def test_split_lines_keeps_endings_and_a_missing_last_newline():
    assert split_lines(b"a\r\nb\nc") == [b"a\r\n", b"b\n", b"c"]
    assert split_lines(b"") == []
    assert split_lines(b"\n") == [b"\n"]
    assert split_lines(b"a\x0bb\x0c\x1c\x85c\nd") == [b"a\x0bb\x0c\x1c\x85c\n", b"d"]  # only LF ends a line


@given(st.binary(max_size=40) | st.lists(st.sampled_from([b"a", b"\n", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x85"])).map(b"".join))
def test_split_lines_is_the_lf_split_whatever_the_bytes(data):
    """The fast path (bytes.splitlines, when there is no CR) gives exactly the LF split, endings kept."""
    parts = data.split(b"\n")
    assert split_lines(data) == [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def test_adjacent_lines_of_two_branches_stay_separate():
    rec = new_record("f", text(lines("1", "2", "3", "4")))
    rec = record_change(rec, text(lines("1", "two", "3", "4")), A)
    rec = record_change(rec, text(lines("1", "two", "three", "4")), B)
    assert branch_state(rec, A).data == lines("1", "two", "3", "4").encode()
    assert branch_state(rec, B).data == lines("1", "2", "three", "4").encode()
    assert [s.owners for s in spans(rec.items)] == [(A,), (B,)]


def test_adjacent_edits_in_the_other_order_keep_line_order():
    rec = new_record("f", text(lines("1", "2", "3")))
    rec = record_change(rec, text(lines("1", "2", "THREE")), B)
    rec = record_change(rec, text(lines("1", "TWO", "THREE")), A)
    assert branch_state(rec, A).data == lines("1", "TWO", "3").encode()
    assert branch_state(rec, B).data == lines("1", "2", "THREE").encode()


def test_two_branches_inserting_at_the_same_base_position():
    rec = new_record("f", text(lines("1", "2")))
    rec = record_change(rec, text(lines("1", "a", "2")), A)
    rec = record_change(rec, text(lines("1", "a", "b", "2")), B)
    assert branch_state(rec, A).data == lines("1", "a", "2").encode()
    assert branch_state(rec, B).data == lines("1", "b", "2").encode()
    merged = merge_versions(split_lines(rec.base.data), [split_lines(branch_state(rec, o).data) for o in (A, B)])
    assert b"".join(merged) == rec.known.data


def test_rewriting_another_branchs_line_is_contested():
    rec = new_record("f", text(lines("1", "2", "3")))
    rec = record_change(rec, text(lines("1", "mine", "3")), A)
    rec = record_change(rec, text(lines("1", "yours", "3")), B)
    contested = [s for s in spans(rec.items) if len(s.owners) > 1]
    assert len(contested) == 1 and contested[0].owners == (A, B) and contested[0].inserted == (2, 2)


def test_deleting_another_branchs_line_leaves_a_contested_tombstone():
    rec = new_record("f", text(lines("1", "2")))
    rec = record_change(rec, text(lines("1", "new", "2")), A)
    rec = record_change(rec, text(lines("1", "2")), B)
    assert [s.removed for s in spans(rec.items) if s.owners == (A, B)] == [1]
    resolved = reassign(rec, B)
    assert not any(len(s.owners) > 1 for s in spans(resolved.items))


def test_own_lines_can_be_rewritten_freely():
    rec = new_record("f", text(lines("1", "2")))
    rec = record_change(rec, text(lines("1", "x", "2")), A)
    rec = record_change(rec, text(lines("1", "y", "2")), A)
    assert [s.owners for s in spans(rec.items)] == [(A,)]
    assert branch_state(rec, A).data == lines("1", "y", "2").encode()


def test_an_edit_undone_leaves_no_change():
    rec = new_record("f", text(lines("1", "2", "3")))
    rec = record_change(rec, text(lines("1", "x", "3")), A)
    rec = record_change(rec, text(lines("1", "2", "3")), A)
    assert not rec.changed and spans(rec.items) == []


def test_undo_within_a_bigger_change_folds_back_to_kept_lines():
    rec = new_record("f", text(lines("1", "2", "3")))
    rec = record_change(rec, text(lines("x", "y", "3")), A)
    rec = record_change(rec, text(lines("x", "2", "3")), A)
    assert [(s.inserted, s.deleted) for s in spans(rec.items)] == [((1, 1), (1, 1))]


def test_whole_file_changes_have_one_owner_or_are_contested():
    rec = new_record("new.txt", ABSENT)
    rec = record_change(rec, text("hello\n"), A)
    assert rec.is_whole and rec.owners == (A,)
    assert branch_state(rec, A) == text("hello\n")
    assert branch_state(rec, B) == ABSENT
    rec = record_change(rec, text("hello\nworld\n"), B)
    assert rec.owners == (A, B)


def test_mode_change_after_line_edits_takes_every_owner():
    rec = new_record("s.sh", text(lines("1", "2")))
    rec = record_change(rec, text(lines("one", "2")), A)
    rec = record_change(rec, FileState(True, EXECUTABLE, lines("one", "2").encode()), B)
    assert rec.is_whole and rec.owners == (A, B)


def test_unattributed_lines_are_kept_apart_from_branches():
    rec = new_record("f", text(lines("1", "2", "3")))
    rec = record_change(rec, text(lines("1", "?", "3")), UNATTRIBUTED)
    assert branch_state(rec, A).data == lines("1", "2", "3").encode()
    rec = reassign(rec, A, (2, 2))
    assert branch_state(rec, A).data == lines("1", "?", "3").encode()


def test_reassign_a_line_range_moves_only_those_lines():
    rec = new_record("f", text(lines("1", "2", "3", "4")))
    rec = record_change(rec, text(lines("1", "x", "y", "4")), A)
    rec = reassign(rec, B, (3, 3))
    assert branch_state(rec, A).data == lines("1", "x", "3", "4").encode()
    assert branch_state(rec, B).data == lines("1", "2", "y", "4").encode()


def test_apply_edit_places_an_insertion_before_the_following_line():
    items = [("K", ())] * 2
    out = apply_edit(items, [b"a\n", b"b\n"], [b"a\n", b"new\n", b"b\n"], A)
    assert out == [("K", ()), ("I", (A,)), ("K", ())]


def test_merge_versions_refuses_overlapping_different_changes():
    base = [b"1\n", b"2\n", b"3\n"]
    assert merge_versions(base, [[b"1\n", b"x\n", b"3\n"], [b"1\n", b"y\n", b"3\n"]]) is None
    assert merge_versions(base, [[b"1\n", b"x\n", b"3\n"], [b"1\n", b"x\n", b"3\n"]]) == [b"1\n", b"x\n", b"3\n"]
    assert merge_versions(base, [[b"x\n", b"2\n", b"3\n"], [b"1\n", b"y\n", b"3\n"]]) == [b"x\n", b"y\n", b"3\n"]



def test_an_insertion_follows_the_visible_line_before_others_deletions():
    rec = new_record("f", text(lines("0", "1", "2")))
    rec = record_change(rec, text(lines("0", "2")), B)  # B deletes line 1
    rec = record_change(rec, text(lines("0", "after 0", "2")), A)  # A adds after line 0
    assert branch_state(rec, A).data == lines("0", "after 0", "1", "2").encode()
    assert branch_state(rec, B).data == lines("0", "2").encode()


def test_a_file_over_the_line_limit_is_owned_whole():
    """A generated file of that size (a lock file) is owned whole: recording it stays quick under the lock."""
    from vbranch.core.ownership import LINE_LIMIT

    base = FileState(True, 0o100644, b"".join(b"%d\n" % i for i in range(LINE_LIMIT + 1)))
    changed = FileState(True, 0o100644, base.data.replace(b"\n7\n", b"\nseven\n"))
    rec = record_change(new_record("lock.json", base), changed, 1)
    assert rec.is_whole and rec.owners == (1,)
    small = FileState(True, 0o100644, b"".join(b"%d\n" % i for i in range(100)))
    assert not record_change(new_record("s", small), FileState(True, 0o100644, small.data + b"x\n"), 1).is_whole
