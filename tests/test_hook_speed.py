"""The hook path's fast paths give exactly what the plain code they replaced gave.

Each `slow_*` function below is the earlier, straightforward version (every line split, every
item visited, every branch's version built); hypothesis runs random edit histories of several
branches over one file through both and compares. No timing here: only equality.
"""
from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbranch.core import guard, ownership
from vbranch.core.guard import Touched
from vbranch.core.losses import losses
from vbranch.core.ownership import (
    UNATTRIBUTED, FileOwnership, FileState, OwnedSpan, branch_state, diff_opcodes, new_record, record_change, spans,
    split_lines,
)
from vbranch.state import store

EXAMPLES = int(os.environ.get("VBRANCH_PROPERTY_EXAMPLES", "150"))

# --- the plain versions -------------------------------------------------------------------------


def slow_owners(rec: FileOwnership) -> set[int]:
    if rec.is_whole:
        return set(rec.owners) if rec.changed else set()
    return {o for op, owners in rec.items if op != "K" for o in owners}


def slow_contested(rec: FileOwnership) -> bool:
    if rec.is_whole:
        return len(rec.owners) > 1
    return any(len(owners) > 1 for op, owners in rec.items if op != "K")


def slow_losses(before: FileOwnership, after: FileOwnership, actors: set[int]) -> list[tuple[int, FileState]]:
    out = []
    for branch in sorted(slow_owners(before) - actors - {UNATTRIBUTED}):
        mine = branch_state(before, branch)
        if mine != before.base and mine != branch_state(after, branch):
            out.append((branch, mine))
    return out


def slow_apply_edit(items, known, new, actor, co_owners=()):
    current = [i for i, (op, _) in enumerate(items) if op in "KI"]
    out = []
    done = 0
    for _tag, i1, i2, j1, j2 in diff_opcodes(known, new):
        if i2 > i1:
            start, end = current[i1], current[i2 - 1] + 1
        else:
            start = end = current[i1 - 1] + 1 if i1 else 0
        out.extend(items[done:start])
        out.extend(ownership._replace_region(items[start:end], j2 - j1, actor, co_owners))
        done = end
    out.extend(items[done:])
    return out


def slow_canonicalize(items, base, current):
    texts = ownership._item_texts(items, base, current)
    out = []
    group = []
    for index, (op, _) in enumerate(items + [("K", ())]):
        if op != "K":
            group.append(index)
            continue
        out.extend(ownership._fold_group(group, items, texts))
        group = []
        if index < len(items):
            out.append(items[index])
    return out


def slow_record_change(rec, new, actor, co_owners=()):
    if new == rec.known:
        return rec
    if ownership.lines_eligible(rec.base, new):
        if rec.is_whole:
            prior = slow_owners(rec)
            clean = [("K", ())] * len(split_lines(rec.base.data)) if rec.base.is_text else None
            items = slow_apply_edit(clean, split_lines(rec.base.data), split_lines(new.data), actor, co_owners)
            items = ownership._add_owners(items, prior - {actor})
        else:
            items = slow_apply_edit(rec.items, split_lines(rec.known.data), split_lines(new.data), actor, co_owners)
        items = slow_canonicalize(items, split_lines(rec.base.data), split_lines(new.data))
        return FileOwnership(rec.path, rec.base, new, items)
    owners = tuple(sorted(slow_owners(rec) | {actor} | set(co_owners)))
    return FileOwnership(rec.path, rec.base, new, None, owners)


def slow_spans(items):
    out = []
    base_line = cur_line = 0
    current = None
    for op, owners in items:
        if op == "K":
            base_line += 1
            cur_line += 1
            if current:
                out.append(OwnedSpan(current["owners"], current["ins"], current["del"], current["x"]))
                current = None
            continue
        if current is None or current["owners"] != owners:
            if current:
                out.append(OwnedSpan(current["owners"], current["ins"], current["del"], current["x"]))
            current = {"owners": owners, "ins": None, "del": None, "x": 0}
        if op == "D":
            base_line += 1
            current["del"] = (base_line, base_line) if current["del"] is None else (current["del"][0], base_line)
        elif op == "I":
            cur_line += 1
            current["ins"] = (cur_line, cur_line) if current["ins"] is None else (current["ins"][0], cur_line)
        else:
            current["x"] += 1
    if current:
        out.append(OwnedSpan(current["owners"], current["ins"], current["del"], current["x"]))
    return out


