"""Per-branch file contents from the base and the ownership: pure logic, no I/O."""
from __future__ import annotations

from .ownership import FileOwnership, FileState, diff_opcodes, split_lines


def branch_state(rec: FileOwnership, branch: int) -> FileState:
    """The file as branch `branch` alone would have it: base plus only its own changes."""
    if rec.is_whole:
        return rec.known if rec.owners == (branch,) else rec.base
    base = split_lines(rec.base.data)
    current = split_lines(rec.known.data)
    out: list[bytes] = []
    b = c = 0
    for op, owners in rec.items:
        if op == "K":
            out.append(base[b])
            b += 1
            c += 1
        elif op == "D":
            if owners != (branch,):
                out.append(base[b])
            b += 1
        elif op == "I":
            if owners == (branch,):
                out.append(current[c])
            c += 1
    return FileState(True, rec.base.mode, b"".join(out))


def touches(rec: FileOwnership, branch: int) -> bool:
    """True when the branch owns any change of the record, alone or contested."""
    if rec.is_whole:
        return rec.changed and branch in rec.owners
    return any(op != "K" and branch in owners for op, owners in rec.items)


def merge_versions(base: list[bytes], versions: list[list[bytes]]) -> list[bytes] | None:
    """Combine several versions of one base, each changing different lines.

    Changes are placed by base position; insertions at the same position keep
    the order of `versions`. Adjacent changes are fine (unlike git's merge);
    overlapping different changes give None.
    """
    hunks = []
    for order, version in enumerate(versions):
        for _tag, i1, i2, j1, j2 in diff_opcodes(base, version):
            hunks.append((i1, i2, i2 > i1, order, version[j1:j2]))
    hunks.sort(key=lambda h: h[:4])
    out: list[bytes] = []
    pos = 0
    last = None
    for start, end, _replaces, _order, lines in hunks:
        if start < pos:
            if last == (start, end, lines):
                continue  # the same change made on two branches
            return None
        out.extend(base[pos:start])
        out.extend(lines)
        pos = end
        last = (start, end, lines)
    out.extend(base[pos:])
    return out


def merge_lines(base: list[bytes], versions: list[list[bytes]]) -> tuple[list[bytes] | None, list[tuple[int, int]]]:
    """merge_versions that says where it fails: (merged or None, clashing base lines, 1-based).

    The same change made in two versions counts once, a pure insertion too
    (git's merge agrees); an empty range (a, a - 1) is an insertion before base line a.
    """
    hunks = []
    for order, version in enumerate(versions):
        for _tag, i1, i2, j1, j2 in diff_opcodes(base, version):
            hunks.append((i1, i2, i2 > i1, order, version[j1:j2]))
    hunks.sort(key=lambda h: h[:4])
    out: list[bytes] = []
    clashes: list[tuple[int, int]] = []
    pos = 0
    last = None
    for start, end, _replaces, _order, lines in hunks:
        if last == (start, end, lines):
            continue
        if start < pos:
            clashes.append((start + 1, max(end, pos)))
            continue
        out.extend(base[pos:start])
        out.extend(lines)
        pos = end
        last = (start, end, lines)
    out.extend(base[pos:])
    return (None if clashes else out), clashes


def merge_states(base: FileState, ours: FileState, theirs: FileState) -> tuple[FileState | None, list[tuple[int, int]] | None]:
    """Three-way merge of one file: (result, None), or (None, clashing base lines; None for the whole file)."""
    if ours == theirs or theirs == base:
        return ours, None
    if ours == base:
        return theirs, None
    texts = base.is_text and ours.is_text and theirs.is_text
    if not texts or not base.mode == ours.mode == theirs.mode:
        return None, None
    merged, clashes = merge_lines(split_lines(base.data), [split_lines(ours.data), split_lines(theirs.data)])
    if merged is None:
        return None, clashes
    return FileState(True, base.mode, b"".join(merged)), None
