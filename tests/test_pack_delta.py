"""Large blobs written together are stored as git deltas: exact, and readable by git and libgit2."""
from __future__ import annotations

import random
import subprocess

import pygit2
from hypothesis import given, settings
from hypothesis import strategies as st

from vbranch.git import delta, gitops


def apply(base: bytes, patch: bytes) -> tuple[bytes, int]:
    """git's delta applied (patch-delta.c, in Python): (the result, how many literal bytes it inserted)."""
    pos = 0

    def size() -> int:
        nonlocal pos
        n = shift = 0
        while True:
            byte = patch[pos]
            pos += 1
            n |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return n

    assert size() == len(base)
    expected = size()
    out, literal = bytearray(), 0
    while pos < len(patch):
        cmd = patch[pos]
        pos += 1
        if cmd & 0x80:
            offset = length = 0
            for k in range(4):
                if cmd & (1 << k):
                    offset |= patch[pos] << (8 * k)
                    pos += 1
            for k in range(3):
                if cmd & (0x10 << k):
                    length |= patch[pos] << (8 * k)
                    pos += 1
            length = length or 0x10000
            assert offset + length <= len(base)
            out += base[offset:offset + length]
        else:
            assert cmd, "0 is a reserved instruction"
            out += patch[pos:pos + cmd]
            literal += cmd
            pos += cmd
    assert len(out) == expected
    return bytes(out), literal


def _file(lines: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [b"    value_%d = compute(%d, %r)\n" % (i, rng.randrange(10**6), rng.random()) for i in range(lines)]


def _edited(lines: list[bytes], seed: int) -> bytes:
    """A session's version: a line changed near the start, one inserted midway, one removed near the end."""
    out = lines[:]
    out[10 + seed] = b"session %d was here\n" % seed
    out.insert(len(out) // 2 + 3 * seed, b"inserted by %d\n" % seed)
    del out[-20 - seed]
    return b"".join(out)


def test_versions_of_a_file_are_small_exact_deltas():
    lines = _file(8000)
    base = _edited(lines, 0)
    for seed in range(1, 6):
        data = _edited(lines, seed)
        patch = delta.encode(base, data, limit=len(data) // 4)
        assert patch is not None and len(patch) < 500
        assert apply(base, patch)[0] == data


lines_strategy = st.lists(st.sampled_from([b"a\n", b"bb\n", b"x" * 40 + b"\n", b"\n", b"}\r\n", b"tail"]), max_size=60)


@settings(max_examples=400, deadline=None)
@given(
    base=st.lists(st.binary(max_size=50), max_size=80).map(lambda ls: b"\n".join(ls)),
    edits=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 3), lines_strategy), max_size=5),
    limit=st.integers(0, 4000),
)
def test_any_edit_round_trips_and_keeps_to_its_limit(base, edits, limit):
    lines = base.splitlines(True)
    for at, removed, added in edits:
        at = min(at, len(lines))
        lines[at:at + removed] = added
    data = b"".join(lines)
    patch = delta.encode(base, data, limit)
    if patch is not None:
        result, literal = apply(base, patch)
        assert result == data
        assert literal <= limit


def test_unrelated_data_is_refused():
    base, other = b"".join(_file(3000, seed=1)), b"".join(_file(3000, seed=2))
    assert not delta.alike(base, other)
    assert delta.encode(base, other, limit=len(other) // 4) is None


def test_copies_longer_than_one_instruction_holds():
    base = bytes(range(256)) * (delta.COPY_MAX // 256 + 10)
    data = base + b"end\n"
    patch = delta.encode(base, data, limit=10)
    assert apply(base, patch)[0] == data


def _verify_pack(repo_dir) -> str:
    idx = [str(p) for p in (repo_dir / ".git" / "objects" / "pack").glob("*.idx")]
    assert len(idx) == 1
    return subprocess.run(["git", "verify-pack", "-v", *idx], cwd=repo_dir, capture_output=True, text=True, check=True).stdout


def test_a_batch_stores_similar_large_blobs_as_deltas(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    repo = pygit2.Repository(str(tmp_path))
    lines, other = _file(6000), _file(2000, seed=3)
    datas = [_edited(lines, k) for k in range(6)] + [_edited(other, k) for k in range(3)]
    datas.append(random.Random(4).randbytes(40_000))  # binary, nothing like it
    with gitops.batch(repo):
        ids = [str(gitops._create_blob(repo, data)) for data in datas]
    listing = _verify_pack(tmp_path)
    assert "chain length = 1: 7 objects" in listing  # 5 + 2 deltas; the first of each file and the binary whole
    subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=tmp_path, check=True, capture_output=True)
    fresh = pygit2.Repository(str(tmp_path))
    for oid, data in zip(ids, datas, strict=True):
        assert subprocess.run(["git", "cat-file", "blob", oid], cwd=tmp_path, capture_output=True, check=True).stdout == data
        assert fresh[oid].data == data


def test_two_large_blobs_make_a_pack_a_few_small_objects_stay_loose(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    repo = pygit2.Repository(str(tmp_path))
    lines = _file(3000)
    with gitops.batch(repo):
        small = str(gitops._create_blob(repo, b"small\n"))
    assert (tmp_path / ".git" / "objects" / small[:2] / small[2:]).exists()
    with gitops.batch(repo):
        big = [str(gitops._create_blob(repo, _edited(lines, k))) for k in range(2)]
    assert "chain length = 1: 1 object" in _verify_pack(tmp_path)
    assert not any((tmp_path / ".git" / "objects" / oid[:2] / oid[2:]).exists() for oid in big)