def slow_touched_lines(rec, proposed, mine, protected):
    if proposed is not None and proposed == rec.known:
        return []

    def foreign(owners):
        return mine not in owners and bool(set(owners) & protected)

    if rec.is_whole:
        return [Touched(rec.owners, None)] if rec.changed and foreign(rec.owners) else []
    owners_by_line = [owners for op, owners in rec.items if op in "KI"]
    if proposed is None or not proposed.is_text or proposed.mode != rec.known.mode:
        changed = list(range(len(owners_by_line)))
    else:
        opcodes = diff_opcodes(split_lines(rec.known.data), split_lines(proposed.data))
        changed = [line for _tag, i1, i2, _j1, _j2 in opcodes for line in range(i1, i2)]
    out = []
    for line in changed:
        owners = owners_by_line[line]
        if not foreign(owners):
            continue
        if out and out[-1].owners == owners and out[-1].lines[1] == line:
            out[-1] = Touched(owners, (out[-1].lines[0], line + 1))
        else:
            out.append(Touched(owners, (line + 1, line + 1)))
    return out


def slow_pack_items(items):
    runs = []
    for op, owners in items:
        if runs and runs[-1][0] == op and runs[-1][2] == list(owners):
            runs[-1][1] += 1
        else:
            runs.append([op, 1, list(owners)])
    return json.dumps(runs, separators=(",", ":"))


# --- random histories ---------------------------------------------------------------------------

# Few distinct lines, so that the diff has choices to make; a CR now and then (data, not a line end).
LINES = [b"a\n", b"b\n", b"c\n", b"a\r\n", b"long line one\n", b"long line two\n"]


@st.composite
def histories(draw):
    """A base text and a list of (actor, co-owners, new text): each a few line edits of the last,
    or a return to the base or to an earlier text (an edit undone, another's work reverted)."""
    base = draw(st.lists(st.sampled_from(LINES), min_size=0, max_size=30))
    if base and draw(st.booleans()):
        base[-1] = base[-1].rstrip(b"\n") or b"z"  # no final newline
    texts = [b"".join(base)]
    steps = []
    lines = list(base)
    for _ in range(draw(st.integers(1, 12))):
        actor = draw(st.integers(0, 4))
        co = tuple(sorted(set(draw(st.lists(st.integers(1, 4), max_size=1))) - {actor})) if draw(st.integers(0, 5)) == 0 else ()
        kind = draw(st.sampled_from(["edit", "edit", "edit", "edit", "revert"]))
        if kind == "revert":
            lines = split_lines(texts[draw(st.integers(0, len(texts) - 1))])
        else:
            for _ in range(draw(st.integers(1, 3))):
                at = draw(st.integers(0, len(lines)))
                op = draw(st.sampled_from(["replace", "delete", "insert"]))
                if op == "insert" or at == len(lines):
                    lines[at:at] = draw(st.lists(st.sampled_from(LINES + [b"new %d\n" % at]), min_size=1, max_size=3))
                elif op == "delete":
                    del lines[at:at + draw(st.integers(1, 3))]
                else:
                    lines[at] = draw(st.sampled_from(LINES + [b"edited %d\n" % at, b"tail"]))
        text = b"".join(lines)
        lines = split_lines(text)  # a line without LF joined with the next is one line now
        texts.append(text)
        steps.append((actor, co, text))
    return texts[0], steps


def replayed(history, path: str = "f"):
    """The record of a file after each step of a history, one record_change each."""
    base_text, steps = history
    rec = new_record(path, FileState(True, ownership.REGULAR, base_text))
    for actor, co, text in steps:
        rec = record_change(rec, FileState(True, ownership.REGULAR, text), actor, co)
    return rec


