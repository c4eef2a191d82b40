"""Merges of files given by blob id: the workspace's merge of every branch's version, and a landing's
three-way merge of a path both sides changed.

Each version's hunks against its base (`merge.text_hunks`) are kept by the two blob ids, up to
HUNKS_BUDGET bytes (the new lines, as Python holds them), the least recently used dropped first;
the watcher's threads share them, hence the lock. Blobs never change, so a kept entry is never
stale. Why: a Stop merges every branch's version of each file several branches changed, though
only the committing branch's is new (16 sessions sharing a 600 KB file: 16 blob reads and line
counts per Stop, a third of its time); and a landing merges each other branch's version of a
shared file with the landed one, the same versions against the same base the Stops diffed (45
blob reads in the first landing of 16).
"""
from __future__ import annotations

import threading

from vbranch.core.merge import merge_states, merge_text_hunks, merge_texts_of_hunks, text_hunks
from vbranch.core.ownership import FileState, lines_eligible
from vbranch.git import gitops

Key = tuple[str, int]  # a blob id and mode, as gitops.entry_key gives them

HUNKS_BUDGET = 16 << 20
LINE_OVERHEAD = 64  # what Python spends on a kept line beyond its bytes (the bytes object, its slot in a list)
_hunks: dict[tuple, tuple[list | None, int]] = {}  # (base key, version key) -> (hunks, cost)
_hunks_size = [0]
_hunks_lock = threading.Lock()


def merged_versions(repo, base_key: Key | None, versions: list[Key | None]) -> FileState | gitops.Blob:
    """The workspace's content of a path: every branch's change to it merged (`versions`: the
    branches' blobs, in the order their lines appear). The base where they cannot be merged by
    lines (not `lines_eligible`, or merge.merge_text_versions fails): the whole change then shows
    as uncommitted."""
    base = gitops.ABSENT if base_key is None else gitops.Blob(*base_key)
    found = [_hunks_of(repo, base_key, key) for key in versions]
    if any(hunks is None for hunks in found):
        return base
    merged = merge_text_hunks(gitops.blob_state(repo, base_key).data, found)
    return base if merged is None else FileState(True, base_key[1], merged)


def merged_three(repo, base_key: Key | None, ours: Key | None, theirs: Key | None):
    """merge.merge_states of three blobs: (result, None) or (None, clashing base lines; None for
    the whole file)."""
    mine, other = _hunks_of(repo, base_key, ours), _hunks_of(repo, base_key, theirs)
    if mine is None or other is None:  # not both line-eligible: merge_states decides, from the blobs
        return merge_states(*(gitops.blob_state(repo, key) for key in (base_key, ours, theirs)))
    merged, clashes = merge_texts_of_hunks(gitops.blob_state(repo, base_key).data, [mine, other])
    return (None, clashes) if merged is None else (FileState(True, base_key[1], merged), None)


def _hunks_of(repo, base_key: Key | None, key: Key | None) -> list[tuple] | None:
    """text_hunks of a version against the base, both by blob key; None where the two cannot be
    merged by lines (`lines_eligible`: one absent or binary, another mode, too many lines)."""
    with _hunks_lock:
        kept = _hunks.pop((base_key, key), None)
        if kept is not None:
            _hunks[base_key, key] = kept  # the most recently used last
            return kept[0]
    base, version = gitops.blob_state(repo, base_key), gitops.blob_state(repo, key)
    hunks = text_hunks(base.data, version.data) if lines_eligible(base, version) else None
    cost = 200 + sum(len(line) + LINE_OVERHEAD for hunk in hunks or () for line in hunk[2])
    with _hunks_lock:
        if cost <= HUNKS_BUDGET and (base_key, key) not in _hunks:
            _hunks[base_key, key] = (hunks, cost)
            _hunks_size[0] += cost
            while _hunks_size[0] > HUNKS_BUDGET:
                _hunks_size[0] -= _hunks.pop(next(iter(_hunks)))[1]
    return hunks
