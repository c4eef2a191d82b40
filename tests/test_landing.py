"""Landing branches one at a time and following a target that moved: pure rebasing, then real repositories."""
from __future__ import annotations

import os
import subprocess
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import VB, fingerprint, git, state_lock_is_free, tree_files, work_files
from vbranch.core.merge import branch_state
from vbranch.core.ownership import REGULAR, FileState, RebaseConflict, new_record, rebase_onto, rebase_record, record_change
from vbranch.errors import Blocked, LockTimeout, StateError
from vbranch.ops import landing

EXAMPLES = int(os.environ.get("VBRANCH_PROPERTY_EXAMPLES", "60"))


# Pure: one file, sessions owning disjoint base lines ("slots"), each replacing,
# deleting or adding after its own lines, recorded in an interleaved order.


@st.composite
def edited_file(draw, sessions: int = 4):
    n = draw(st.integers(1, 10))
    slots = []
    counter = iter(range(10**6))
    for i in range(n):
        owner = draw(st.integers(0, sessions - 1))
        change = draw(st.sampled_from(["keep", "replace", "delete"]))
        ops = [] if change == "keep" else [(change, f"s{owner} new {next(counter)}\n")]
        for _ in range(draw(st.integers(0, 2)) if change != "delete" else 0):
            ops.append(("after", f"s{owner} added {next(counter)}\n"))
        slots.append((owner, f"base {i}\n", ops))
    steps = [(owner, (i, k)) for i, (owner, _t, ops) in enumerate(slots) for k in range(len(ops))]
    return slots, draw(st.permutations(steps))


def render(slots, applied, who=None) -> bytes:
    out = []
    for i, (owner, text, ops) in enumerate(slots):
        done = [op for k, op in enumerate(ops) if (i, k) in applied and (who is None or owner in who)]
        kinds = dict(done)
        if "delete" not in kinds:
            out.append(kinds.get("replace") or text)
        out.extend(t for kind, t in done if kind == "after")
    return "".join(out).encode()


def state(data: bytes) -> FileState:
    return FileState(True, REGULAR, data)


def record_all(slots, order, skip=()):
    rec = new_record("f.txt", state(render(slots, set())))
    applied = set()
    for owner, step in order:
        applied.add(step)
        if owner not in skip:
            rec = record_change(rec, state(render(slots, applied, who=None if not skip else set(range(10)) - set(skip))), owner + 1)
    return rec, applied


def owners_of(slots) -> set[int]:
    return {owner for owner, _t, ops in slots if ops}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_file())
def test_landing_a_branch_leaves_every_other_branch_exactly_its_own_lines(scenario):
    slots, order = scenario
    rec, applied = record_all(slots, order)
    for landed in owners_of(slots):
        after = rebase_record(rec, landed + 1)
        assert after.base.data == render(slots, applied, who={landed}) == branch_state(rec, landed + 1).data
        assert after.known == rec.known  # the working file does not change
        for other in owners_of(slots) - {landed}:
            assert branch_state(after, other + 1).data == render(slots, applied, who={landed, other})
        assert branch_state(after, landed + 1) == after.base  # nothing of it is left to land


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_file(), st.data())
def test_an_upstream_change_is_merged_under_every_branch(scenario, data):
    slots, order = scenario
    owners = sorted(owners_of(slots))
    if not owners:
        return
    upstream = data.draw(st.sampled_from(owners))
    applied = {step for _o, step in order}
    rec, _ = record_all(slots, order, skip=(upstream,))
    after = rebase_onto(rec, state(render(slots, applied, who={upstream})))
    assert after.known.data == render(slots, applied)  # upstream's lines join the working file
    for other in set(owners) - {upstream}:
        assert branch_state(after, other + 1).data == render(slots, applied, who={upstream, other})


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_file(), st.data())
def test_a_change_already_upstream_counts_once(scenario, data):
    slots, order = scenario
    owners = sorted(owners_of(slots))
    if not owners:
        return
    integrated = data.draw(st.sampled_from(owners))
    rec, applied = record_all(slots, order)
    after = rebase_onto(rec, state(render(slots, applied, who={integrated})))
    assert after.known == rec.known
    assert branch_state(after, integrated + 1) == after.base
    for other in set(owners) - {integrated}:
        assert branch_state(after, other + 1).data == render(slots, applied, who={integrated, other})


