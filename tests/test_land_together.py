"""Landing several branches in one operation gives what landing them one at a time gives."""
from __future__ import annotations

import shutil

import pytest

from tests.conftest import VB, fingerprint, git
from vbranch.errors import Blocked, StateError
from vbranch.ops import landing, undo
from vbranch.ops.verify import land_queue
from vbranch.state.workspace import WORKSPACE_REF

SHARED = "".join(f"shared line {i}\n" for i in range(40))
OTHER = "".join(f"other line {i}\n" for i in range(20))


def _edit_line(v: VB, session: str, path: str, line: int, text: str) -> None:
    lines = (v.repo / path).read_text().splitlines(True)
    lines[line] = text
    v.edit(session, path, "".join(lines))


def _scene(vb) -> VB:
    """Five sessions: a, b and c to land (c with its change uncommitted), d and e staying."""
    v = vb({"shared.txt": SHARED, "other.txt": OTHER, "gone.txt": "bye\n"})
    _edit_line(v, "a", "shared.txt", 5, "a was here\n")
    v.edit("a", "a.txt", "a\n")
    _edit_line(v, "b", "shared.txt", 6, "b next to a\n")  # adjacent lines: vbranch merges them
    _edit_line(v, "b", "shared.txt", 30, "b far below\n")
    v.delete("b", "gone.txt")
    _edit_line(v, "d", "shared.txt", 15, "d stays\n")
    _edit_line(v, "d", "other.txt", 3, "d in other\n")
    v.commit()
    _edit_line(v, "c", "shared.txt", 20, "c uncommitted\n")
    v.edit("c", "c.txt", "c\n")
    _edit_line(v, "d", "other.txt", 10, "d uncommitted\n")
    v.edit("e", "e.txt", "e\n")
    v.commit(v.branch_of("e"))
    return v


def _descends(v: VB, ancestor: str, rev: str) -> bool:
    return git(v.repo, "merge-base", ancestor, rev).strip() == git(v.repo, "rev-parse", ancestor).strip()


def _copy(v: VB, tmp_path) -> VB:
    twin = tmp_path / "twin"
    shutil.copytree(v.repo, twin, symlinks=True)
    copy = VB(twin)
    copy.clock = v.clock
    return copy


def _outcome(v: VB, staying: list[str]) -> dict:
    ws = v.ws()
    try:
        records = ws.store.raw_files()
        branches = sorted(b.name for b in ws.store.branches())
        base = ws.base
    finally:
        ws.close()
    tree = lambda rev: git(v.repo, "rev-parse", f"{rev}^{{tree}}").strip()  # noqa: E731
    target = git(v.repo, "rev-parse", "main").strip()
    return {
        "staying start from the target": all(_descends(v, target, f"refs/heads/{name}") for name in staying),
        "target": tree("main"), "workspace": tree(WORKSPACE_REF), "base is target": base == git(v.repo, "rev-parse", "main").strip(),
        "staying": {name: tree(f"refs/heads/{name}") for name in staying}, "records": records, "branches": branches,
        "status": git(v.repo, "status", "--porcelain", "--untracked-files=all"),
    }


@pytest.mark.parametrize("mode", ["ff", "merge", "squash"])
def test_together_equals_one_at_a_time(vb, tmp_path, mode):
    v = _scene(vb)
    twin = _copy(v, tmp_path)
    names = [v.branch_of(s) for s in "abc"]
    staying = [v.branch_of(s) for s in "de"]
    before = fingerprint(v.repo)
    ws = v.ws()
    try:
        for name in names:
            landing.land(ws, name, mode, v.at())
    finally:
        ws.close()
    ws = twin.ws()
    try:
        reports = landing.land_together(ws, names, mode, twin.at())
    finally:
        ws.close()
    assert [r.branch for r in reports] == names
    assert [r.new for r in reports][:-1] == [r.old for r in reports][1:]
    assert all(_descends(twin, r.old, r.new) for r in reports)  # the target only moves forward, one branch at a time
    assert reports[2].committed is not None  # c's uncommitted change was committed, then landed
    one, together = _outcome(v, staying), _outcome(twin, staying)
    assert together == one
    assert together["staying start from the target"]
    assert together["status"] == " M other.txt\n" and together["base is target"]  # d's uncommitted line
    assert sorted(together["staying"]) == sorted(staying) and set(together["branches"]) == set(staying)
    assert fingerprint(v.repo) == before  # no working file was written
    main = git(twin.repo, "show", "main:shared.txt")
    assert all(text in main for text in ("a was here", "b next to a", "b far below", "c uncommitted"))
    assert "d stays" not in main