def _same(a: FileOwnership, b: FileOwnership) -> bool:
    return (a.base, a.known, a.items, a.owners) == (b.base, b.known, b.items, b.owners)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_record_change_and_losses_equal_the_plain_versions(history):
    base_text, steps = history
    rec = new_record("f", FileState(True, ownership.REGULAR, base_text))
    for actor, co, text in steps:
        new = FileState(True, ownership.REGULAR, text)
        fast, slow = record_change(rec, new, actor, co), slow_record_change(rec, new, actor, co)
        assert _same(fast, slow)
        assert losses(rec, fast, {actor, *co}) == slow_losses(rec, fast, {actor, *co})
        assert (fast.changers, fast.contested) == (slow_owners(fast), slow_contested(fast))
        assert _same(store.unpack_record("f", store.pack_record(fast)), fast)  # kept as its inserted lines: the same file
        if not fast.is_whole:
            assert spans(fast.items) == slow_spans(fast.items)
            packed = store._pack_items(ownership.runs(fast.items))
            assert packed == slow_pack_items(fast.items)
            assert store._unpack_items(packed)[0] == fast.items
            for mine in (None, 1, 2):
                protected = {1, 2, 3, 4} - {mine}
                others = [FileState(True, ownership.REGULAR, t) for t in {base_text, text + b"x\n", *(t for _a, _c, t in steps)}]
                for proposed in [None, *others]:
                    assert guard.touched_lines(fast, proposed, mine, protected) == slow_touched_lines(fast, proposed, mine, protected)
        rec = fast


@settings(max_examples=EXAMPLES, deadline=None)
@given(histories(), st.lists(st.integers(0, 40), max_size=6))
def test_the_item_of_each_current_line_is_found_by_runs(history, wanted):
    rec = replayed(history)
    if rec.is_whole:
        return
    current = [i for i, (op, _) in enumerate(rec.items) if op in "KI"]
    lines = sorted({w for w in wanted if w < len(current)})
    assert ownership._item_indexes(rec.items, lines) == {line: current[line] for line in lines}


@given(st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"")), st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"")))
def test_changed_lines_name_the_lines_that_differ(a, b):
    first, end_a, end_b = ownership.changed_lines(a, b)
    la, lb = split_lines(a), split_lines(b)
    assert ownership.line_count(a) == len(la)
    assert la[:first] == lb[:first] and la[end_a:] == lb[end_b:]
    assert first <= end_a <= len(la) and first <= end_b <= len(lb)


# --- losses kept, on a large file ---------------------------------------------------------------


def _large(n: int = 2000) -> tuple[FileOwnership, list[bytes]]:
    """A record of a large file where branches 1, 2 and 3 each changed one line of their own."""
    lines = [b"line %d\n" % i for i in range(n)]
    rec = new_record("big.txt", FileState(True, ownership.REGULAR, b"".join(lines)))
    for branch, at in ((1, 100), (2, 1000), (3, 1900)):
        lines[at] = b"line %d of branch %d\n" % (at, branch)
        rec = record_change(rec, FileState(True, ownership.REGULAR, b"".join(lines)), branch)
    return rec, lines


def _change(rec: FileOwnership, lines: list[bytes], actor: int) -> tuple[FileOwnership, list]:
    after = record_change(rec, FileState(True, ownership.REGULAR, b"".join(lines)), actor)
    found = losses(rec, after, {actor})
    assert found == slow_losses(rec, after, {actor})
    return after, found


def test_an_edit_of_only_ones_own_lines_loses_nothing():
    rec, lines = _large()
    lines[1000] = b"line 1000 of branch 2, again\n"
    assert _change(rec, lines, 2)[1] == []
    lines.insert(500, b"a line branch 2 adds\n")  # every line after it moves: others' versions do not
    assert _change(rec, lines, 2)[1] == []


