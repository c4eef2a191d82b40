"""The split engine end to end on real repositories: every kind of change, each edge case."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import VB, fingerprint, git, lock_files, state_lock_is_free, tree_files, work_files, write


def commit_all(vb: VB):
    before = fingerprint(vb.repo)
    report = vb.commit()
    assert fingerprint(vb.repo) == before, "commit changed a working file"
    assert lock_files(vb.repo) == []
    return report


def test_new_deleted_and_renamed_files(vb):
    v = vb({"old.txt": "old\n", "gone.txt": "bye\n", "keep.txt": "k\n"})
    v.edit("a", "new.txt", "fresh\n")
    v.delete("b", "gone.txt")
    os.rename(v.repo / "old.txt", v.repo / "moved.txt")
    v.record("c", "old.txt", "moved.txt")
    commit_all(v)
    base = {"old.txt": b"old\n", "gone.txt": b"bye\n", "keep.txt": b"k\n"}
    assert v.files_of("a") == {**base, "new.txt": b"fresh\n"}
    assert v.files_of("b") == {"old.txt": b"old\n", "keep.txt": b"k\n"}
    assert v.files_of("c") == {"moved.txt": b"old\n", "gone.txt": b"bye\n", "keep.txt": b"k\n"}
    renames = git(v.repo, "diff", "-M", "--name-status", "main", v.branch_of("c"))
    assert renames.startswith("R100")


def test_deleting_a_file_another_session_edited_is_contested(vb):
    v = vb({"f.txt": "1\n2\n"})
    v.edit("a", "f.txt", "1\nA\n")
    v.delete("b", "f.txt")
    report = v.commit()
    assert set(report.held_back) == {v.branch_of("a"), v.branch_of("b")}
    assert "f.txt" not in v.files_of("b") or v.files_of("b")["f.txt"] == b"1\n2\n"  # neither gets the contested file
    assert v.files_of("a")["f.txt"] == b"1\n2\n"
    contested = v.status().contested
    assert [(c.path, c.lines) for c in contested] == [("f.txt", None)]


def test_binary_files_are_owned_whole(vb):
    v = vb({"img.bin": b"\x89PNG\0\x01\x02"})
    v.edit("a", "img.bin", b"\x89PNG\0\x03\x04")
    v.edit("b", "other.bin", b"\0\0\xff")
    commit_all(v)
    assert v.files_of("a")["img.bin"] == b"\x89PNG\0\x03\x04"
    assert "other.bin" not in v.files_of("a")
    assert v.files_of("b")["img.bin"] == b"\x89PNG\0\x01\x02"
    v.edit("b", "img.bin", b"\x89PNG\0\x05")
    assert [c.branches for c in v.status().contested] == [[v.branch_of("a"), v.branch_of("b")]]


def test_crlf_lines_are_kept_and_split_by_line(vb):
    v = vb({"win.txt": b"one\r\ntwo\r\nthree\r\n"})
    v.edit("a", "win.txt", b"ONE\r\ntwo\r\nthree\r\n")
    v.edit("b", "win.txt", b"ONE\r\nTWO\r\nthree\r\n")
    commit_all(v)
    assert v.files_of("a")["win.txt"] == b"ONE\r\ntwo\r\nthree\r\n"
    assert v.files_of("b")["win.txt"] == b"one\r\nTWO\r\nthree\r\n"


def test_no_trailing_newline(vb):
    v = vb({"f.txt": "a\nb\nc"})
    v.edit("a", "f.txt", "A\nb\nc")
    v.edit("b", "f.txt", "A\nb\nc\nd")  # appending rewrites the unterminated last line
    commit_all(v)
    assert v.files_of("a")["f.txt"] == b"A\nb\nc"
    assert v.files_of("b")["f.txt"] == b"a\nb\nc\nd"


def test_non_utf8_bytes(vb):
    latin = "caf\xe9\nna\xefve\nend\n".encode("latin-1")
    v = vb({"l1.txt": latin})
    v.edit("a", "l1.txt", latin.replace(b"caf\xe9", b"CAF\xc9"))
    v.edit("b", "l1.txt", latin.replace(b"caf\xe9", b"CAF\xc9").replace(b"end", b"\xff\xfeend"))
    commit_all(v)
    assert v.files_of("a")["l1.txt"] == latin.replace(b"caf\xe9", b"CAF\xc9")
    assert v.files_of("b")["l1.txt"] == latin.replace(b"end", b"\xff\xfeend")


def test_executable_bit(vb):
    v = vb({"run.sh": "#!/bin/sh\necho hi\n"})
    (v.repo / "run.sh").chmod(0o755)
    v.record("a", "run.sh")
    commit_all(v)
    mode = git(v.repo, "ls-tree", v.branch_of("a"), "run.sh").split()[0]
    assert mode == "100755"
    assert [f.change for f in v.status().branches[0].files] == ["mode"]


def test_symlinks(vb):
    v = vb({"target.txt": "t\n"})
    os.symlink("target.txt", v.repo / "link")
    v.record("a", "link")
    commit_all(v)
    entry = git(v.repo, "ls-tree", v.branch_of("a"), "link").split()
    assert entry[0] == "120000"
    assert v.files_of("a")["link"] == b"target.txt"


def test_empty_files(vb):
    v = vb({"full.txt": "x\n"})
    v.edit("a", "empty.txt", "")
    v.edit("b", "full.txt", "")
    commit_all(v)
    assert v.files_of("a")["empty.txt"] == b""
    assert v.files_of("b")["full.txt"] == b""
    assert "empty.txt" not in v.files_of("b")


def test_unicode_and_spaces_in_names(vb):
    v = vb({"dir with space/naïve file.txt": "1\n"})
    v.edit("a", "dir with space/naïve file.txt", "un\n")
    v.edit("b", "ünï cödé/日本語 名前.md", "こんにちは\n")
    commit_all(v)
    assert v.files_of("a")["dir with space/naïve file.txt"] == "un\n".encode()
    assert v.files_of("b")["ünï cödé/日本語 名前.md"] == "こんにちは\n".encode()


def test_nested_directories_created_and_removed(vb):
    v = vb({"old/deep/a.txt": "a\n", "old/deep/b.txt": "b\n", "old/c.txt": "c\n"})
    write(v.repo, "new/x/y/z.txt", "z\n")
    v.record("a", "new")
    subprocess.run(["rm", "-rf", str(v.repo / "old")], check=True)
    v.record("b", "old")
    commit_all(v)
    assert v.files_of("a") == {"old/deep/a.txt": b"a\n", "old/deep/b.txt": b"b\n", "old/c.txt": b"c\n", "new/x/y/z.txt": b"z\n"}
    assert v.files_of("b") == {}


def test_ignored_files_are_never_committed(vb):
    v = vb({".gitignore": "*.log\nbuild/\n"})
    v.edit("a", "debug.log", "noise\n")
    write(v.repo, "build/out.o", "obj")
    v.record("a", "build")
    v.edit("a", "real.txt", "real\n")
    commit_all(v)
    files = v.files_of("a")
    assert "real.txt" in files and "debug.log" not in files and "build/out.o" not in files
    assert all(f.path == "real.txt" for b in v.status().branches for f in b.files)


def test_two_sessions_inserting_at_the_same_base_position(vb):
    v = vb({"list.md": "- one\n- two\n"})
    v.edit("a", "list.md", "- one\n- from a\n- two\n")
    v.edit("b", "list.md", "- one\n- from a\n- from b\n- two\n")
    commit_all(v)
    assert v.files_of("a")["list.md"] == b"- one\n- from a\n- two\n"
    assert v.files_of("b")["list.md"] == b"- one\n- from b\n- two\n"
    assert tree_files(v.repo, "HEAD")["list.md"] == (v.repo / "list.md").read_bytes()


def test_adjacent_line_edits_by_two_sessions(vb):
    v = vb({"f.py": "a = 1\nb = 2\nc = 3\n"})
    v.edit("a", "f.py", "a = 10\nb = 2\nc = 3\n")
    v.edit("b", "f.py", "a = 10\nb = 20\nc = 3\n")
    v.edit("c", "f.py", "a = 10\nb = 20\nc = 30\n")
    commit_all(v)
    assert v.files_of("a")["f.py"] == b"a = 10\nb = 2\nc = 3\n"
    assert v.files_of("b")["f.py"] == b"a = 1\nb = 20\nc = 3\n"
    assert v.files_of("c")["f.py"] == b"a = 1\nb = 2\nc = 30\n"
    assert git(v.repo, "status", "--porcelain") == ""


def test_a_branch_with_no_changes(vb):
    v = vb({"f.txt": "x\n"})
    v.edit("a", "f.txt", "y\n")
    v.edit("a", "f.txt", "x\n")  # undone
    report = commit_all(v)
    assert report.unchanged == [v.branch_of("a")] and report.committed == []
    assert git(v.repo, "rev-parse", v.branch_of("a")) == git(v.repo, "rev-parse", "main")


def test_second_commit_builds_on_the_first(vb):
    v = vb({"f.txt": "1\n2\n3\n"})
    v.edit("a", "f.txt", "one\n2\n3\n")
    commit_all(v)
    v.edit("a", "f.txt", "one\n2\nthree\n")
    v.edit("b", "g.txt", "g\n")
    commit_all(v)
    log = git(v.repo, "log", "--format=%s", v.branch_of("a")).splitlines()
    assert len(log) == 3  # base + two commits
    assert v.files_of("a")["f.txt"] == b"one\n2\nthree\n"
    assert git(v.repo, "status", "--porcelain") == ""
    assert "Vbranch-Session: a" in git(v.repo, "log", "-1", "--format=%B", v.branch_of("a"))


def test_unborn_repository(make_repo):
    repo = make_repo({"readme.txt": "hi\n"}, commit=False)
    v = VB(repo).init()
    v.record("a", "readme.txt")
    v.edit("b", "src/main.py", "print()\n")
    commit_all(v)
    assert v.files_of("a") == {"readme.txt": b"hi\n"}
    assert v.files_of("b") == {"src/main.py": b"print()\n"}
    assert git(repo, "rev-list", "--count", v.branch_of("a")).strip() == "1"
    assert git(repo, "status", "--porcelain") == ""


def test_unattributed_changes_are_shown_and_never_committed(vb):
    v = vb({"f.txt": "1\n2\n3\n"})
    v.edit("a", "f.txt", "one\n2\n3\n")
    write(v.repo, "f.txt", "one\n2\nthree\n")  # nobody reports this one
    commit_all(v)
    report = v.status()
    assert [(f.path, f.lines) for f in report.unattributed] == [("f.txt", [(3, 3)])]
    assert v.files_of("a")["f.txt"] == b"one\n2\n3\n"
    assert git(v.repo, "status", "--porcelain") == " M f.txt\n"


def test_git_commit_on_the_workspace_is_refused(vb):
    v = vb({"f.txt": "x\n"})
    v.edit("a", "f.txt", "y\n")
    proc = subprocess.run(["git", "-C", str(v.repo), "commit", "-qam", "oops"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "vbranch commit" in proc.stderr
    assert git(v.repo, "rev-parse", "HEAD") == git(v.repo, "rev-parse", "refs/heads/vbranch/workspace")


def test_an_existing_pre_commit_hook_is_chained_and_restored(make_repo):
    repo = make_repo({"f.txt": "x\n"})
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho mine > \"$(git rev-parse --git-dir)/mine-ran\"\n")
    hook.chmod(0o755)
    v = VB(repo).init()
    assert "vbranch" in hook.read_text()
    from vbranch.ops.lifecycle import teardown

    teardown(v.ws(), v.at())
    assert hook.read_text().startswith("#!/bin/sh\necho mine")
    git(repo, "commit", "-q", "--allow-empty", "-m", "after")
    assert (repo / ".git/mine-ran").exists()


def test_teardown_returns_to_the_branch_with_all_work_kept(vb):
    v = vb({"f.txt": "1\n2\n"})
    v.edit("a", "f.txt", "one\n2\n")
    commit_all(v)
    v.edit("b", "f.txt", "one\ntwo\n")
    v.edit("b", "new.txt", "new\n")
    files = work_files(v.repo)
    from vbranch.ops.lifecycle import teardown

    teardown(v.ws(), v.at())
    assert git(v.repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert work_files(v.repo) == files
    assert sorted(git(v.repo, "status", "--porcelain").splitlines()) == [" M f.txt", "?? new.txt"]
    assert git(v.repo, "rev-parse", "--verify", "-q", "refs/heads/vbranch/workspace", check=False) == ""
    assert tree_files(v.repo, "refs/heads/session-a")["f.txt"] == b"one\n2\n"  # branches keep their commits


def test_large_repository(make_repo, tmp_path):
    from benchmarks.corpus import make_repo as make_large

    repo = make_large(tmp_path / "large", 30_500)
    v = VB(repo).init()
    tracked = git(repo, "ls-files").splitlines()
    assert len(tracked) >= 30_000
    for k, session in enumerate(["a", "b", "c"]):
        path = tracked[k * 1000]
        data = (repo / path).read_bytes()
        v.edit(session, path, data + f"# session {session}\n".encode())
    v.edit("a", "added/by_a.txt", "a\n")
    report = commit_all(v)
    assert len(report.committed) == 3
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "diff", "--name-only", "main", v.branch_of("a")).split() == sorted(["added/by_a.txt", tracked[0]])


def test_a_contested_line_holds_back_only_itself(vb):
    """Everything else of both branches commits; the contested line waits until it is settled."""
    v = vb({"f.txt": "1\n2\n3\n"})
    v.edit("a", "own-a.txt", "a\n")
    v.edit("a", "f.txt", "1\n2\nA\n")
    v.edit("b", "f.txt", "B\n2\nA\n")
    v.edit("b", "f.txt", "B\n2\nAB\n")  # b rewrites a's line 3: contested
    report = v.commit()
    assert set(report.held_back) == {v.branch_of("a"), v.branch_of("b")}
    assert {name for name, _, _ in report.committed} == {v.branch_of("a"), v.branch_of("b")}
    assert v.files_of("a")["own-a.txt"] == b"a\n" and v.files_of("a")["f.txt"] == b"1\n2\n3\n"
    assert v.files_of("b")["f.txt"] == b"B\n2\n3\n"


def test_claim_and_disown_settle_only_the_sessions_own_part(vb):
    from vbranch.ops.branching import settle_lines

    v = vb({"f.txt": "1\n2\n3\n"})
    v.edit("a", "f.txt", "1\n2\nA\n")
    v.edit("c", "f.txt", "C\n2\nA\n")  # c's own line 1
    v.edit("b", "f.txt", "C\n2\nAB\n")  # b rewrites a's line: contested between a and b
    assert [c.lines for c in v.status().contested] == [(3, 3)]
    ws = v.ws()
    try:
        assert settle_lines(ws, str(v.repo / "f.txt"), "b", False, v.at()) == ["f.txt"]  # b: not mine
    finally:
        ws.close()
    assert v.status().contested == []
    v.commit()
    assert v.files_of("a")["f.txt"] == b"1\n2\nAB\n" and v.files_of("c")["f.txt"] == b"C\n2\n3\n"


# Commit in O(change): a commit builds only the paths whose records changed since the last one.


def _spy_edits(monkeypatch):
    """Record the paths of every top-level gitops.edit_tree call (recursive calls are not counted)."""
    from vbranch.git import gitops

    real, depth, edits = gitops.edit_tree, [0], []

    def spy(repo, tree, changes):
        if depth[0] == 0:
            edits.append(sorted(changes))
        depth[0] += 1
        try:
            return real(repo, tree, changes)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(gitops, "edit_tree", spy)
    return edits


def test_commit_builds_only_the_changed_path(vb, monkeypatch):
    files = {f"d{i}/f{j}.txt": f"{i} {j}\n" for i in range(4) for j in range(6)}
    v = vb(files)
    for i in range(4):
        for j in range(6):
            v.edit(f"s{i}", f"d{i}/f{j}.txt", f"{i} {j}\nmine {i}\n")
    commit_all(v)
    before = {f"s{i}": v.files_of(f"s{i}") for i in range(4)}
    v.edit("s2", "d2/f3.txt", "2 3\nmine 2\nagain\n")
    edits = _spy_edits(monkeypatch)
    report = commit_all(v)
    # One branch tree edited along one path, and the workspace tree along that path: nothing else built.
    assert edits == [["d2/f3.txt"], ["d2/f3.txt"]]
    assert [c[0] for c in report.committed] == [v.branch_of("s2")]
    assert [c[2] for c in report.committed] == [["d2/f3.txt"]]
    assert sorted(report.unchanged) == sorted(v.branch_of(f"s{i}") for i in (0, 1, 3))
    after = {f"s{i}": v.files_of(f"s{i}") for i in range(4)}
    assert after["s2"] == {**before["s2"], "d2/f3.txt": b"2 3\nmine 2\nagain\n"}
    assert all(after[s] == before[s] for s in ("s0", "s1", "s3"))
    assert git(v.repo, "status", "--porcelain") == ""
    # Nothing new at all: no tree is built.
    edits.clear()
    assert commit_all(v).committed == []
    assert edits == []


def test_a_commit_on_the_heads_reads_only_the_records_that_changed(vb, monkeypatch):
    """Branches built on their heads: the records read are the changed one and the contested one,
    not every record the branches own; a branch built whole (a new one) reads them all."""
    from vbranch.state.store import Store

    files = {f"f{i}.txt": f"{i}\n" for i in range(8)}
    v = vb({**files, "both.txt": "x\ny\n"})
    for i in range(8):
        v.edit(f"s{i % 2}", f"f{i}.txt", f"{i}\nmine\n")
    v.edit("s0", "both.txt", "x\nfrom s0\n")
    v.edit("s1", "both.txt", "x\nfrom s1\n")  # the same line: contested
    commit_all(v)
    read, whole = [], []
    real_file, real_files = Store.file, Store.files
    monkeypatch.setattr(Store, "file", lambda self, path: read.append(path) or real_file(self, path))
    monkeypatch.setattr(Store, "files", lambda self: whole.append(1) or real_files(self))
    v.edit("s1", "f3.txt", "3\nmine\nagain\n")
    report = commit_all(v)
    assert [c[2] for c in report.committed] == [["f3.txt"]]
    assert whole == [] and set(read) == {"f3.txt", "both.txt"}
    assert v.files_of("s1")["f3.txt"] == b"3\nmine\nagain\n"
    v.edit("s2", "f5.txt", "5\nmine\ns2\n")
    commit_all(v)
    assert whole  # s2's first commit: built whole from the records
    assert v.files_of("s2")["f5.txt"] == b"5\ns2\n"  # its own line only: "mine" is s1's


def test_incremental_commit_matches_a_whole_build(vb, monkeypatch):
    """After every commit, each branch and the workspace equal what a build from scratch gives."""
    from vbranch.git import gitops
    from vbranch.ops import committing

    v = vb({"f.txt": "".join(f"l{i}\n" for i in range(12)), "g.txt": "g\n"})
    steps = [
        ("a", "f.txt", lambda t: t.replace("l1\n", "A1\n")),
        ("b", "f.txt", lambda t: t.replace("l5\n", "B5\n")),
        ("a", "g.txt", lambda t: t + "a\n"),
        ("b", "f.txt", lambda t: t.replace("B5\n", "l5\n")),  # b takes its change back
        ("c", "new.txt", lambda t: "c\n"),
        ("a", "f.txt", lambda t: t.replace("l9\n", "")),
    ]
    for session, path, change in steps:
        full = v.repo / path
        v.edit(session, path, change(full.read_text() if full.exists() else ""))
        commit_all(v)
        ws = v.ws()
        try:
            repo = gitops.open_repo(ws.top)
            records = ws.store.files()
            base_tree = gitops.tree_of(repo, ws.base)
            for branch in ws.store.branches():
                head = gitops.head_of(repo, branch.ref)
                whole = gitops.edit_tree(repo, base_tree, committing.branch_changes(records, branch.id))
                assert (gitops.tree_of(repo, head).id if head else base_tree.id) == whole
            workspace = gitops.head_of(repo, "refs/heads/vbranch/workspace")
            with monkeypatch.context() as m:
                m.setattr(committing, "_changed_since", lambda *a: None)  # built whole from the base
                new, _old = committing.build_workspace(ws, repo, records, ws.base)
            assert repo[new].tree_id == repo[workspace].tree_id
        finally:
            ws.close()
    assert git(v.repo, "status", "--porcelain") == ""


def _shared_file_scene(vb, sessions: int = 3):
    """Each session changes its own line of one shared file; all committed."""
    v = vb({"shared.txt": "".join(f"line {i}\n" for i in range(40))})
    for i in range(sessions):
        text = (v.repo / "shared.txt").read_text()
        v.edit(f"s{i}", "shared.txt", text.replace(f"line {i * 10}\n", f"line {i * 10} by s{i}\n"))
    commit_all(v)
    return v


def test_the_workspace_merge_reads_only_the_version_that_changed(vb, monkeypatch):
    """A Stop commits one branch: the other branches' versions of a shared file are not read again,
    and the workspace holds every branch's lines all the same."""
    from vbranch.git import gitops

    v = _shared_file_scene(vb)
    others = {git(v.repo, "rev-parse", f"{v.branch_of(s)}:shared.txt").strip() for s in ("s0", "s2")}
    read = []
    real = gitops.blob_data
    monkeypatch.setattr(gitops, "blob_data", lambda repo, oid: read.append(str(oid)) or real(repo, oid))
    text = (v.repo / "shared.txt").read_text()
    v.edit("s1", "shared.txt", text.replace("line 10 by s1\n", "line 10 by s1, again\n"))
    v.commit(v.branch_of("s1"))
    assert read and not others & set(read)
    assert tree_files(v.repo, "HEAD")["shared.txt"] == (v.repo / "shared.txt").read_bytes()
    assert b"line 10 by s1, again\n" in v.files_of("s1")["shared.txt"]
    assert git(v.repo, "status", "--porcelain") == ""