def test_one_undo_undoes_the_whole(vb):
    v = _scene(vb)
    names = [v.branch_of(s) for s in "abc"]
    staying = [v.branch_of(s) for s in "de"]
    before = _outcome(v, staying)
    refs = {n: git(v.repo, "rev-parse", f"refs/heads/{n}").strip() for n in names}
    ws = v.ws()
    try:
        landing.land_together(ws, names, "ff", v.at())
        undo.undo(ws, v.at())
    finally:
        ws.close()
    after = _outcome(v, staying)
    assert after["target"] == before["target"] and after["staying"] == before["staying"]
    assert after["branches"] == before["branches"] and after["status"] == before["status"]
    assert {n: git(v.repo, "rev-parse", f"refs/heads/{n}").strip() for n in names[:2]} == {n: refs[n] for n in names[:2]}


def _contested(vb) -> VB:
    """a, b and c each add a file; b also changes the line a changed: that line is contested."""
    v = vb({"shared.txt": SHARED})
    for s in "abc":
        v.edit(s, f"{s}.txt", f"{s}\n")
    _edit_line(v, "a", "shared.txt", 5, "a was here\n")
    _edit_line(v, "b", "shared.txt", 5, "b changed a's line\n")
    v.commit()
    return v


def test_one_that_cannot_land_refuses_the_whole_and_changes_nothing(vb):
    v = _contested(vb)
    names = [v.branch_of(s) for s in "abc"]
    refs = git(v.repo, "for-each-ref")
    ws = v.ws()
    try:
        records = ws.store.raw_files()
        with pytest.raises(Blocked, match="shares changes"):
            landing.land_together(ws, names, "ff", v.at())
        assert ws.store.raw_files() == records
    finally:
        ws.close()
    assert git(v.repo, "for-each-ref") == refs


def test_an_unverified_queue_lands_together_or_holds_out_what_cannot_land(vb, tmp_path):
    v = _scene(vb)
    ws = v.ws()
    try:
        names = [v.branch_of(s) for s in "abc"]
        results = land_queue(ws, names, "ff", v.at(), "", clock=v.at)
        assert [(r.branch, r.landed) for r in results] == [(n, True) for n in names]
        assert len({r.report.new for r in results}) == 3
        assert [row.op for row in ws.store.op_rows()].count("land") == 1  # one operation
    finally:
        ws.close()
    v = _contested(vb)
    ws = v.ws()
    try:
        names = [v.branch_of(s) for s in "abc"]
        results = land_queue(ws, names, "ff", v.at(), "", clock=v.at)
    finally:
        ws.close()
    assert [(r.branch, r.landed) for r in results] == [(names[0], False), (names[1], False), (names[2], True)]
    assert "shares changes" in results[0].reason


def test_a_branch_moved_outside_vbranch_refuses_the_whole(vb):
    v = _scene(vb)
    names = [v.branch_of(s) for s in "abc"]
    elsewhere = git(v.repo, "commit-tree", "main^{tree}", "-m", "not from the base").strip()  # no parent: off the base
    git(v.repo, "update-ref", f"refs/heads/{names[1]}", elsewhere)
    refs = git(v.repo, "for-each-ref")
    ws = v.ws()
    try:
        with pytest.raises(StateError, match="does not start from the base"):
            landing.land_together(ws, names, "ff", v.at())
    finally:
        ws.close()
    assert git(v.repo, "for-each-ref") == refs