def test_an_upstream_change_to_a_locally_changed_line_is_a_conflict():
    rec = record_change(new_record("f", state(b"a\nb\nc\n")), state(b"a\nB\nc\n"), 7)
    with pytest.raises(RebaseConflict) as found:
        rebase_onto(rec, state(b"a\nX\nc\n"))
    assert [(c.path, c.owners, c.lines) for c in found.value.conflicts] == [("f", (7,), (2, 2))]


# Real repositories.

BASE = {"f.txt": "".join(f"line {i}\n" for i in range(1, 10)), "g.txt": "g\n", "h.txt": "h\n"}


def three_sessions(vb) -> VB:
    v = vb(BASE)
    v.edit("a", "f.txt", BASE["f.txt"].replace("line 2\n", "A2\n"))
    v.edit("b", "f.txt", (v.repo / "f.txt").read_text().replace("line 3\n", "B3\n"))  # adjacent to a's line
    v.edit("c", "f.txt", (v.repo / "f.txt").read_text().replace("line 8\n", "line 8\nC8+\n"))
    v.edit("a", "a.txt", "new from a\n")
    v.delete("b", "g.txt")
    v.edit("c", "h.txt", "h\nc\n")
    return v


def expected(landed: set[str]) -> dict[str, bytes]:
    files = {k: v.encode() for k, v in BASE.items()}
    f = BASE["f.txt"]
    if "a" in landed:
        f = f.replace("line 2\n", "A2\n")
        files["a.txt"] = b"new from a\n"
    if "b" in landed:
        f = f.replace("line 3\n", "B3\n")
        del files["g.txt"]
    if "c" in landed:
        f = f.replace("line 8\n", "line 8\nC8+\n")
        files["h.txt"] = b"h\nc\n"
    files["f.txt"] = f.encode()
    return files


def land(v: VB, session: str, mode: str = "ff"):
    ws = v.ws()
    try:
        return landing.land(ws, v.branch_of(session), mode, v.at())
    finally:
        ws.close()


def update(v: VB):
    ws = v.ws()
    try:
        return landing.update(ws, v.at())
    finally:
        ws.close()


