"""Merges of blobs by id (ops/blobmerge.py) against the merges of their contents they stand in for:
the same result whether a version's hunks are found afresh or kept, under any budget."""
from __future__ import annotations

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_property import edited_texts, related_texts
from vbranch.core.merge import merge_states, merge_text_versions
from vbranch.core.ownership import ABSENT, LINE_LIMIT, REGULAR, FileState, lines_eligible
from vbranch.git import gitops
from vbranch.ops import blobmerge


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return pygit2.init_repository(str(tmp_path_factory.mktemp("blobs")), bare=True)


def blob(repo, data: bytes | None, mode: int = REGULAR):
    return None if data is None else (gitops.write_blob(repo, data), mode)


def state(data: bytes | None, mode: int = REGULAR) -> FileState:
    return ABSENT if data is None else FileState(True, mode, data)


def workspace_merge(base: FileState, versions: list[FileState]) -> FileState:
    """What the workspace merge gave before blobmerge, from the contents (committing._merge_states)."""
    if len(set(versions)) == 1:
        return versions[0]
    if all(lines_eligible(base, v) for v in versions):
        merged = merge_text_versions(base.data, [v.data for v in versions])
        if merged is not None:
            return FileState(True, base.mode, merged)
    return base


def as_state(repo, found) -> FileState:
    return gitops.blob_state(repo, tuple(found)) if isinstance(found, gitops.Blob) else found


some_texts = st.one_of(related_texts(4), edited_texts(4), st.lists(st.sampled_from([b"x\n", b"\0bin", None]), min_size=4, max_size=4))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(some_texts, st.sampled_from([0, 400, blobmerge.HUNKS_BUDGET]), st.booleans())
def test_blob_merges_equal_the_content_merges_kept_or_not(repo, monkeypatch, texts, budget, exec_bit):
    monkeypatch.setattr(blobmerge, "HUNKS_BUDGET", budget)
    monkeypatch.setattr(blobmerge, "_hunks", {})
    monkeypatch.setattr(blobmerge, "_hunks_size", [0])
    base_data, *versions = texts
    modes = [REGULAR, 0o100755 if exec_bit else REGULAR, REGULAR]
    base_key = blob(repo, base_data)
    keys = [blob(repo, v, m) for v, m in zip(versions, modes, strict=True)]
    base, states = state(base_data), [state(v, m) for v, m in zip(versions, modes, strict=True)]
    for _ in range(2):  # found, then (within the budget) kept
        distinct = [k for k in keys if k != base_key]
        if len(set(distinct)) >= 2:
            found = blobmerge.merged_versions(repo, base_key, distinct)
            expected = workspace_merge(base, [s for s, k in zip(states, keys, strict=True) if k != base_key])
            assert as_state(repo, found) == expected
        ours, theirs = keys[0], keys[1]
        if len({base_key, ours, theirs}) == 3:
            assert blobmerge.merged_three(repo, base_key, ours, theirs) == merge_states(base, states[0], states[1])
        assert blobmerge._hunks_size[0] <= budget
        assert sum(cost for _h, cost in blobmerge._hunks.values()) == blobmerge._hunks_size[0]


def test_a_file_over_the_line_limit_is_still_merged_three_ways(repo):
    """merge_states merges texts of any length; the workspace merge leaves them to the base."""
    base = b"".join(b"%d\n" % i for i in range(LINE_LIMIT + 5))
    ours, theirs = b"first\n" + base, base + b"last\n"
    keys = [blob(repo, t) for t in (base, ours, theirs)]
    merged, clashes = blobmerge.merged_three(repo, *keys)
    assert (merged, clashes) == (FileState(True, REGULAR, b"first\n" + base + b"last\n"), None)
    assert blobmerge.merged_versions(repo, keys[0], keys[1:]) == gitops.Blob(*keys[0])
