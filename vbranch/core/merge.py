"""Per-branch file contents from the base and the ownership: pure logic, no I/O."""
from __future__ import annotations

from vbranch.core.ownership import (  # noqa: F401 (branch_state is part of split's API)
    UNATTRIBUTED,
    FileOwnership,
    FileState,
    branch_state,
    diff_opcodes,
    diff_regions,
)


def touches(rec: FileOwnership, branch: int) -> bool:
    """True when the branch owns any change of the record, alone or contested."""
    return branch in rec.changers


def committable(rec: FileOwnership, branch: int) -> FileOwnership:
    """The record as far as `branch` can commit it now: a region of changed lines holding a
    contested change of the branch is left out whole, so that a commit never holds half of
    an edit (the deletion of a line without what replaced it)."""
    if rec.is_whole or not rec.contested or not any(len(o) > 1 and branch in o for op, o in rec.items if op != "K"):
        return rec
    out: list = []
    run: list = []

    def flush() -> None:
        held = any(len(o) > 1 and branch in o for _, o in run)
        out.extend((op, (UNATTRIBUTED,) if held and o == (branch,) else o) for op, o in run)
        run.clear()

    for op, owners in rec.items:
        if op == "K":
            flush()
            out.append((op, owners))
        else:
            run.append((op, owners))
    flush()
    return FileOwnership(rec.path, rec.base, rec.known, out, (), rec.stat)


def _hunks(base: list[bytes], versions: list[list[bytes]]) -> list[tuple]:
    """Every version's changes in base order: (start, end, replaces, version index, new lines,
    cut start, cut end); the cut is where the hunk lies in `base` (here: the same line indices).

    Pure insertions sort before a replacement at the same position, then by version.
    """
    hunks = []
    for order, version in enumerate(versions):
        for _tag, i1, i2, j1, j2 in diff_opcodes(base, version):
            hunks.append((i1, i2, i2 > i1, order, version[j1:j2], i1, i2))
    hunks.sort(key=lambda h: h[:4])
    return hunks


def _ordered(versions: list[list[tuple]]) -> list[tuple]:
    """The versions' text_hunks as _hunks orders them."""
    hunks = [(i1, i2, i2 > i1, order, lines, cut_start, cut_end)
             for order, found in enumerate(versions) for i1, i2, lines, cut_start, cut_end in found]
    hunks.sort(key=lambda h: h[:4])
    return hunks


def merge_versions(base: list[bytes], versions: list[list[bytes]]) -> list[bytes] | None:
    """Combine several versions of one base, each changing different lines.

    Changes are placed by base position; insertions at the same position keep
    the order of `versions`. Adjacent changes are fine (unlike git's merge);
    overlapping different changes give None.
    """
    chosen = _placed(_hunks(base, versions))
    return None if chosen is None else _join_lines(base, chosen)


def merge_text_versions(base: bytes, versions: list[bytes]) -> bytes | None:
    """merge_versions of split_lines(base) and the versions' lines, joined (found on bytes: faster)."""
    return merge_text_hunks(base, [text_hunks(base, version) for version in versions])


def text_hunks(base: bytes, version: bytes) -> list[tuple]:
    """One version's changes of `base`: (start, end, new lines, cut start, cut end), the cut being the
    byte range of `base` the lines replace. What merge_text_hunks needs of the version: a caller
    merging the same versions again keeps these instead of the versions."""
    return [(i1, i2, lines, cut_start, cut_end) for _tag, i1, i2, _j1, _j2, cut_start, cut_end, lines in diff_regions(base, version)]


def merge_text_hunks(base: bytes, versions: list[list[tuple]]) -> bytes | None:
    """merge_text_versions of versions given by their text_hunks."""
    chosen = _placed(_ordered(versions))
    return None if chosen is None else _join_text(base, chosen)


