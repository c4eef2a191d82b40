"""The line differ: valid difflib-style opcodes, minimal on small inputs, bounded on any input."""
from __future__ import annotations

import difflib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vbranch.core import ownership
from vbranch.core.ownership import diff_opcodes

lines = st.lists(st.sampled_from([b"a\n", b"b\n", b"c\n", b"d\n", b"e", b"\n"]), max_size=24)


def apply(a: list[bytes], b: list[bytes], ops) -> list[bytes]:
    """a with the opcodes' changes applied, checking their shape on the way."""
    out, i, j = [], 0, 0
    for tag, i1, i2, j1, j2 in ops:
        assert tag == {(True, True): "replace", (True, False): "delete", (False, True): "insert"}[(i2 > i1, j2 > j1)]
        assert i1 >= i and j1 >= j  # in order, not overlapping
        assert (i1, j1) != (i, j) or not out and (i, j) == (0, 0)  # an unchanged line between any two
        assert i1 - i == j1 - j and a[i:i1] == b[j:j1]  # what lies between is equal
        out += a[i:i1] + b[j1:j2]
        i, j = i2, j2
    assert a[i:] == b[j:]
    return out + a[i:]


def changed(ops) -> int:
    return sum(i2 - i1 + j2 - j1 for _tag, i1, i2, j1, j2 in ops)


def lcs(a: list[bytes], b: list[bytes]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for k, y in enumerate(b):
            prev, row[k + 1] = row[k + 1], prev + 1 if x == y else max(row[k + 1], row[k])
    return row[-1]


@settings(max_examples=400, deadline=None)
@given(lines, lines)
def test_opcodes_are_valid_and_minimal(a, b):
    ops = diff_opcodes(a, b)
    assert apply(a, b, ops) == b
    assert changed(ops) == len(a) + len(b) - 2 * lcs(a, b)  # a longest common subsequence
    ref = [op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if op[0] != "equal"]
    assert changed(ops) <= changed(ref)  # never more changed lines than difflib


@settings(max_examples=300, deadline=None)
@given(lines, lines, st.integers(1, 40), st.integers(0, 200), st.integers(0, 60))
def test_opcodes_stay_valid_when_the_budgets_run_out(a, b, exact, total, scan):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ownership, "EXACT_CELLS", exact)
        mp.setattr(ownership, "TOTAL_CELLS", total)
        mp.setattr(ownership, "SCAN_LINES", scan)
        ops = diff_opcodes(a, b)
    assert apply(a, b, ops) == b


def test_no_budget_left_makes_one_replaced_block(monkeypatch):
    monkeypatch.setattr(ownership, "TOTAL_CELLS", 0)
    a = [b"x\n"] * 25 + [b"y\n"] * 25  # no line unique to anchor on
    b = [b"y\n"] * 25 + [b"x\n"] * 25
    assert diff_opcodes(a, b) == [("replace", 0, 50, 0, 50)]


def test_too_big_regions_are_split_at_unique_lines(monkeypatch):
    monkeypatch.setattr(ownership, "EXACT_CELLS", 16)
    a = [b"%d\n" % n for n in range(100)]
    b = list(a)
    for n in (10, 40, 70):
        b[n] = b"changed\n"
    assert diff_opcodes(a, b) == [("replace", n, n + 1, n, n + 1) for n in (10, 40, 70)]


def test_few_distinct_lines_are_cut_into_pieces(monkeypatch):
    monkeypatch.setattr(ownership, "EXACT_CELLS", 400)  # pieces of at most 20 lines a side
    a = [b"x\n", b"y\n"] * 100
    b = list(a)
    for n in (7, 99, 150):
        b[n] = b"z\n"
    ops = diff_opcodes(a, b)
    assert apply(a, b, ops) == b
    # Not minimal (6): a cut between pieces can misalign a few lines; far from the whole (400).
    assert changed(ops) <= 6 + 4 * 10


def test_the_cubic_case_of_difflib():
    # difflib's recursion takes O(n^3) here (seconds at a few hundred lines).
    a = [b"x\n"] * 400
    b = [b"q\n"] + [b"x\n", b"y\n"] * 200 + [b"q\n"]
    ops = diff_opcodes(a, b)
    assert apply(a, b, ops) == b and changed(ops) == 402


def lockfile(n: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = [b"{\n", b'  "packages": {\n']
    k = 0
    while len(out) < n - 2:
        out += [
            b'    "node_modules/pkg-%d": {\n' % k,
            b'      "version": "%d.%d.0",\n' % (k % 7, k % 13),
            b'      "integrity": "sha512-%032x",\n' % rnd.getrandbits(128),
            b'      "dev": true,\n',
            b"    },\n",
        ]
        k += 1
    return out[: n - 2] + [b"  }\n", b"}\n"]


def test_an_80000_line_file_with_scattered_changes_is_diffed_exactly():
    a = lockfile(80_000, seed=1)
    rnd = random.Random(2)
    b = list(a)
    spots = sorted(rnd.sample(range(0, len(b), 3), 1500))  # none adjacent
    for n in spots:
        b[n] = b"      \"dev\": false,\n" if rnd.random() < 0.5 else b[n].replace(b'"', b"'")
    ops = diff_opcodes(a, b)
    assert apply(a, b, ops) == b
    # Structure, not a timer: each changed line is its own one-line block, never a whole region.
    touched = {n for n in spots if a[n] != b[n]}
    assert changed(ops) == 2 * len(touched)
    assert all(i2 - i1 <= 1 for _tag, i1, i2, _j1, _j2 in ops)


def test_an_80000_line_file_of_few_distinct_lines_stays_fine_grained():
    rnd = random.Random(3)
    a = [b"%d\n" % rnd.randrange(20) for _ in range(80_000)]
    b = [b"changed\n" if rnd.random() < 0.01 else line for line in a]
    b[40_000:40_000] = [b"7\n"] * 30  # a shift in the middle
    ops = diff_opcodes(a, b)
    assert apply(a, b, ops) == b
    assert changed(ops) < 4 * (len([x for x in b if x == b"changed\n"]) + 30)  # not the whole file


def test_moved_blocks_are_correct_and_bounded():
    a = [b"%d\n" % n for n in range(80_000)]
    b = a[40_000:] + a[:40_000]
    ops = diff_opcodes(a, b)
    assert apply(a, b, ops) == b and changed(ops) == 80_000