def test_a_landing_reads_no_other_branchs_copy_of_a_shared_file_again(vb, monkeypatch):
    """The other branches' versions of a shared file were diffed against the base at their Stops:
    landing one branch merges them with its version from those hunks, reading none of them."""
    from vbranch.git import gitops
    from vbranch.ops import landing

    v = _shared_file_scene(vb)
    others = {git(v.repo, "rev-parse", f"{v.branch_of(s)}:shared.txt").strip() for s in ("s1", "s2")}
    read = []
    real = gitops.blob_data
    monkeypatch.setattr(gitops, "blob_data", lambda repo, oid: read.append(str(oid)) or real(repo, oid))
    ws = v.ws()
    try:
        landing.land(ws, v.branch_of("s0"), "ff", v.at())
    finally:
        ws.close()
    assert not others & set(read)
    main = tree_files(v.repo, "main")["shared.txt"]
    assert b"line 0 by s0\n" in main and b"by s1" not in main and b"by s2" not in main
    for s in ("s1", "s2"):
        assert b"line 0 by s0\n" in v.files_of(s)["shared.txt"] and f"by {s}".encode() in v.files_of(s)["shared.txt"]
    assert tree_files(v.repo, "HEAD")["shared.txt"] == (v.repo / "shared.txt").read_bytes()
    assert git(v.repo, "status", "--porcelain") == ""