def _placed(hunks: list[tuple]) -> list[tuple] | None:
    """merge_versions' choice: every hunk, the same change made twice once; None on an overlap."""
    chosen: list[tuple] = []
    for hunk in hunks:
        if chosen and hunk[0] < chosen[-1][1]:
            if chosen[-1][:2] + chosen[-1][4:5] == hunk[:2] + hunk[4:5]:
                continue  # the same change made on two branches
            return None
        chosen.append(hunk)
    return chosen


def merge_lines(base: list[bytes], versions: list[list[bytes]]) -> tuple[list[bytes] | None, list[tuple[int, int]]]:
    """merge_versions that says where it fails: (merged or None, clashing base lines, 1-based).

    The same change made in two versions counts once, a pure insertion too
    (git's merge agrees), and so does a line-for-line replacement that lies
    within another version's line-for-line replacement and agrees with it (two
    branches' adjacent lines squashed into one commit elsewhere).
    """
    chosen, clashes = _chosen(_hunks(base, versions))
    return (None, clashes) if clashes else (_join_lines(base, chosen), [])


def merge_texts(base: bytes, versions: list[bytes]) -> tuple[bytes | None, list[tuple[int, int]]]:
    """merge_lines of split_lines(base) and the versions' lines, joined (found on bytes: faster)."""
    return merge_texts_of_hunks(base, [text_hunks(base, version) for version in versions])


def merge_texts_of_hunks(base: bytes, versions: list[list[tuple]]) -> tuple[bytes | None, list[tuple[int, int]]]:
    """merge_texts of versions given by their text_hunks."""
    chosen, clashes = _chosen(_ordered(versions))
    return (None, clashes) if clashes else (_join_text(base, chosen), [])


def _chosen(hunks: list[tuple]) -> tuple[list[tuple], list[tuple[int, int]]]:
    """merge_lines' choice of hunks: (chosen, clashing base lines)."""
    chosen: list[tuple] = []
    clashes: list[tuple[int, int]] = []
    for hunk in hunks:
        start, end, _replaces, _order, lines = hunk[:5]
        last = chosen[-1] if chosen else None
        if last is None or start >= last[1]:
            chosen.append(hunk)
        elif (last[0], last[1], last[4]) == (start, end, lines) or _within(hunk, last):
            continue
        elif _within(last, hunk) and (len(chosen) < 2 or chosen[-2][1] <= start):
            chosen[-1] = hunk
        else:
            clashes.append((start + 1, max(end, last[1])))
    return chosen, clashes


def _join_lines(base: list[bytes], chosen: list[tuple]) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    for hunk in chosen:
        out.extend(base[pos:hunk[5]])
        out.extend(hunk[4])
        pos = hunk[6]
    out.extend(base[pos:])
    return out


def _join_text(base: bytes, chosen: list[tuple]) -> bytes:
    out: list[bytes] = []
    pos = 0
    for hunk in chosen:
        out.append(base[pos:hunk[5]])
        out.extend(hunk[4])
        pos = hunk[6]
    out.append(base[pos:])
    return b"".join(out)


def _within(small: tuple, big: tuple) -> bool:
    """`small` replaces lines one for one inside `big`'s one-for-one replacement, with the same new lines."""
    s0, s1, _, _, s_lines = small[:5]
    b0, b1, _, _, b_lines = big[:5]
    return (
        b0 <= s0 and s1 <= b1 and s1 > s0
        and len(s_lines) == s1 - s0 and len(b_lines) == b1 - b0
        and b_lines[s0 - b0:s1 - b0] == s_lines
    )


def merge_states(base: FileState, ours: FileState, theirs: FileState) -> tuple[FileState | None, list[tuple[int, int]] | None]:
    """Three-way merge of one file: (result, None), or (None, clashing base lines; None for the whole file)."""
    if ours == theirs or theirs == base:
        return ours, None
    if ours == base:
        return theirs, None
    texts = base.is_text and ours.is_text and theirs.is_text
    if not texts or not base.mode == ours.mode == theirs.mode:
        return None, None
    merged, clashes = merge_texts(base.data, [ours.data, theirs.data])
    if merged is None:
        return None, clashes
    return FileState(True, base.mode, merged), None