def test_deleting_another_branchs_line_is_kept_for_rescue():
    rec, lines = _large()
    before = branch_state(rec, 1)
    del lines[100]
    assert _change(rec, lines, 2)[1] == [(1, before)]


def test_editing_inside_another_branchs_line_is_kept_for_rescue():
    rec, lines = _large()
    before = branch_state(rec, 3)
    lines[1900] = b"line 1900 of branch 3, changed by branch 2\n"
    assert _change(rec, lines, 2)[1] == [(3, before)]


def test_reverting_another_branchs_line_to_the_base_is_kept_for_rescue():
    rec, lines = _large()
    before = branch_state(rec, 1)
    lines[100] = b"line 100\n"
    assert _change(rec, lines, 2)[1] == [(1, before)]


def test_deleting_the_lines_around_another_branchs_line_keeps_its_version():
    rec, lines = _large()
    del lines[99], lines[100]  # base lines 99 and 101, around branch 1's line: branch 2's own deletions
    assert _change(rec, lines, 2)[1] == []


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_losses_equal_the_plain_version_on_any_two_records_of_a_file(history, data):
    """Not only records one change apart: `after` is the record with lines' texts and items' owners changed
    at random (a shortcut that trusted how record_change assigns owners would be caught here)."""
    before = replayed(history)
    if before.is_whole:
        return
    lines = split_lines(before.known.data)
    for _ in range(data.draw(st.integers(0, 2))):
        if lines:
            lines[data.draw(st.integers(0, len(lines) - 1))] = data.draw(st.sampled_from(LINES + [b"other\n"]))
    if lines and not before.known.data.endswith(b"\n"):
        lines[-1] = lines[-1].rstrip(b"\n") or b"z"  # keep the line count
    items = list(before.items)
    changed = [i for i, (op, _) in enumerate(items) if op != "K"]
    for _ in range(data.draw(st.integers(0, 2)) if changed else 0):
        i = data.draw(st.sampled_from(changed))
        items[i] = (items[i][0], data.draw(st.sampled_from([(1,), (2,), (1, 2), (3,)])))
    after = FileOwnership("f", before.base, FileState(True, ownership.REGULAR, b"".join(lines)), items)
    assert len(split_lines(after.known.data)) == sum(op in "KI" for op, _ in items)
    for actors in (set(), {1}, {4}):
        assert losses(before, after, actors) == slow_losses(before, after, actors)


# --- a prompt's contested check -----------------------------------------------------------------


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(histories(), min_size=1, max_size=4), st.lists(st.sampled_from([(1,), (2,), (1, 2), (0,), (2, 3, 4)]), max_size=3))
def test_the_records_read_for_contested_changes_are_all_that_hold_one(vb, tmp_path_factory, files, whole_owners):
    """`contested_files` reads a record only when its owner lists say it may hold a contested change:
    the conflicts found are those found in every record."""
    from vbranch.core.ownership import conflicts

    v = vb({"a.txt": "one\n"})
    ws = v.ws()
    try:
        with ws.store.tx():
            for k, history in enumerate(files):
                ws.store.put_file(replayed(history, f"f{k}"))
            for k, owners in enumerate(whole_owners):
                ws.store.put_file(FileOwnership(f"w{k}", FileState(), FileState(True, ownership.REGULAR, b"\0bin"), None, owners))
        every = [r for r in ws.store.files() if r.changed]
        assert conflicts([r for r in ws.store.contested_files() if r.changed]) == conflicts(every)
    finally:
        ws.close()


def test_lines_kept_by_identity_are_the_lines_of_that_object():
    """A large base's lines are kept for the object they were split from: another object, even one
    made at the same address once the first is gone, is split afresh."""
    kept = ownership.lines_of
    for k in range(20):  # more objects than are kept, each gone before the next is made
        data = b"".join(b"line %d of version %d\n" % (i, k) for i in range(5000))
        assert kept(data) == split_lines(data) and kept(data) is kept(data)
        assert ownership._newlines_of(data) == data.count(b"\n")
    small = b"a\nb\n"
    assert kept(small) == split_lines(small)