def _objects(repo) -> tuple[set[str], set[str]]:
    """(loose object files, packs) in the repository."""
    objects = repo / ".git" / "objects"
    loose = {f"{d.name}/{f.name}" for d in objects.iterdir() if len(d.name) == 2 for f in d.iterdir()}
    return loose, {p.name for p in (objects / "pack").glob("*.pack")}


def test_a_commit_writes_its_objects_as_one_pack_git_reads(vb, monkeypatch):
    from vbranch.git import gitops

    monkeypatch.setattr(gitops, "PACK_AT_LEAST", 1)  # this small commit too
    v = vb({"a/b.txt": "1\n", "x": "a file\n", "k.txt": "k\n"})
    v.edit("s0", "a/b.txt", "2\n")
    v.edit("s1", "c/d/e.txt", "new\n")
    loose, packs = _objects(v.repo)
    commit_all(v)
    after_loose, after_packs = _objects(v.repo)
    assert after_loose == loose and len(after_packs - packs) == 1  # blobs, trees, 3 commits: one pack
    assert subprocess.run(["git", "-C", str(v.repo), "fsck", "--strict", "--no-dangling"], capture_output=True).returncode == 0
    assert git(v.repo, "status", "--porcelain") == ""
    assert v.files_of("s1")["c/d/e.txt"] == b"new\n"
    # A file turned into a directory (and the index follows it), then back.
    os.remove(v.repo / "x")
    write(v.repo, "x/y.txt", "inside\n")
    v.record("s2", "x", "x/y.txt")
    commit_all(v)
    assert v.files_of("s2")["x/y.txt"] == b"inside\n" and "x" not in v.files_of("s2")
    assert git(v.repo, "status", "--porcelain") == ""
    assert git(v.repo, "ls-files", "x", "x/y.txt").split() == ["x/y.txt"]
    (v.repo / "x" / "y.txt").unlink()
    (v.repo / "x").rmdir()
    write(v.repo, "x", "a file again\n")
    v.record("s2", "x/y.txt", "x")
    commit_all(v)
    assert v.files_of("s2")["x"] == b"a file again\n"
    assert git(v.repo, "status", "--porcelain") == ""
    assert subprocess.run(["git", "-C", str(v.repo), "fsck", "--strict", "--no-dangling"], capture_output=True).returncode == 0


