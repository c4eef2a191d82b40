"""Landing branches that all changed the same large files: the paths made fast for it (merges on
bytes, blobs written and kept in memory by gitops) give exactly each branch's lines."""
from __future__ import annotations

from tests.conftest import git, tree_files, work_files
from tests.test_landing import fsck_clean, land

SESSIONS = "abcd"
# Larger than gitops.BLOB_CACHED_FROM (kept in memory); CRLF lines, no final newline, LF.
SHARED = {
    "crlf.txt": (b"crlf line %d " + b"y" * 60 + b"\r\n", 2000, True),
    "nofinal.txt": (b"line %d " + b"x" * 40 + b"\n", 3000, False),
    "small.txt": (b"s%d\n", 40, True),
}


def shared_text(path: str, landed: set[str], who: set[str]) -> bytes:
    """The shared file with the lines of the sessions in `landed | who` changed: two adjacent lines
    each, near the top, in the middle and at the very end (the common ends the merges skip are long;
    the last session's change is the last line)."""
    pattern, count, final = SHARED[path]
    lines = [pattern % n for n in range(count)]
    for k, session in enumerate(SESSIONS):
        if session in landed | who:
            for at in (3 + 3 * k, count // 2 + 3 * k, count - 2 - 3 * (len(SESSIONS) - 1 - k)):
                for n in (at, at + 1):
                    lines[n] = lines[n].replace(b"line", session.encode() * 3)
    text = b"".join(lines)
    return text if final else text.rstrip(b"\r\n")


def test_landing_branches_that_share_large_files_one_by_one(vb):
    v = vb({path: shared_text(path, set(), set()) for path in SHARED})
    base = tree_files(v.repo, "main")
    for session in SESSIONS:
        for path in SHARED:
            v.edit(session, path, shared_text(path, set(), set(SESSIONS[: SESSIONS.index(session) + 1])))
        v.edit(session, f"own_{session}.txt", f"{session}\n")
    v.commit()
    v.edit("b", "own_b.txt", "b again\n")  # a second commit: b's history is replayed commit by commit
    v.commit("session-b")
    names = {s: v.branch_of(s) for s in SESSIONS}

    def expected(sessions: set[str]) -> dict[str, bytes]:
        files = dict(base)
        files.update({path: shared_text(path, sessions, set()) for path in SHARED})
        files.update({f"own_{s}.txt": b"b again\n" if s == "b" else f"{s}\n".encode() for s in sessions})
        return files

    landed: set[str] = set()
    for session in "cadb":
        land(v, session)
        landed.add(session)
        assert tree_files(v.repo, "main") == expected(landed)
        for other in set(SESSIONS) - landed:
            assert tree_files(v.repo, f"refs/heads/{names[other]}") == expected(landed | {other})
        assert tree_files(v.repo, "HEAD") == work_files(v.repo)
        fsck_clean(v.repo)
    assert git(v.repo, "status", "--porcelain") == ""