def fsck_clean(repo) -> None:
    proc = subprocess.run(["git", "-C", str(repo), "fsck", "--strict", "--no-dangling"], capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("modes", [("ff", "ff", "ff"), ("merge", "squash", "ff")])
def test_landing_three_branches_in_turn(vb, modes):
    v = three_sessions(vb)
    v.commit("session-b")  # one committed beforehand, the others land their uncommitted work
    files = work_files(v.repo)
    names = {s: v.branch_of(s) for s in "abc"}
    landed: set[str] = set()
    for session, mode in zip("acb", modes):
        before = fingerprint(v.repo)
        land(v, session, mode)
        landed.add(session)
        assert fingerprint(v.repo) == before, "landing changed a working file"
        assert tree_files(v.repo, "main") == expected(landed)
        for other in set("abc") - landed:  # the others start from the new target, with their own lines
            assert tree_files(v.repo, f"refs/heads/{names[other]}") in (expected(landed), expected(landed | {other}))
            assert git(v.repo, "merge-base", "--is-ancestor", "main", names[other], check=False) == ""
        assert tree_files(v.repo, "HEAD").keys() <= work_files(v.repo).keys()
        status = v.status()
        assert [b.name for b in status.branches] == [names[s] for s in "abc" if s not in landed]
        assert status.unattributed == [] and status.contested == []
    assert work_files(v.repo) == files
    assert tree_files(v.repo, "main") == work_files(v.repo)
    assert git(v.repo, "status", "--porcelain") == ""
    assert git(v.repo, "rev-parse", "HEAD") == git(v.repo, "rev-parse", "refs/heads/vbranch/workspace")
    fsck_clean(v.repo)


def test_landing_keeps_the_branch_history_and_merges_when_asked(vb):
    v = three_sessions(vb)
    v.commit("session-a", message="first")
    v.edit("a", "a.txt", "new from a\nmore\n")
    land(v, "a", "merge")
    log = git(v.repo, "log", "--format=%s", "main").splitlines()
    assert log[0] == "Merge branch 'session-a'" and "first" in log
    assert git(v.repo, "rev-list", "--parents", "-1", "main").count(" ") == 2


def test_the_remaining_branches_commits_are_replayed_not_squashed(vb):
    v = three_sessions(vb)
    v.commit("session-b", message="b one")
    v.edit("b", "b.txt", "b\n")
    v.commit("session-b", message="b two")
    land(v, "a")
    subjects = git(v.repo, "log", "--format=%s", "main..session-b").splitlines()
    assert subjects == ["b two", "b one"]


def test_a_landing_conflict_changes_nothing(vb):
    v = vb({"f.txt": "1\n2\n3\n"})
    v.edit("b", "f.txt", "1\nB\n3\n")
    v.commit("session-b")
    v.edit("a", "f.txt", "1\nA\n3\n")  # a rewrites b's line: contested
    ws = v.ws()
    with pytest.raises(Blocked, match=r"f.txt lines 2-2: session-[ab] \(session [ab]\) and session-[ab] \(session [ab]\)"):
        landing.land(ws, "session-a", "ff", v.at())
    from vbranch.ops.branching import assign

    assign(ws, str(v.repo / "f.txt") + ":2", "session-a", v.at())  # now a's, but b's commit still holds B
    refs = git(v.repo, "for-each-ref")
    state = [(r.path, r.items, r.known) for r in ws.store.files()]
    ops = len(ws.store.op_rows())
    files = fingerprint(v.repo)
    with pytest.raises(landing.Conflicted) as raised:
        landing.land(ws, "session-a", "ff", v.at())
    message = raised.value.message
    assert "session-b" in message and "f.txt" in message and "base lines 2-2" in message
    assert "vbranch commit" in raised.value.hint
    assert git(v.repo, "for-each-ref") == refs
    assert [(r.path, r.items, r.known) for r in ws.store.files()] == state
    assert len(ws.store.op_rows()) == ops
    assert fingerprint(v.repo) == files
    # What the hint says works: commit b (its commit drops the line), then land.
    v.commit("session-b")
    landing.land(ws, "session-a", "ff", v.at())
    assert tree_files(v.repo, "main")["f.txt"] == b"1\nA\n3\n"


def test_land_refuses_when_the_target_moved(vb):
    v = three_sessions(vb)
    outside_commit(v.repo, {"zzz.txt": "upstream\n"})
    with pytest.raises(StateError, match="moved") as raised:
        land(v, "a")
    assert "vbranch update" in raised.value.hint


def test_a_second_landing_waits_then_is_told_who_holds_it(vb):
    v = three_sessions(vb)
    holder = v.ws()
    held, release = threading.Event(), threading.Event()

    def hold():
        with landing.one_landing(holder, "landing session-c"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    ws = v.ws()
    ws.lock.timeout = 0.3
    try:
        with pytest.raises(LockTimeout, match="landing session-c"):
            landing.land(ws, "session-a", "ff", v.at())
    finally:
        release.set()
        thread.join()
    ws.lock.timeout = 30
    landing.land(ws, "session-a", "ff", v.at())  # once it is done, the second one runs


# A landing plans with the state lock let go (landing._land): what hooks and commits do meanwhile.


def _during_the_landing_plan(monkeypatch, action):
    """Run `action` once, right after a landing's first plan is made (the state lock let go, the
    plan's snapshot open). Returns the branches planned, one entry a plan."""
    calls, real = [], landing._plan

    def planning(*args, **kwargs):
        plan = real(*args, **kwargs)
        calls.append(plan.row.name)
        if len(calls) == 1:
            action()
        return plan

    monkeypatch.setattr(landing, "_plan", planning)
    return calls


def _rebased_branches(monkeypatch) -> list[list[str]]:
    """Spy on landing.rebase_branches: the branches of each call."""
    calls, real = [], landing.rebase_branches

    def rebase_branches(repo, branches, *args, **kwargs):
        calls.append(sorted(b.name for b in branches))
        return real(repo, branches, *args, **kwargs)

    monkeypatch.setattr(landing, "rebase_branches", rebase_branches)
    return calls


def _clean(v: VB) -> bool:
    return git(v.repo, "status", "--porcelain") == ""


def test_a_hooks_change_meanwhile_to_another_branchs_file_stands(vb, monkeypatch):
    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n", "h.txt": "h\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    v.edit("b", "g.txt", "B\n")
    a = v.branch_of("a")
    calls = _during_the_landing_plan(monkeypatch, lambda: (state_lock_is_free(v), v.edit("b", "h.txt", "H\n")))
    land(v, "a")
    assert calls == [a]  # planned once, with the lock let go
    assert tree_files(v.repo, "main") == {"f.txt": b"1\nA\n3\n", "g.txt": b"x\n", "h.txt": b"h\n"}
    v.commit()
    assert v.files_of("b") == {"f.txt": b"1\nA\n3\n", "g.txt": b"B\n", "h.txt": b"H\n"}
    assert _clean(v)


def test_the_landed_branchs_own_change_meanwhile_makes_it_plan_again(vb, monkeypatch):
    """Landing rewrites the records of the files the branch touched: with a change of the landed
    branch recorded meanwhile, the plan would give its new line to the base without landing it."""
    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    v.edit("b", "g.txt", "B\n")
    a = v.branch_of("a")
    calls = _during_the_landing_plan(monkeypatch, lambda: v.edit("a", "f.txt", "1\nA\n3\nA4\n"))
    land(v, "a")
    assert calls == [a, a]
    assert tree_files(v.repo, "main")["f.txt"] == b"1\nA\n3\nA4\n"
    v.commit()
    assert v.files_of("b") == {"f.txt": b"1\nA\n3\nA4\n", "g.txt": b"B\n"}
    assert not v.status().unattributed and _clean(v)


def test_another_sessions_line_meanwhile_in_a_file_the_landed_branch_touched_is_kept(vb, monkeypatch):
    """The record holds the version the plan lands: it is rebased again as it is now, not planned again."""
    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    v.edit("b", "g.txt", "B\n")
    a = v.branch_of("a")
    calls = _during_the_landing_plan(monkeypatch, lambda: v.edit("b", "f.txt", "1\nA\n3B\n"))
    land(v, "a")
    assert calls == [a]
    assert tree_files(v.repo, "main")["f.txt"] == b"1\nA\n3\n"
    v.commit()
    assert v.files_of("b") == {"f.txt": b"1\nA\n3B\n", "g.txt": b"B\n"}
    assert not v.status().unattributed and _clean(v)


def test_a_line_of_the_landed_branch_contested_meanwhile_refuses_the_landing(vb, monkeypatch):
    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    main = git(v.repo, "rev-parse", "main")
    _during_the_landing_plan(monkeypatch, lambda: v.edit("b", "f.txt", "1\nAB\n3\n"))
    with pytest.raises(Blocked, match="shares changes"):
        land(v, "a")
    assert git(v.repo, "rev-parse", "main") == main


def test_a_commit_meanwhile_rebases_only_that_branch_again(vb, monkeypatch):
    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n", "h.txt": "h\n", "k.txt": "k\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    v.edit("b", "g.txt", "B\n")
    v.edit("c", "k.txt", "C\n")
    a, b, c = v.branch_of("a"), v.branch_of("b"), v.branch_of("c")
    v.commit(b, c)
    v.edit("b", "h.txt", "H\n")
    rebases = _rebased_branches(monkeypatch)
    calls = _during_the_landing_plan(monkeypatch, lambda: v.commit(b))
    land(v, "a")
    assert calls == [a] and rebases == [[b, c], [b]]
    for name in (b, c):
        assert git(v.repo, "merge-base", "--is-ancestor", "main", f"refs/heads/{name}") == ""
    assert v.files_of("b") == {"f.txt": b"1\nA\n3\n", "g.txt": b"B\n", "h.txt": b"H\n", "k.txt": b"k\n"}
    assert git(v.repo, "rev-list", "--count", f"main..refs/heads/{b}").strip() == "2"
    assert tree_files(v.repo, "HEAD") == {"f.txt": b"1\nA\n3\n", "g.txt": b"B\n", "h.txt": b"H\n", "k.txt": b"C\n"}
    assert _clean(v)


def test_a_branch_begun_meanwhile_starts_from_the_new_target(vb, monkeypatch):
    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    calls = _during_the_landing_plan(monkeypatch, lambda: v.edit("d", "g.txt", "D\n"))
    land(v, "a")
    assert len(calls) == 1
    assert git(v.repo, "rev-parse", f"refs/heads/{v.branch_of('d')}") == git(v.repo, "rev-parse", "main")
    v.commit()
    assert v.files_of("d") == {"f.txt": b"1\nA\n3\n", "g.txt": b"D\n"}
    assert _clean(v)


def test_an_operation_meanwhile_makes_the_landing_plan_again(vb, monkeypatch):
    """b is unapplied meanwhile (its lines leave the files): the workspace must not merge it in."""
    from vbranch.ops import branching

    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    v.edit("b", "g.txt", "B\n")
    a, b = v.branch_of("a"), v.branch_of("b")
    v.commit(b)

    def unapply_b():
        ws = v.ws()
        try:
            branching.unapply(ws, b, v.at())
        finally:
            ws.close()

    calls = _during_the_landing_plan(monkeypatch, unapply_b)
    land(v, "a")
    assert calls == [a, a]
    assert tree_files(v.repo, "HEAD") == tree_files(v.repo, "main") == {"f.txt": b"1\nA\n3\n", "g.txt": b"x\n"}
    assert _clean(v)


def test_a_target_moved_meanwhile_refuses_the_landing(vb, monkeypatch):
    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    upstream = []
    _during_the_landing_plan(monkeypatch, lambda: upstream.append(outside_commit(v.repo, {"zzz.txt": "upstream\n"})))
    with pytest.raises(StateError, match="moved"):
        land(v, "a")
    assert git(v.repo, "rev-parse", "main").strip() == upstream[0]


def outside_commit(repo, files: dict[str, str | None], ref: str = "refs/heads/main") -> str:
    """A commit on `ref` made elsewhere (as a push would bring), without touching the working tree."""
    env = {**os.environ, "GIT_INDEX_FILE": str(repo / ".git" / "outside-index")}
    subprocess.run(["git", "-C", str(repo), "read-tree", ref], env=env, check=True)
    for path, content in files.items():
        if content is None:
            subprocess.run(["git", "-C", str(repo), "update-index", "--force-remove", path], env=env, check=True)
        else:
            blob = git(repo, "hash-object", "-w", "--stdin", input=content.encode()).strip()
            subprocess.run(["git", "-C", str(repo), "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"], env=env, check=True)
    tree = subprocess.run(["git", "-C", str(repo), "write-tree"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    parent = git(repo, "rev-parse", ref).strip()
    commit = git(repo, "commit-tree", tree, "-p", parent, "-m", "outside").strip()
    git(repo, "update-ref", ref, commit, parent)
    os.unlink(repo / ".git" / "outside-index")
    return commit


def test_update_after_an_outside_push(vb):
    v = three_sessions(vb)
    v.commit("session-c")
    f = BASE["f.txt"].replace("line 5\n", "UP5\n")
    new = outside_commit(v.repo, {"f.txt": f, "up.txt": "from upstream\n", "h.txt": None} | {"h.txt": "h\n"})
    before = work_files(v.repo)
    report = update(v)
    assert report.new == new and sorted(report.written) == ["f.txt", "up.txt"]
    now = work_files(v.repo)
    assert now["up.txt"] == b"from upstream\n"
    assert now["f.txt"] == before["f.txt"].replace(b"line 5\n", b"UP5\n")
    assert {k: v_ for k, v_ in now.items() if k not in ("f.txt", "up.txt")} == {k: v_ for k, v_ in before.items() if k != "f.txt"}
    # every branch starts from the new target with exactly its own lines
    ws = v.ws()
    assert ws.base == new
    changed = [l for l in git(v.repo, "diff", "-U0", "main", "session-c").splitlines() if l[:1] in "+-" and l[:3] not in ("+++", "---")]
    assert changed == ["+C8+", "+c"]
    assert git(v.repo, "merge-base", "--is-ancestor", "main", "session-c", check=False) == ""
    status = v.status()
    assert status.unattributed == [] and status.contested == []
    assert sorted(git(v.repo, "status", "--porcelain").split("\n")) == sorted(
        ["", " M f.txt", " D g.txt", "?? a.txt"]
    )
    # and landing works again on top of it
    land(v, "a")
    assert tree_files(v.repo, "main")["f.txt"] == f.replace("line 2\n", "A2\n").encode()
    fsck_clean(v.repo)


def test_update_conflict_changes_nothing(vb):
    v = three_sessions(vb)
    outside_commit(v.repo, {"f.txt": BASE["f.txt"].replace("line 3\n", "THEIRS\n")})
    files, refs = fingerprint(v.repo), git(v.repo, "for-each-ref")
    with pytest.raises(landing.Conflicted) as raised:
        update(v)
    assert "f.txt lines 3-3" in raised.value.message and "session-b" in raised.value.message
    assert fingerprint(v.repo) == files and git(v.repo, "for-each-ref") == refs


def test_update_retires_a_branch_integrated_upstream_by_history(vb):
    v = three_sessions(vb)
    v.commit("session-a")
    head = git(v.repo, "rev-parse", "session-a").strip()
    git(v.repo, "update-ref", "refs/heads/main", head)  # merged elsewhere: a fast-forward
    report = update(v)
    assert report.retired == {"session-a": "history"} and report.written == []
    assert [b.name for b in v.status().branches] == ["session-b", "session-c"]
    assert git(v.repo, "rev-parse", "session-a").strip() == head  # its git branch is kept
    assert git(v.repo, "status", "--porcelain") == " M f.txt\n D g.txt\n M h.txt\n"  # b's and c's changes only


def test_update_retires_a_branch_integrated_upstream_by_content(vb):
    v = three_sessions(vb)
    content = BASE["f.txt"].replace("line 8\n", "line 8\nC8+\n")
    outside_commit(v.repo, {"f.txt": content, "h.txt": "h\nc\n"})  # c's change, squashed by someone else
    before = work_files(v.repo)
    report = update(v)
    assert report.retired == {"session-c": "content"}
    assert work_files(v.repo) == before
    assert [b.name for b in v.status().branches] == ["session-a", "session-b"]


def test_update_leaves_files_under_a_write_lease_alone(vb):
    v = three_sessions(vb)
    outside_commit(v.repo, {"up.txt": "x\n"})
    ws = v.ws()
    with ws.store.tx():
        ws.store.put_lease("up.txt", "someone", "tool-1", 10**12)
    with pytest.raises(StateError, match="being written"):
        landing.update(ws, v.at())
    assert not (v.repo / "up.txt").exists()


def test_update_retires_branches_squashed_together_upstream(vb):
    v = vb({"f.txt": "1\n2\n3\n4\n"})
    v.edit("a", "f.txt", "A\n2\n3\n4\n")
    v.edit("b", "f.txt", "A\nB\n3\n4\n")  # adjacent to a's line
    v.edit("c", "f.txt", "A\nB\n3\nC\n")
    v.commit("session-a")
    outside_commit(v.repo, {"f.txt": "A\nB\n3\n4\n"})  # a's and b's lines as one upstream hunk
    report = update(v)
    assert report.retired == {"session-a": "content", "session-b": "content"}
    assert [b.name for b in v.status().branches] == ["session-c"]
    assert (v.repo / "f.txt").read_bytes() == b"A\nB\n3\nC\n"
    assert git(v.repo, "status", "--porcelain") == " M f.txt\n"


# Land in O(what the landed branch touched).


def _rows(v: VB) -> dict[str, tuple]:
    ws = v.ws()
    try:
        return {r[0]: tuple(r) for r in ws.store.db.execute("SELECT path, base, known, items, owners, stat FROM files")}
    finally:
        ws.close()


def test_landing_leaves_records_it_did_not_touch_alone(vb, monkeypatch):
    from vbranch.state import store

    v = three_sessions(vb)
    for i in range(6):
        v.edit("b", f"b{i}.txt", f"b {i}\n")
        v.edit("c", f"c{i}.txt", f"c {i}\n")
    v.commit()
    before = _rows(v)
    written, rebased = [], []
    real_put, real_rebase = store.Store.put_file, landing.rebase_record
    monkeypatch.setattr(store.Store, "put_file", lambda self, rec: (written.append(rec.path), real_put(self, rec))[1])
    monkeypatch.setattr(landing, "rebase_record", lambda rec, b: (rebased.append(rec.path), real_rebase(rec, b))[1])
    land(v, "a")
    touched_by_a = {"f.txt", "a.txt"}
    assert set(rebased) == touched_by_a and set(written) == touched_by_a
    after = _rows(v)
    for path in set(before) - touched_by_a:
        assert after[path] == before[path], path  # byte for byte, stat signature included
    assert tree_files(v.repo, "refs/heads/main")["a.txt"] == b"new from a\n"
    # The others still hold exactly their own lines on the new base.
    assert v.files_of("c")["c3.txt"] == b"c 3\n" and "b3.txt" not in v.files_of("c")
    assert v.files_of("b")["b3.txt"] == b"b 3\n" and v.files_of("b")["a.txt"] == b"new from a\n"
    assert git(v.repo, "status", "--porcelain") == ""


def test_blob_id_is_the_id_git_gives(tmp_path):
    from vbranch.git.gitops import blob_id

    for data in (b"", b"one line\n", b"\0binary\xff" * 3, b"x" * 100_000 + b"\r\n"):
        done = subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True, cwd=tmp_path)
        assert blob_id(data) == done.stdout.decode().strip()


def _tree_diffs(monkeypatch) -> list[tuple[str, str]]:
    """Spy on gitops.changed_paths: the tree pairs it diffs (those it did not know already)."""
    from vbranch.git import gitops

    diffed, real = [], gitops.changed_paths

    def changed_paths(repo, old, new):
        if old.id != new.id and (str(old.id), str(new.id)) not in gitops._KNOWN_CHANGES:
            diffed.append((str(old.id), str(new.id)))
        return real(repo, old, new)

    monkeypatch.setattr(gitops, "changed_paths", changed_paths)
    return diffed


def test_a_landing_diffs_only_the_new_base_not_each_rebased_branch(vb, monkeypatch):
    """Each rebased branch's tree is its old one edited along known paths: the workspace build
    that follows asks what changed and gets those paths, not a tree diff per branch (each a walk
    of the whole tree in libgit2: ~5 ms at 30,000 files)."""
    from vbranch.git import gitops

    lines = "".join(f"{n}\n" for n in range(1, 10))
    v = vb({"f.txt": lines, "g.txt": "g\n"})
    v.edit("a", "f.txt", lines.replace("1\n", "A\n"))
    v.edit("b", "f.txt", lines.replace("1\n", "A\n").replace("4\n", "B\n"))
    v.edit("c", "f.txt", lines.replace("1\n", "A\n").replace("4\n", "B\n").replace("7\n", "C\n"))
    v.edit("d", "d.txt", "d\n")
    v.commit()
    diffed = _tree_diffs(monkeypatch)
    monkeypatch.setattr(gitops, "_KNOWN_CHANGES", {})  # nothing known from the commits before
    old_base = git(v.repo, "rev-parse", "main^{tree}").strip()
    land(v, "a")
    assert diffed == [(old_base, git(v.repo, "rev-parse", "main^{tree}").strip())]
    assert v.files_of("b")["f.txt"] == lines.replace("1\n", "A\n").replace("4\n", "B\n").encode()
    assert v.files_of("d") == {"f.txt": lines.replace("1\n", "A\n").encode(), "g.txt": b"g\n", "d.txt": b"d\n"}
    assert tree_files(v.repo, "HEAD") == work_files(v.repo) and git(v.repo, "status", "--porcelain") == ""


def test_a_first_commit_and_then_its_landing_diff_no_tree(vb, monkeypatch):
    """A branch's first commit is the base's tree edited along its changes: what it changed is
    known, for its own file list and for the landing's diff of the base it moves."""
    v = vb({"f.txt": "1\n2\n", "g.txt": "g\n"})
    v.edit("a", "f.txt", "A\n2\n")
    v.edit("b", "g.txt", "G\n")
    diffed = _tree_diffs(monkeypatch)
    report = v.commit()
    assert sorted(paths for _, _, paths in report.committed) == [["f.txt"], ["g.txt"]]
    land(v, "a")
    assert diffed == []
    assert tree_files(v.repo, "main") == {"f.txt": b"A\n2\n", "g.txt": b"g\n"}
    assert v.files_of("b") == {"f.txt": b"A\n2\n", "g.txt": b"G\n"}
    assert tree_files(v.repo, "HEAD") == work_files(v.repo) and git(v.repo, "status", "--porcelain") == ""