def test_a_batch_reads_its_objects_and_the_stored_ones_by_id_and_by_prefix(make_repo):
    """libgit2 asks the batch's objects by prefix at every read: whole ids (ending in 0 or not),
    objects already stored and short prefixes all come back right."""
    import pygit2

    from vbranch.git import gitops

    repo = gitops.open_repo(make_repo({"f.txt": "f\n"}))
    stored = repo.revparse_single("HEAD").tree["f.txt"].id
    with gitops.batch(repo):
        pending = [gitops.write_blob(repo, b"object %d\n" % i) for i in range(200)]
        assert any(oid.endswith("0") for oid in pending)
        for i, oid in enumerate(pending):
            assert repo[oid].data == b"object %d\n" % i
        assert repo[stored].data == b"f\n"
        backend = repo._vbranch_pending
        kind, data, found = backend.read_prefix_cb(pending[0][:12] + "0" * 28)
        assert (data, str(found)) == (b"object 0\n", pending[0])
        with pytest.raises(KeyError):
            backend.read_prefix_cb(str(stored))
        assert isinstance(found, pygit2.Oid)


def test_objects_written_after_a_batch_are_loose_and_readable(make_repo):
    from vbranch.git import gitops

    repo = gitops.open_repo(make_repo({"f.txt": "f\n"}))
    with gitops.batch(repo):
        inside = gitops.write_blob(repo, b"in the batch\n")
        assert repo[inside].data == b"in the batch\n"  # readable before it is on disk
    after = gitops.write_blob(repo, b"after the batch\n")
    top = repo.workdir
    assert _objects(Path(top))[1] == set()  # a batch of one object: loose, no pack
    assert git(top, "cat-file", "blob", inside) == "in the batch\n"
    assert git(top, "cat-file", "blob", after) == "after the batch\n"
    try:
        with gitops.batch(repo):
            lost = gitops.write_blob(repo, b"never written\n")
            raise RuntimeError
    except RuntimeError:
        pass
    assert subprocess.run(["git", "-C", top, "cat-file", "-e", lost], capture_output=True).returncode != 0


