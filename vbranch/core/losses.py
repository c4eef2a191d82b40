"""Work a change took away from a branch: found, and merged back. Pure: records in, records out.

The fold that sees a change compares each other branch's version of the file before and after
(`losses`); `ops/rescue.py` keeps what was lost and puts it back (`merged_back`, `restored`).
"""
from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs the hook path
    from typing import Callable

from vbranch.core.merge import merge_states
from vbranch.core.ownership import (
    UNATTRIBUTED, FileOwnership, FileState, branch_state, changed_lines, new_record, record_change, runs,
)

# A branch's version of a file (base plus its own changes) from before a change took some of
# it away; `by` is the session whose change it was (None: nobody reported it).
Kept = namedtuple("Kept", "path branch_id base version at by")


def losses(before: FileOwnership, after: FileOwnership, actors: set[int]) -> list[tuple[int, FileState]]:
    """Branches (not `actors`) whose version of the file the change altered: (branch, its version before)."""
    out = []
    kept = _kept_versions(before, after)
    for branch in sorted(before.changers - actors - {UNATTRIBUTED}):
        if kept(branch):
            continue  # its version is the base, or the same after: nothing lost, and no need to build it
        mine = branch_state(before, branch)
        if mine != before.base and mine != branch_state(after, branch):
            out.append((branch, mine))
    return out


def _kept_versions(before: FileOwnership, after: FileOwnership) -> Callable[[int], bool]:
    """A test that is true of a branch whose version of the file is surely the base, or the same
    before and after; false of the rest (their versions are built and compared).

    A branch's version is the base with its own changes: its D items (which base lines go) and I
    items (which lines come, where among the base lines). Most changes touch none of another
    branch's items, and comparing those items is cheap where building a large file's version is not.
    """
    if before.is_whole or after.is_whole or before.base != after.base:
        return lambda branch: False
    first, end_before, end_after = changed_lines(before.known.data, after.known.data)
    was = _own_changes(before.items, first, end_before)
    now = _own_changes(after.items, first, end_after)

    def kept(branch: int) -> bool:
        mine = was.get(branch)
        return mine is None or (mine == now.get(branch) and None not in mine)  # None: no change of its own

    return kept


def _own_changes(items: list, first: int, end: int) -> dict[int, list]:
    """Each single owner's changes, as a key that is equal for equal versions of its file.

    A deleted run: ("D", base position, count). An inserted run: ("I", base position, count, where its
    text is), where the text is current lines first..end or lines the change did not touch, which
    keep their text: before `first` named by index, from `end` by their distance to it. A run in
    the changed lines gets None (unknown: the caller builds the version).
    """
    out: dict[int, list] = {}
    b = c = 0  # base and current lines before this run
    for (op, owners_), n in runs(items):
        if op == "K":
            b, c = b + n, c + n
            continue
        if len(owners_) == 1 and op != "X":
            if op == "D":
                key = ("D", b, n)
            elif c + n <= first:
                key = ("I", b, n, "before", c)
            elif c >= end:
                key = ("I", b, n, "after", c - end)
            else:
                key = None
            out.setdefault(owners_[0], []).append(key)
        b += n if op == "D" else 0
        c += n if op == "I" else 0
    return out


def merged_back(current: FileOwnership, kept: Kept) -> FileState | None:
    """The working file with the kept version's changes merged back in; None when they clash."""
    if current.base != kept.base:
        return None  # the base moved (a landing or an update) since: merge by hand from `vbranch rescue --show`
    if not current.known.exists:
        return kept.version  # the file was deleted: its kept version comes back whole
    merged, _where = merge_states(current.base, current.known, kept.version)
    return merged


def restored(current: FileOwnership, kept: Kept) -> FileOwnership | None:
    """The record after putting the kept work back, its lines the branch's again; None on a clash.

    Rebuilt from the base, one owner's version at a time: the kept branch's first,
    then each other owner set's as it is now (changes about the kept branch's own
    lines excepted: those are what took its work away). So every branch owns exactly
    its own lines again; folding the kept version into the file as it is would leave
    them contested with whoever took them away, or clash where lines were deleted.
    """
    if current.base != kept.base:
        return None  # the base moved (a landing or an update) since
    rec = record_change(new_record(current.path, current.base), kept.version, kept.branch_id)
    state = kept.version
    for owner_set in _owner_sets(current, kept.branch_id):
        following, _clash = merge_states(current.base, state, _version(current, owner_set))
        if following is None:
            merged = merged_back(current, kept)  # best effort: the lines come back, maybe contested
            return None if merged is None else record_change(current, merged, kept.branch_id)
        rec = record_change(rec, following, owner_set[0], owner_set[1:])
        state = following
    return rec


def _owner_sets(rec: FileOwnership, keep: int) -> list[tuple[int, ...]]:
    if rec.is_whole:
        sets = {rec.owners} if rec.changed else set()
    else:
        sets = {owners_ for op, owners_ in rec.items if op != "K"}
    return sorted(s for s in sets if keep not in s)


def _version(rec: FileOwnership, owner_set: tuple[int, ...]) -> FileState:
    """The base plus only the changes owned by exactly `owner_set`."""
    if rec.is_whole:
        return rec.known if rec.owners == owner_set else rec.base
    items = [(op, (-1,) if owners_ == owner_set else owners_) for op, owners_ in rec.items]
    return branch_state(FileOwnership(rec.path, rec.base, rec.known, items, (), None), -1)
