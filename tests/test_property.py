"""The split engine's invariants, on random files and random interleaved edits.

Sessions own disjoint base lines of shared files (and whole files of their
own). Each session replaces, deletes and inserts after its own lines, in an
order interleaved with the others, recording after every step. Then:
each branch equals the base plus exactly its session's edits; the workspace
commit (all branches merged) equals the working directory; committing
touched no working file and left no lock; git fsck is clean.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import VB, fingerprint, git, lock_files, tree_files, work_files, write
from vbranch.core import ownership
from vbranch.core.merge import merge_lines, merge_text_versions, merge_texts, merge_versions
from vbranch.core.ownership import diff_opcodes, diff_regions, split_lines


@dataclass
class Slot:
    owner: int
    text: str
    ops: list[tuple[str, str | None]] = field(default_factory=list)  # ("replace", t) | ("delete", None) | ("after", t)


@dataclass
class SharedFile:
    path: str
    slots: list[Slot]
    trailing_newline: bool
    prefix_owner: int
    prefix: list[str] = field(default_factory=list)  # lines the prefix owner inserts at the top

    def render(self, applied: set, who: int | None = None) -> bytes:
        """The file with the applied ops of `who` (everyone for None)."""
        def mine(owner: int) -> bool:
            return who is None or owner == who

        out = [t for k, t in enumerate(self.prefix) if (self.path, "top", k) in applied and mine(self.prefix_owner)]
        for i, slot in enumerate(self.slots):
            done = [op for k, op in enumerate(slot.ops) if (self.path, i, k) in applied and mine(slot.owner)]
            kinds = dict(done)
            if "delete" not in kinds:
                out.append(kinds.get("replace") or slot.text)
            out.extend(t for kind, t in done if kind == "after")
        text = "\n".join(out)
        return (text + "\n" if self.trailing_newline and out else text).encode()


@st.composite
def scenarios(draw):
    sessions = draw(st.integers(2, 6))
    counter = iter(range(10**6))
    files = []
    for f in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 12))
        owners = draw(st.lists(st.integers(0, sessions - 1), min_size=n, max_size=n))
        trailing = draw(st.booleans())
        slots = []
        for i, owner in enumerate(owners):
            slot = Slot(owner, f"f{f} base line {i}")
            # Without a final newline, deleting the last line rewrites the one before it.
            last_fixed = not trailing and i == n - 1
            change = draw(st.sampled_from(["keep", "replace"] if last_fixed else ["keep", "replace", "delete"]))
            if change != "keep":
                slot.ops.append((change, f"s{owner} new {next(counter)}" if change == "replace" else None))
            # Lines are added after a line that stays visible: after a deleted
            # line the place among others' deletions is ambiguous (a replace
            # says it exactly).
            for _ in range(draw(st.integers(0, 2)) if change != "delete" else 0):
                slot.ops.append(("after", f"s{owner} added {next(counter)}"))
            draw(st.randoms()).shuffle(slot.ops)
            slots.append(slot)
        prefix_owner = owners[0]
        prefix = [f"s{prefix_owner} top {next(counter)}" for _ in range(draw(st.integers(0, 1)))]
        files.append(SharedFile(f"dir{f % 2}/shared {f}.txt", slots, trailing, prefix_owner, prefix))
    own_files = {s: [f"s{s}/new_{k}.py" for k in range(draw(st.integers(0, 2)))] for s in range(sessions)}
    doomed = draw(st.lists(st.integers(0, sessions - 1), max_size=2))
    steps = []
    for shared in files:
        steps += [(shared.prefix_owner, (shared.path, "top", k)) for k in range(len(shared.prefix))]
        for i, slot in enumerate(shared.slots):
            steps += [(slot.owner, (shared.path, i, k)) for k in range(len(slot.ops))]
    steps += [(s, ("new", path)) for s, paths in own_files.items() for path in paths]
    steps += [(s, ("delete", f"solo_{k}.txt")) for k, s in enumerate(doomed)]
    order = draw(st.permutations(steps))
    return sessions, files, own_files, doomed, order


def session_name(s: int) -> str:
    return f"session-{s}"


@settings(max_examples=int(os.environ.get("VBRANCH_PROPERTY_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_branches_split_exactly(scenario):
    sessions, files, own_files, doomed, order = scenario
    tmp = Path(tempfile.mkdtemp(prefix="vbranch-prop-"))
    try:
        check_scenario(tmp, sessions, files, own_files, doomed, order)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_scenario(repo, sessions, files, own_files, doomed, order):
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "T")
    git(repo, "config", "user.email", "t@example.invalid")
    for shared in files:
        write(repo, shared.path, shared.render(set()))
    for k in range(len(doomed)):
        write(repo, f"solo_{k}.txt", f"solo file {k}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    vb = VB(repo).init()

    applied: set = set()
    for session, step in order:
        applied.add(step)
        if step[0] == "new":
            path = step[1]
            write(repo, path, f"# written by session {session}\n")
        elif step[0] == "delete":
            path = step[1]
            (repo / path).unlink()
        else:
            shared = next(f for f in files if f.path == step[0])
            path = shared.path
            write(repo, path, shared.render(applied))
        vb.record(session_name(session), path)

    for s in range(sessions):  # every session exists, even one that changed nothing
        vb.record(session_name(s), ".gitignore")
    before = fingerprint(repo)
    report = vb.commit()
    assert report.held_back == {}
    assert fingerprint(repo) == before, "commit changed a working file"
    assert lock_files(repo) == []

    base = tree_files(repo, "main")
    for s in range(sessions):
        expected = dict(base)
        for shared in files:
            expected[shared.path] = shared.render(applied, who=s)
        for path in own_files[s]:
            expected[path] = f"# written by session {s}\n".encode()
        for k, owner in enumerate(doomed):
            if owner == s:
                del expected[f"solo_{k}.txt"]
        assert vb.files_of(session_name(s)) == expected, f"branch of session {s}"

    assert tree_files(repo, "HEAD") == work_files(repo), "the branches merged differ from the working tree"
    assert git(repo, "status", "--porcelain") == ""
    fsck = subprocess.run(["git", "-C", str(repo), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0 and "error" not in fsck.stderr, fsck.stderr


# The byte-level differ and merges against the line-level ones they stand in for: the same
# opcodes, cuts and merges on every text, whatever its line endings (only LF ends a line; CR
# and CRLF are data), with or without a final newline, empty, or identical to the other.
pieces = st.sampled_from([b"a", b"b", b"\n", b"\r", b"\r\n", b"a\n", b"b\n", b"\r\r\n"])
texts = st.lists(pieces, max_size=12).map(b"".join)


@st.composite
def related_texts(draw, count: int):
    """`count` texts sharing a random head and tail (so that the common ends are long), or unrelated."""
    head, tail = (draw(texts), draw(texts)) if draw(st.booleans()) else (b"", b"")
    return [head + draw(texts) + tail for _ in range(count)]


@st.composite
def edited_texts(draw, count: int):
    """A base and `count - 1` versions of it, each with some of its pieces kept, dropped, replaced or followed
    by a new one (edits in different places merge)."""
    base = draw(st.lists(pieces, max_size=12))
    versions = [b"".join(base)]
    for _ in range(count - 1):
        out = []
        for piece in base:
            edit = draw(st.sampled_from(["keep", "keep", "keep", "drop", "replace", "add"]))
            out += [] if edit == "drop" else [draw(pieces)] if edit == "replace" else [piece]
            out += [draw(pieces)] if edit == "add" else []
        versions.append(b"".join(out))
    return versions


def apply_regions(a: bytes, regions) -> bytes:
    out, pos = [], 0
    for *_opcode, start, end, lines in regions:
        out += [a[pos:start], *lines]
        pos = end
    return b"".join(out) + a[pos:]


@settings(max_examples=1000, deadline=None)
@given(related_texts(2), st.integers(1, 9))
def test_diff_regions_are_diff_opcodes_of_the_split_lines(pair, chunk):
    a, b = pair
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ownership, "CHUNK", chunk)  # small chunks: the growing compares and the halving all run
        mp.setattr(ownership, "CHUNK_MAX", 2 * chunk)
        regions = diff_regions(a, b)
    lines_a, lines_b = split_lines(a), split_lines(b)
    assert [r[:5] for r in regions] == diff_opcodes(lines_a, lines_b)
    for _tag, i1, i2, j1, j2, start, end, lines in regions:
        assert a[start:end] == b"".join(lines_a[i1:i2])
        assert lines == lines_b[j1:j2]
    assert apply_regions(a, regions) == b
    assert diff_regions(a, a) == [] and diff_regions(b"", b) == ([("insert", 0, 0, 0, len(lines_b), 0, 0, lines_b)] if b else [])


@settings(max_examples=800, deadline=None)
@given(st.one_of(related_texts(3), edited_texts(3)))
def test_text_merges_are_the_line_merges(versions):
    base, *others = versions
    merged, clashes = merge_lines(split_lines(base), [split_lines(v) for v in others])
    assert merge_texts(base, others) == ((None, clashes) if merged is None else (b"".join(merged), []))
    placed = merge_versions(split_lines(base), [split_lines(v) for v in others])
    assert merge_text_versions(base, others) == (None if placed is None else b"".join(placed))