def test_many_packs_are_rolled_up(make_repo, monkeypatch):
    import time

    from vbranch.git import gitops

    monkeypatch.setattr(gitops, "PACK_AT_LEAST", 1)
    monkeypatch.setattr(gitops, "ROLL_UP_PACKS", 4)
    top = make_repo({"f.txt": "f\n"})
    repo = gitops.open_repo(top)
    blobs = []
    for i in range(6):
        with gitops.batch(repo):
            blobs.append(gitops.write_blob(repo, b"blob %d\n" % i))
    deadline = time.monotonic() + 30
    while len(_objects(top)[1]) > 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_objects(top)[1]) <= 4
    for i, oid in enumerate(blobs):
        assert git(top, "cat-file", "blob", oid) == "blob %d\n" % i


def test_large_blobs_read_again_come_from_a_bounded_cache(make_repo, monkeypatch):
    """A landing reads the same large blobs once per branch it rebases: they are kept, within a bound,
    and what comes back is always the blob's own content."""
    from vbranch.git import gitops

    monkeypatch.setattr(gitops, "_blobs", {})
    monkeypatch.setattr(gitops, "_blobs_size", [0])
    monkeypatch.setattr(gitops, "BLOB_CACHE", 1 << 20)
    repo = gitops.open_repo(make_repo({"f.txt": "f\n"}))
    blobs = {gitops.write_blob(repo, bytes([i]) * (200 << 10) + b"\n"): i for i in range(12)}  # 200 KB each
    for _ in range(2):
        for oid, i in blobs.items():
            assert gitops.blob_data(repo, oid) == bytes([i]) * (200 << 10) + b"\n"
            assert gitops._blobs_size[0] <= gitops.BLOB_CACHE
    kept = list(gitops._blobs)
    assert 0 < len(kept) <= 5 and gitops._blobs_size[0] == sum(len(gitops._blobs[o]) for o in kept)
    small = gitops.write_blob(repo, b"small\n")
    assert gitops.blob_data(repo, small) == b"small\n" and small not in gitops._blobs  # read faster than kept


# --- a commit is planned with the state lock let go (hooks go on), carried out under it -------------

def _during_the_plan(monkeypatch, action, before: bool = False):
    """Run `action` once, while a commit plans (just `before` it reads anything, else right after
    the plan is built): the lock let go, the plan's snapshot open. Returns the list of plans made."""
    from vbranch.ops import committing

    calls, real = [], committing._plan

    def planning(*args, **kwargs):
        calls.append(args[2])
        first = len(calls) == 1
        if first and before:
            action()
        plan = real(*args, **kwargs)
        if first and not before:
            action()
        return plan

    monkeypatch.setattr(committing, "_plan", planning)
    return calls


def test_a_change_recorded_while_a_commit_plans_waits_for_the_next_commit(vb, monkeypatch):
    """The plan reads the store as the fold left it; what a hook records meanwhile is as if made just
    after the commit: left out of it, shown by status, taken by the next commit."""
    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    calls = _during_the_plan(monkeypatch, lambda: (state_lock_is_free(v), v.edit("a", "g.txt", "X\n")), before=True)
    v.commit()
    assert len(calls) == 1  # planned once: no operation came in between
    assert v.files_of("a") == {"f.txt": b"1\nA\n3\n", "g.txt": b"x\n"}
    assert tree_files(v.repo, "HEAD") == {"f.txt": b"1\nA\n3\n", "g.txt": b"x\n"}
    assert git(v.repo, "status", "--porcelain") == " M g.txt\n"
    commit_all(v)
    assert v.files_of("a") == {"f.txt": b"1\nA\n3\n", "g.txt": b"X\n"}
    assert git(v.repo, "status", "--porcelain") == ""


def test_another_branchs_commit_meanwhile_rebuilds_only_the_workspace(vb, monkeypatch):
    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    v.edit("b", "g.txt", "B\n")
    a, b = v.branch_of("a"), v.branch_of("b")
    calls = _during_the_plan(monkeypatch, lambda: v.commit(b))
    assert [name for name, _, _ in v.commit(a).committed] == [a]
    assert calls == [[a], [b]]  # a's plan and b's own: a's branch commit was not planned again
    heads = [git(v.repo, "rev-parse", f"refs/heads/{x}").strip() for x in (a, b)]
    parents = git(v.repo, "rev-list", "--parents", "-n1", "HEAD").split()[1:]
    assert parents == [git(v.repo, "rev-parse", "main").strip(), *heads]
    assert tree_files(v.repo, "HEAD") == {"f.txt": b"1\nA\n3\n", "g.txt": b"B\n"}
    assert git(v.repo, "status", "--porcelain") == ""


def test_a_landing_meanwhile_makes_the_commit_plan_again_on_the_new_base(vb, monkeypatch):
    from vbranch.ops import landing

    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    v.edit("b", "g.txt", "B\n")
    a, b = v.branch_of("a"), v.branch_of("b")
    v.commit(b)

    def land_b():
        ws = v.ws()
        try:
            landing.land(ws, b, "ff", v.at())
        finally:
            ws.close()

    _during_the_plan(monkeypatch, land_b)
    v.commit(a)
    main = git(v.repo, "rev-parse", "main").strip()
    assert tree_files(v.repo, "main") == {"f.txt": b"1\n2\n3\n", "g.txt": b"B\n"}
    assert git(v.repo, "rev-list", "--parents", "-n1", f"refs/heads/{a}").split()[1:] == [main]
    assert v.files_of("a") == {"f.txt": b"1\nA\n3\n", "g.txt": b"B\n"}
    assert tree_files(v.repo, "HEAD") == {"f.txt": b"1\nA\n3\n", "g.txt": b"B\n"}
    assert git(v.repo, "status", "--porcelain") == ""


def test_a_commit_of_the_same_branch_meanwhile_makes_the_commit_plan_again(vb, monkeypatch):
    v = vb({"f.txt": "1\n2\n3\n", "g.txt": "x\n"})
    v.edit("a", "f.txt", "1\nA\n3\n")
    a = v.branch_of("a")

    def another_commit_of_a():
        v.edit("a", "g.txt", "X\n")
        v.commit(a)

    calls = _during_the_plan(monkeypatch, another_commit_of_a)
    assert v.commit(a).unchanged == [a]  # planned again: the other commit had taken it all
    assert calls == [[a], [a], [a]]
    assert v.files_of("a") == {"f.txt": b"1\nA\n3\n", "g.txt": b"X\n"}
    assert git(v.repo, "rev-list", "--count", f"refs/heads/{a}").strip() == "2"  # the base and one commit
    assert git(v.repo, "status", "--porcelain") == ""
