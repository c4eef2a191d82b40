"""Line ownership of uncommitted changes: pure logic, no I/O.

A text file's changes against the base are kept as an *alignment*: one item per
line, in file order, each one of

    K  a base line kept as it is
    D  a base line deleted             (owners)
    I  a line inserted in the file     (owners)
    X  an inserted line that a second branch removed: a tombstone, never in the file

Reading the K and D items gives the base; reading the K and I items gives the
file as the store last saw it. There are no context lines: two branches that
edit adjacent lines own separate items, and each branch's version of the file
is rebuilt from the base plus only its own items (see merge.py).

Owners are branch ids. One owner is a plain change; several owners mean the
line is *contested*; the owner UNATTRIBUTED means nobody known made it.

Whole-file changes (added, deleted, binary, symlink, mode change) have no
alignment: the record has one owner set for the whole file.
"""
from __future__ import annotations

from array import array
from collections import namedtuple
from itertools import accumulate, groupby

UNATTRIBUTED = 0
REGULAR = 0o100644
EXECUTABLE = 0o100755
SYMLINK = 0o120000

Owners = tuple[int, ...]
Item = tuple[str, Owners]  # (op, owners); K items have no owners


# Records are namedtuples, not dataclasses or typing.NamedTuple: those cost the
# hook path, which runs around every tool call, more than it can spare.


class FileState(namedtuple("FileState", "exists mode data", defaults=(False, REGULAR, b""))):
    """A file as git sees it: absent, or a mode and its bytes (a symlink's target)."""

    __slots__ = ()

    @property
    def is_text(self) -> bool:
        return self.exists and self.mode != SYMLINK and not is_binary(self.data)


ABSENT = FileState()


class FileOwnership:
    """What the store knows of one path: its base, last seen state and owners."""

    __slots__ = ("path", "base", "known", "items", "owners", "stat", "_changers", "_contested")

    def __init__(
        self,
        path: str,
        base: FileState,
        known: FileState,
        items: list[Item] | None = None,  # the alignment, for a text change of a text file
        owners: Owners = (),  # whole-file owners, when items is None
        stat: tuple | None = None,  # the working file's stat signature when last read
    ):
        self.path, self.base, self.known, self.items, self.owners, self.stat = path, base, known, items, owners, stat
        self._changers: frozenset[int] | None = None
        self._contested = False

    @property
    def is_whole(self) -> bool:
        return self.items is None

    @property
    def changers(self) -> frozenset[int]:
        """The branches owning any change of the record, alone or contested.

        Kept once found: a landing or a commit asks it of every record once per branch, and a
        large shared file has tens of thousands of items. A record is never changed in place
        (every function here returns a new one), so the answer cannot go stale.
        """
        if self._changers is None:
            self._find_owners()
        return self._changers

    @property
    def contested(self) -> bool:
        """True when a changed item (or the whole file) has two or more owners: only such a
        record can hold a conflict (kept as `changers` is)."""
        if self._changers is None:
            self._find_owners()
        return self._contested

    def _find_owners(self) -> None:
        if self.items is None:
            self._changers = frozenset(self.owners) if self.known != self.base else frozenset()
            self._contested = len(self.owners) > 1
        else:
            sets = {owners for op, owners in set(self.items) if op != "K"}
            self._changers = frozenset(o for owners in sets for o in owners)
            self._contested = any(len(owners) > 1 for owners in sets)

    @property
    def changed(self) -> bool:
        """True while the record holds any change: a different file, or a contested removal."""
        if self.items is None:
            return self.known != self.base
        return any(op != "K" for op, _ in self.items)


def is_binary(data: bytes) -> bool:
    # git's own heuristic: a NUL byte in the first 8000 bytes.
    return b"\0" in data[:8000]


def split_lines(data: bytes) -> list[bytes]:
    """Lines with their endings kept; CR is data, only LF ends a line."""
    if b"\r" not in data:  # bytes.splitlines also ends lines at CR (only there): without one it is the same, ~4x faster
        return data.splitlines(keepends=True)
    lines = data.split(b"\n")
    last = lines.pop()
    out = [line + b"\n" for line in lines]
    if last:
        out.append(last)
    return out


class _ByIdentity:
    """`make(data)` of the last few large bytes objects it was given, kept for that same object.

    A record's base (and, within one commit, its known state) is one object across many calls: the
    store keeps its unpacking. Splitting or counting the lines of 600 KB costs about a millisecond
    each time. What it keeps is shared: its callers only read it.
    """

    def __init__(self, make, keep: int = 8, sizes: tuple[int, int] = (1 << 16, 1 << 20)):
        self.make, self.keep, self.sizes = make, keep, sizes
        self.kept: dict[int, tuple] = {}  # id(data) -> (data, result); holding data keeps its id its own

    def __call__(self, data: bytes):
        if not self.sizes[0] <= len(data) <= self.sizes[1]:
            return self.make(data)
        found = self.kept.get(id(data))
        if found is not None and found[0] is data:
            return found[1]
        result = self.make(data)
        if len(self.kept) >= self.keep:
            self.kept.clear()  # (no iteration: the watcher's threads share it)
        self.kept[id(data)] = (data, result)
        return result


lines_of = _ByIdentity(split_lines)  # split_lines kept for the same object: read only
_newlines_of = _ByIdentity(lambda data: data.count(b"\n"))


def line_count(data: bytes) -> int:
    """len(split_lines(data)), without making the lines."""
    return _lines_between(data, 0, len(data))


def _lines_between(data: bytes, start: int, end: int) -> int:
    """How many lines split_lines finds in data[start:end] (`start` begins a line)."""
    return data.count(b"\n", start, end) + (1 if end > start and data[end - 1] != 10 else 0)  # (10 is LF)


# Above this many lines a file is owned whole (like a binary file): a generated lock file's
# rewrite would otherwise hold the state lock for seconds while every other hook waits.
LINE_LIMIT = 20_000


def lines_eligible(base: FileState, new: FileState) -> bool:
    """True when the change is a text edit that can be owned line by line."""
    return (
        base.is_text and new.is_text and base.mode == new.mode
        and _newlines_of(base.data) <= LINE_LIMIT and new.data.count(b"\n") <= LINE_LIMIT
    )


def new_record(path: str, base: FileState) -> FileOwnership:
    items = [("K", ())] * line_count(base.data) if base.is_text else None
    return FileOwnership(path, base, base, items)


def record_change(rec: FileOwnership, new: FileState, actor: int, co_owners: tuple[int, ...] = ()) -> FileOwnership:
    """Attribute the change from rec.known to `new` to branch `actor`.

    `co_owners` are branches that may have made the same change (two
    commands running at once): the change is then contested between them.
    """
    if new == rec.known:
        return rec
    if lines_eligible(rec.base, new):
        # The diff compares the unchanged ends of a large file as bytes: each side is split once, for canonicalize.
        if rec.is_whole:
            items = _apply_opcodes(_clean_items(rec.base), _opcodes(rec.base.data, new.data), actor, co_owners)
            items = _add_owners(items, rec.changers - {actor})
        else:
            items = _apply_opcodes(rec.items, _opcodes(rec.known.data, new.data), actor, co_owners)
        items = canonicalize(items, lines_of(rec.base.data), lines_of(new.data))  # (kept: the store packs new.data next)
        return FileOwnership(rec.path, rec.base, new, items)
    owners = tuple(sorted(rec.changers | {actor, *co_owners}))
    return FileOwnership(rec.path, rec.base, new, None, owners)


def _clean_items(base: FileState) -> list[Item] | None:
    return [("K", ())] * line_count(base.data) if base.is_text else None


def _opcodes(a: bytes, b: bytes) -> list[tuple[str, int, int, int, int]]:
    """diff_opcodes(split_lines(a), split_lines(b)), the common ends compared as bytes."""
    return [region[:5] for region in diff_regions(a, b)]


def runs(items: list[Item]) -> list[tuple[Item, int]]:
    """The alignment as runs of equal items, (item, count): a large file's is mostly a few long runs of kept lines."""
    return [(item, len(list(run))) for item, run in groupby(items)]


def inserted_lines(counts: list[tuple[str, int]], lines: list[bytes]) -> list[bytes] | None:
    """The lines the alignment marks inserted (I), in order, of the file whose `lines` these are;
    None when the alignment does not count as many lines. `counts` is the alignment as (op, count) runs."""
    out: list[bytes] = []
    at = 0
    for op, n in counts:
        if op == "I":
            out += lines[at:at + n]
        if op in "KI":
            at += n
    return out if at == len(lines) else None


def rebuilt(base: bytes, counts: list[tuple[str, int]], inserted: list[bytes]) -> bytes | None:
    """The file an alignment stands for: its base's kept lines with the inserted ones, in order
    (`counts` as for inserted_lines); None when the alignment does not count the base's lines.
    The store keeps a line-owned record's file this way: a run of kept lines is one slice of the base."""
    starts = _line_starts(base)
    if sum(n for op, n in counts if op in "KD") != len(starts) - 1:
        return None
    out: list[bytes] = []
    b = i = 0
    for op, n in counts:
        if op == "K":
            out.append(base[starts[b]:starts[b + n]])
        elif op == "I":
            out += inserted[i:i + n]
            i += n
        if op in "KD":
            b += n
    return b"".join(out)


# Where each line of a large base starts (and where the last ends), kept for the same object: a
# record is rebuilt at every read, and a commit reads every record. 8 bytes a line (an array, not
# a list of ints: those cost 36).
_line_starts = _ByIdentity(lambda data: array("Q", [0, *accumulate(map(len, split_lines(data)))]))


def _add_owners(items: list[Item], extra: frozenset[int]) -> list[Item]:
    if not extra:
        return items
    return [(op, owners if op == "K" else tuple(sorted(set(owners) | extra))) for op, owners in items]


# Exact diffs (rapidfuzz's bit-parallel LCS: n*m/64 steps, n*m/8 bytes, about 20 ms
# and 16 MB at the limit) are kept to regions of at most EXACT_CELLS = n*m cells,
# and one call's exact diffs together to TOTAL_CELLS. A bigger region is split at
# the lines unique to both sides (patience diff), or else cut into proportional
# pieces; what still does not fit (in cells, or in SCAN_LINES for the anchoring)
# is one replaced block, owned whole.
EXACT_CELLS = 1 << 27
TOTAL_CELLS = 1 << 29
SCAN_LINES = 400_000  # anchoring is Python: about 1 s per million lines


def diff_opcodes(a: list[bytes], b: list[bytes]) -> list[tuple[str, int, int, int, int]]:
    """Changed regions between two line lists (zero context), as difflib opcodes.

    Minimal (a longest common subsequence) on regions up to EXACT_CELLS;
    bounded time and memory on any input. Adjacent deletions and insertions
    form one 'replace', as in difflib, and 'equal' regions are left out.
    """
    start = 0
    limit = min(len(a), len(b))
    while start < limit and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    if start == end_a and start == end_b:
        return []
    mid_a, mid_b = a[start:end_a], b[start:end_b]
    common = set(mid_a).intersection(mid_b)
    if not common:
        # One contiguous block (most edits): no differ needed.
        return [(_tag(start, end_a, start, end_b), start, end_a, start, end_b)]
    # A line found on one side only is surely deleted or inserted: leaving such
    # lines out does not change the longest common subsequence (git's xdiff does
    # the same), and a rewrite's new lines are most of what differs.
    ids = dict(zip(common, range(len(common))))  # lines as ints: exact, no hash collisions
    keep_a = [i for i, line in enumerate(mid_a, start) if line in ids]
    keep_b = [j for j, line in enumerate(mid_b, start) if line in ids]
    xs = [ids[a[i]] for i in keep_a]
    ys = [ids[b[j]] for j in keep_b]
    ops = []
    i, j = start, start  # the first lines not yet accounted for
    for ri, rj, size in _matching_blocks(xs, ys):
        # Matched kept lines; a left-out line between two of them is a change.
        if keep_a[ri + size - 1] - keep_a[ri] == size - 1 and keep_b[rj + size - 1] - keep_b[rj] == size - 1:
            pairs = [(keep_a[ri], keep_b[rj])]  # contiguous in the file too
            last = (keep_a[ri + size - 1], keep_b[rj + size - 1])
        else:
            pairs = zip(keep_a[ri : ri + size], keep_b[rj : rj + size])
            last = None
        for ma, mb in pairs:
            if ma != i or mb != j:
                ops.append((_tag(i, ma, j, mb), i, ma, j, mb))
            i, j = ma + 1, mb + 1
        if last:
            i, j = last[0] + 1, last[1] + 1
    if i < end_a or j < end_b:
        ops.append((_tag(i, end_a, j, end_b), i, end_a, j, end_b))
    return ops


def diff_regions(a: bytes, b: bytes) -> list[tuple[str, int, int, int, int, int, int, list[bytes]]]:
    """diff_opcodes(split_lines(a), split_lines(b)), each opcode with the bytes of `a` it replaces
    and the lines of `b` it puts there: (tag, i1, i2, j1, j2, start, end, new lines).

    Two versions of a large file mostly share their ends: those are found by comparing bytes
    (C speed) and never split; only the lines between are split and diffed.
    """
    if a == b:
        return []
    start, end_a, end_b = _common_ends(a, b)
    first = a.count(b"\n", 0, start)  # the common leading lines
    mid_a, mid_b = split_lines(a[start:end_a]), split_lines(b[start:end_b])
    offsets = list(accumulate(map(len, mid_a), initial=start))  # where each middle line of a starts
    return [
        (tag, i1 + first, i2 + first, j1 + first, j2 + first, offsets[i1], offsets[i2], mid_b[j1:j2])
        for tag, i1, i2, j1, j2 in diff_opcodes(mid_a, mid_b)
    ]


def changed_lines(a: bytes, b: bytes) -> tuple[int, int, int]:
    """(first, end_a, end_b): lines first..end_a of `a` became lines first..end_b of `b`. The lines
    before `first` are the same in both, and so are a's lines from end_a and b's from end_b."""
    if a == b:
        n = line_count(a)
        return n, n, n
    start, end_a, end_b = _common_ends(a, b)
    first = a.count(b"\n", 0, start)
    return first, first + _lines_between(a, start, end_a), first + _lines_between(b, start, end_b)


# Bytes compared at a time when looking for the common ends: CHUNK first, twice as many each
# time they match, up to CHUNK_MAX (a 600 KB file in ~15 compares; a change near an end is found early).
CHUNK = 4096
CHUNK_MAX = 1 << 16


def _common_ends(a: bytes, b: bytes) -> tuple[int, int, int]:
    """Byte offsets (start, end_a, end_b) of the lines between the common leading and the
    common trailing lines of a and b (lines end at LF only, as in split_lines)."""
    start = a.rfind(b"\n", 0, _common_prefix(a, b)) + 1  # back to the end of the last whole common line
    size = _common_suffix(a, b, min(len(a), len(b)) - start)  # not into the leading lines
    end_a, end_b = len(a) - size, len(b) - size
    if not (_starts_line(a, end_a, start) and _starts_line(b, end_b, start)):
        # The common bytes begin inside a line: the trailing lines start after its LF, which
        # lies within the common bytes (or there is none: no common trailing line).
        newline = a.find(b"\n", end_a)
        cut = len(a) if newline < 0 else newline + 1
        end_a, end_b = cut, end_b + cut - end_a
    return start, end_a, end_b


def _starts_line(data: bytes, pos: int, start: int) -> bool:
    return pos == start or data[pos - 1] == 10  # (10 is LF)


def _common_prefix(a: bytes, b: bytes) -> int:
    """The length of the longest common prefix of a and b: growing chunks compared (see CHUNK),
    then the differing chunk halved."""
    limit = min(len(a), len(b))
    lo, step = 0, CHUNK
    while lo < limit:
        hi = min(lo + step, limit)
        if a[lo:hi] != b[lo:hi]:
            break
        lo, step = hi, min(2 * step, CHUNK_MAX)
    else:
        return limit
    while hi - lo > 1:  # a[:lo] == b[:lo], a[:hi] != b[:hi]
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """The length of the longest common suffix of a and b, at most `limit` (as _common_prefix)."""
    la, lb = len(a), len(b)
    lo, step = 0, CHUNK
    while lo < limit:
        hi = min(lo + step, limit)
        if a[la - hi:la - lo] != b[lb - hi:lb - lo]:
            break
        lo, step = hi, min(2 * step, CHUNK_MAX)
    else:
        return limit
    while hi - lo > 1:  # the last lo bytes are equal, the last hi are not
        mid = (lo + hi) // 2
        if a[la - mid:la - lo] == b[lb - mid:lb - lo]:
            lo = mid
        else:
            hi = mid
    return lo


def _tag(i1: int, i2: int, j1: int, j2: int) -> str:
    return "replace" if i1 < i2 and j1 < j2 else "delete" if i1 < i2 else "insert"


def _matching_blocks(xs: list[int], ys: list[int]) -> list[tuple[int, int, int]]:
    """Matching (i, j, size) blocks of xs and ys, in order, in bounded time and memory."""
    blocks = []
    budget = TOTAL_CELLS
    scans = min(2 * (len(xs) + len(ys)), SCAN_LINES)  # lines the anchoring may read, all passes together
    todo = [(0, len(xs), 0, len(ys))]
    while todo:
        alo, ahi, blo, bhi = todo.pop()
        lo = 0  # trim the region's own common prefix and suffix
        while alo + lo < ahi and blo + lo < bhi and xs[alo + lo] == ys[blo + lo]:
            lo += 1
        if lo:
            blocks.append((alo, blo, lo))
            alo, blo = alo + lo, blo + lo
        hi = 0
        while ahi - hi > alo and bhi - hi > blo and xs[ahi - hi - 1] == ys[bhi - hi - 1]:
            hi += 1
        if hi:
            ahi, bhi = ahi - hi, bhi - hi
            blocks.append((ahi, bhi, hi))
        cells = (ahi - alo) * (bhi - blo)
        if not cells:
            continue
        if cells <= EXACT_CELLS and cells <= budget:
            budget -= cells
            from rapidfuzz.distance import Indel  # C, bit-parallel; loaded only for scattered edits

            for op in Indel.opcodes(xs[alo:ahi], ys[blo:bhi]):
                if op.tag == "equal":
                    blocks.append((alo + op.src_start, blo + op.dest_start, op.src_end - op.src_start))
            continue
        # Too big to diff exactly: anchor on lines that occur once on each side,
        # the longest run of them in the same order, and diff the gaps between.
        scans -= ahi - alo + bhi - blo
        anchors = _unique_anchors(xs, ys, alo, ahi, blo, bhi) if scans >= 0 else []
        if not anchors:
            # Few distinct lines: cut both sides at the same proportions into k
            # pieces that fit and diff those (right for edits that keep lines
            # near their place). Failing that, the region is one replaced block.
            n, m = ahi - alo, bhi - blo
            k = max(_ceil_div(cells, budget) if budget else n, _ceil_sqrt(_ceil_div(cells, EXACT_CELLS)))
            if k * 16 <= min(n, m):
                todo.extend((alo + n * t // k, alo + n * (t + 1) // k, blo + m * t // k, blo + m * (t + 1) // k) for t in range(k))
            continue
        prev_a, prev_b = alo, blo  # just after the last anchor
        first = anchors[0]  # the current run of adjacent anchors starts here
        for i, j in anchors + [(ahi, bhi)]:
            if prev_a < i or prev_b < j:
                if prev_a > first[0]:
                    blocks.append((first[0], first[1], prev_a - first[0]))
                todo.append((prev_a, i, prev_b, j))
                first = (i, j)
            prev_a, prev_b = i + 1, j + 1
        if ahi > first[0]:
            blocks.append((first[0], first[1], ahi - first[0]))
    blocks.sort()
    return blocks


def _ceil_div(x: int, y: int) -> int:
    return -(-x // y)


def _ceil_sqrt(x: int) -> int:
    r = int(x**0.5)
    while r * r < x:
        r += 1
    return r


def _unique_anchors(xs: list[int], ys: list[int], alo: int, ahi: int, blo: int, bhi: int) -> list[tuple[int, int]]:
    """Pairs (i, j) of lines unique in both regions, the longest increasing run of them."""
    import bisect
    from collections import Counter  # loaded already (namedtuple)

    in_b = Counter(ys[blo:bhi])
    once = {x for x, n in Counter(xs[alo:ahi]).items() if n == 1 and in_b.get(x) == 1}
    where = {y: j for j, y in enumerate(ys[blo:bhi], blo) if y in once}
    pairs = [(i, where[x]) for i, x in enumerate(xs[alo:ahi], alo) if x in once]
    js = [j for _i, j in pairs]
    if js == sorted(js):
        return pairs  # nothing moved: all of them
    # Patience sorting: tails[k] is the pair index ending the best run of length k + 1.
    tails: list[int] = []
    tail_js: list[int] = []
    back = [-1] * len(pairs)
    for n, (_i, j) in enumerate(pairs):
        k = bisect.bisect_left(tail_js, j)
        back[n] = tails[k - 1] if k else -1
        if k == len(tails):
            tails.append(n)
            tail_js.append(j)
        else:
            tails[k] = n
            tail_js[k] = j
    run = []
    n = tails[-1] if tails else -1
    while n >= 0:
        run.append(pairs[n])
        n = back[n]
    return run[::-1]


def apply_edit(
    items: list[Item], known: list[bytes], new: list[bytes], actor: int, co_owners: tuple[int, ...] = ()
) -> list[Item]:
    """Update an alignment for the change known -> new made by `actor`.

    Base lines the actor removes become D items of the actor; inserted lines
    of others that it removes or rewrites make the result contested.
    """
    return _apply_opcodes(items, diff_opcodes(known, new), actor, co_owners)


def _apply_opcodes(items: list[Item], opcodes: list, actor: int, co_owners: tuple[int, ...]) -> list[Item]:
    """apply_edit, given the diff's opcodes."""
    ends = {line for _tag, i1, i2, _j1, _j2 in opcodes for line in ((i1, i2 - 1) if i2 > i1 else (i1 - 1,))}
    current = _item_indexes(items, sorted(line for line in ends if line >= 0))
    out: list[Item] = []
    done = 0
    for _tag, i1, i2, j1, j2 in opcodes:
        if i2 > i1:
            start, end = current[i1], current[i2 - 1] + 1
        else:
            # A pure insertion goes right after the line it follows, before any
            # deletions there: the actor cannot see deleted lines, and "after
            # line 3" is what its edit means.
            start = end = current[i1 - 1] + 1 if i1 else 0
        out.extend(items[done:start])
        out.extend(_replace_region(items[start:end], j2 - j1, actor, co_owners))
        done = end
    out.extend(items[done:])
    return out


def _item_indexes(items: list[Item], lines: list[int]) -> dict[int, int]:
    """Where each of the current `lines` (ascending) is in `items`: its K or I item's index."""
    out: dict[int, int] = {}
    wanted = iter(lines)
    line = next(wanted, None)
    index = seen = 0  # items and current lines before this run
    for (op, _), n in runs(items):
        if op in "KI":
            while line is not None and line < seen + n:
                out[line] = index + line - seen
                line = next(wanted, None)
            seen += n
        index += n
    return out


def _replace_region(region: list[Item], inserted: int, actor: int, co_owners: tuple[int, ...]) -> list[Item]:
    """The items for `inserted` new lines of `actor` replacing the current lines of `region`.

    New lines are paired one by one with the lines they replace, so that a
    later reassignment of a line range takes the deletion that goes with it.
    """
    rivals: set[int] = set()
    rival_lines = 0
    for op, owners in region:
        others = set(owners) - {actor, UNATTRIBUTED}
        if op == "I" and others:
            rivals |= others
            rival_lines += 1
    owners = tuple(sorted(rivals | {actor} | set(co_owners)))
    deleter = tuple(sorted({actor} | set(co_owners)))
    out: list[Item] = []
    left = inserted
    for op, item_owners in region:
        if op in "DX":  # deletions between the replaced lines stay
            out.append((op, item_owners))
            continue
        if op == "K":
            out.append(("D", deleter))
        if left:
            out.append(("I", owners))
            left -= 1
    out.extend([("I", owners)] * left)
    out.extend([("X", owners)] * max(0, rival_lines - inserted))
    return out


def canonicalize(items: list[Item], base: list[bytes], current: list[bytes]) -> list[Item]:
    """Turn a deletion and re-insertion of the same line by the same owners back into K.

    Within each run of changed items, matching D/I pairs are folded from the
    front and from the back, so an edit that was undone leaves no trace.
    """
    # Run by run: long runs of kept lines are copied whole; texts are needed only for changed items.
    texts: dict[int, bytes | None] = {}
    out: list[Item] = []
    group: list[int] = []
    index = b = c = 0
    for (op, _), n in runs(items):
        if op == "K":
            out.extend(_fold_group(group, items, texts))
            group = []
            out.extend(items[index:index + n])
            b, c = b + n, c + n
        else:
            for k in range(n):
                group.append(index + k)
                texts[index + k] = base[b + k] if op == "D" else current[c + k] if op == "I" else None
            b += n if op == "D" else 0
            c += n if op == "I" else 0
        index += n
    out.extend(_fold_group(group, items, texts))
    return out


def _item_texts(items: list[Item], base: list[bytes], current: list[bytes]) -> list[bytes | None]:
    texts: list[bytes | None] = []
    b = c = 0
    for op, _ in items:
        if op == "K":
            texts.append(base[b])
            b += 1
            c += 1
        elif op == "D":
            texts.append(base[b])
            b += 1
        elif op == "I":
            texts.append(current[c])
            c += 1
        else:
            texts.append(None)
    return texts


def _fold_group(group: list[int], items: list[Item], texts) -> list[Item]:
    if not group:
        return []
    deletes = [i for i in group if items[i][0] == "D"]
    inserts = [i for i in group if items[i][0] == "I"]

    def same(d: int, i: int) -> bool:
        return texts[d] == texts[i] and items[d][1] == items[i][1]

    head = 0
    while head < min(len(deletes), len(inserts)) and same(deletes[head], inserts[head]):
        head += 1
    tail = 0
    while (
        tail < min(len(deletes), len(inserts)) - head
        and same(deletes[-1 - tail], inserts[-1 - tail])
    ):
        tail += 1
    folded = set(deletes[:head] + inserts[:head])
    folded |= set(deletes[len(deletes) - tail:] + inserts[len(inserts) - tail:])
    middle = [items[i] for i in group if i not in folded]
    return [("K", ())] * head + middle + [("K", ())] * tail


def reassign(rec: FileOwnership, branch: int, lines: tuple[int, int] | None = None) -> FileOwnership:
    """Give changes to `branch`: the whole record, or current lines start..end (1-based).

    A line range also takes the deletions directly before and among its lines.
    """
    if rec.is_whole:
        owners = (branch,) if rec.changed else ()
        return FileOwnership(rec.path, rec.base, rec.known, None, owners, rec.stat)
    selected = _select_items(rec.items, lines)
    items = [
        (op, (branch,)) if index in selected and op != "K" else (op, owners)
        for index, (op, owners) in enumerate(rec.items)
    ]
    items = [item for index, item in enumerate(items) if not (item[0] == "X" and index in selected)]
    base, current = split_lines(rec.base.data), split_lines(rec.known.data)
    return FileOwnership(rec.path, rec.base, rec.known, canonicalize(items, base, current), (), rec.stat)


def adopt(rec: FileOwnership, branch: int) -> FileOwnership:
    """Give `branch` the record's changes that nobody owns; the same record if there are none."""
    alone = (UNATTRIBUTED,)
    if rec.is_whole:
        if rec.changed and rec.owners == alone:
            return FileOwnership(rec.path, rec.base, rec.known, None, (branch,), rec.stat)
        return rec
    if not any(op != "K" and owners == alone for op, owners in rec.items):
        return rec
    items = [(op, (branch,) if op != "K" and owners == alone else owners) for op, owners in rec.items]
    base, current = split_lines(rec.base.data), split_lines(rec.known.data)
    return FileOwnership(rec.path, rec.base, rec.known, canonicalize(items, base, current), (), rec.stat)


def _select_items(items: list[Item], lines: tuple[int, int] | None) -> set[int]:
    if lines is None:
        return set(range(len(items)))
    start, end = lines
    selected: set[int] = set()
    pending: list[int] = []  # D/X items waiting for the next current line
    line = 0
    for index, (op, _) in enumerate(items):
        if op in "DX":
            pending.append(index)
            continue
        line += 1
        if start <= line <= end:
            selected.update(pending)
            selected.add(index)
        pending = []
    if pending and end >= line:
        selected.update(pending)  # deletions after the last line
    return selected


# A contiguous run of changed items with the same owners, for display: the current lines
# it inserted and base lines it deleted (1-based, inclusive, or None) and tombstoned lines.
OwnedSpan = namedtuple("OwnedSpan", "owners inserted deleted removed", defaults=(0,))


def spans(items: list[Item]) -> list[OwnedSpan]:
    """Group an alignment into spans of equal owners between kept lines."""
    out: list[OwnedSpan] = []
    base_line = cur_line = 0
    current: dict | None = None

    def flush() -> None:
        nonlocal current
        if current:
            out.append(OwnedSpan(current["owners"], current["ins"], current["del"], current["x"]))
        current = None

    for (op, owners), n in runs(items):  # (most lines are kept: runs, not lines)
        if op == "K":
            base_line += n
            cur_line += n
            flush()
            continue
        if current is None or current["owners"] != owners:
            flush()
            current = {"owners": owners, "ins": None, "del": None, "x": 0}
        if op == "D":
            current["del"] = _extend(current["del"], base_line + 1, base_line + n)
            base_line += n
        elif op == "I":
            current["ins"] = _extend(current["ins"], cur_line + 1, cur_line + n)
            cur_line += n
        else:
            current["x"] += n
    flush()
    return out


def _extend(span: tuple[int, int] | None, first: int, last: int) -> tuple[int, int]:
    return (first, last) if span is None else (span[0], last)


# A contested change: the branches claiming current lines (1-based; None for a whole
# file or removed lines) of a path.
Conflict = namedtuple("Conflict", "path owners lines")


def conflicts(records: list[FileOwnership]) -> list[Conflict]:
    """Every contested change, one entry per contiguous run of lines."""
    out = []
    for rec in records:
        if rec.is_whole:
            if rec.changed and len(rec.owners) > 1:
                out.append(Conflict(rec.path, rec.owners, None))
            continue
        for span in spans(rec.items):
            if len(span.owners) > 1:
                out.append(Conflict(rec.path, span.owners, span.inserted))
    return out


# Moving the base: landing a branch, or the target moving upstream. Both are pure:
# the working files do not change, only the base they are measured against.


class RebaseConflict(ValueError):
    """A record cannot be re-measured against a new base: `conflicts` says where."""

    def __init__(self, conflicts: list[Conflict]):
        super().__init__(", ".join(c.path for c in conflicts))
        self.conflicts = conflicts


def branch_state(rec: FileOwnership, branch: int) -> FileState:
    """The file as branch `branch` alone would have it: base plus only its own changes."""
    if rec.is_whole:
        return rec.known if rec.owners == (branch,) else rec.base
    base = lines_of(rec.base.data)  # (a commit builds every branch's version of the same record)
    current = lines_of(rec.known.data)
    out: list[bytes] = []
    b = c = 0
    for (op, owners), run in groupby(rec.items):  # runs of equal items: long runs of kept lines, copied whole
        n = len(list(run))
        if op == "K":
            out.extend(base[b:b + n])
            b, c = b + n, c + n
        elif op == "D":
            if owners != (branch,):
                out.extend(base[b:b + n])
            b += n
        elif op == "I":
            if owners == (branch,):
                out.extend(current[c:c + n])
            c += n
    return FileState(True, rec.base.mode, b"".join(out))


def rebase_record(rec: FileOwnership, landed: int) -> FileOwnership:
    """The record against the new base once branch `landed` is on the target.

    The landed branch's inserted lines become kept base lines, its deleted
    lines leave the base, its whole-file change becomes the base; every other
    item stays as it is, so each other branch keeps exactly its own changes and
    the working file is unchanged. A change `landed` shares with another
    branch (contested) cannot land: RebaseConflict.
    """
    contested = [c for c in conflicts([rec]) if landed in c.owners]
    if contested:
        raise RebaseConflict(contested)
    if rec.is_whole:
        if rec.changed and rec.owners == (landed,):
            items = [("K", ())] * len(split_lines(rec.known.data)) if rec.known.is_text else None
            return FileOwnership(rec.path, rec.known, rec.known, items, (), rec.stat)
        return rec
    runs = [(item, len(list(run))) for item, run in groupby(rec.items)]  # (most items are long runs of K)
    if not any(op in "DI" and owners == (landed,) for (op, owners), _n in runs):
        return rec
    items: list[Item] = []
    for (op, owners), n in runs:
        if owners == (landed,) and op == "D":
            continue
        items.extend([("K", ()) if owners == (landed,) and op == "I" else (op, owners)] * n)
    return FileOwnership(rec.path, branch_state(rec, landed), rec.known, items, (), rec.stat)


def rebase_onto(rec: FileOwnership, new_base: FileState) -> FileOwnership:
    """The record against `new_base` (the target moved): upstream's change merged into the file.

    Upstream's change (rec.base -> new_base) and the record's own runs of
    changed items (one run per owner set) are merged by base position, as merge.merge_versions does:
    adjacent changes are fine, the same change made on both sides counts once
    (a branch already integrated upstream), overlapping different changes raise
    RebaseConflict naming the local lines and their owners. The result's
    `known` is the new working content: upstream's lines plus every local
    change, each item keeping its owners.
    """
    if new_base == rec.base:
        return rec
    if not rec.changed or rec.known == new_base:
        return new_record(rec.path, new_base)  # nothing local, or the same change made upstream
    if rec.is_whole or not (lines_eligible(rec.base, new_base) and lines_eligible(new_base, rec.known)):
        raise RebaseConflict([Conflict(rec.path, tuple(sorted(rec.changers)), None)])
    base, current = split_lines(rec.base.data), split_lines(rec.known.data)
    new_lines = split_lines(new_base.data)
    texts = _item_texts(rec.items, base, current)
    # Hunks over base positions: (start, end, replaces, side, items, lines, where);
    # side 0 is upstream (first at a shared position), 1 a local run of changed items.
    hunks = [
        (i1, i2, i2 > i1, 0, [("K", ())] * (j2 - j1), new_lines[j1:j2], None)
        for _tag, i1, i2, j1, j2 in diff_opcodes(base, new_lines)
    ]
    # A local hunk is a run of changed items with the same owners: split that fine, a
    # branch's own change lines up with the same change made upstream.
    b = c = 0
    run: list[int] = []
    for index, (op, owners) in enumerate(rec.items + [("K", ())]):
        if run and (op == "K" or owners != rec.items[run[-1]][1]):
            run_items = [rec.items[i] for i in run]
            lines = [texts[i] for i in run if rec.items[i][0] == "I"]
            start = b - sum(1 for o, _ in run_items if o == "D")
            where = Conflict(rec.path, run_items[0][1], (c - len(lines) + 1, c) if lines else None)
            hunks.append((start, b, b > start, 1, run_items, lines, where))
            run = []
        if op == "K":
            b, c = b + 1, c + 1
        else:
            run.append(index)
            b += op == "D"
            c += op == "I"
    hunks.sort(key=lambda h: h[:4])
    hunks = _drop_tiled(hunks)
    items: list[Item] = []
    out: list[bytes] = []
    pos = 0
    last = None
    clashes: list[Conflict] = []
    for hunk in hunks:
        start, end, _replaces, side, hunk_items, lines, where = hunk
        if last is not None and last[3] != side and last[:2] == (start, end) and last[5] == lines and all(
            op in "DI" for op, _ in (hunk_items if side else last[4])
        ):
            continue  # the same change made upstream: it is in the new base now
        if start < pos:
            clashes.append(where or last[6])
            continue
        items.extend([("K", ())] * (start - pos))
        out.extend(base[pos:start])
        items.extend(hunk_items)
        out.extend(lines)
        pos = end
        last = hunk
    if clashes:
        raise RebaseConflict(list(dict.fromkeys(clashes)))
    items.extend([("K", ())] * (len(base) - pos))
    out.extend(base[pos:])
    known = FileState(True, new_base.mode, b"".join(out))
    return FileOwnership(rec.path, new_base, known, canonicalize(items, new_lines, out), ())


def _drop_tiled(hunks: list) -> list:
    """Drop local hunks that together make exactly one upstream hunk (several branches' adjacent
    changes squashed into one upstream commit): that change is in the new base already."""
    drop: set[int] = set()
    for u in (h for h in hunks if h[3] == 0):
        pos, lines, chosen = u[0], [], []
        for index, h in enumerate(hunks):
            if h[3] != 1 or index in drop or h[0] < u[0] or h[1] > u[1] or h[0] != pos:
                continue
            if not all(op in "DI" for op, _ in h[4]):
                break
            chosen.append(index)
            lines += h[5]
            pos = h[1]
            if pos == u[1] and lines == u[5]:
                if len(chosen) > 1:  # one alone is the plain same-change case
                    drop.update(chosen)
                break
    return [h for index, h in enumerate(hunks) if index not in drop]


def without_branch(rec: FileOwnership, branch: int) -> FileOwnership:
    """The record with `branch`'s changes taken out of the file (unapplying it).

    Its inserted lines leave the file, its deleted base lines come back; a
    whole-file change of its own returns to the base. A change it shares with
    another branch cannot be taken out alone: RebaseConflict.
    """
    contested = [c for c in conflicts([rec]) if branch in c.owners]
    if contested:
        raise RebaseConflict(contested)
    if rec.is_whole:
        if rec.changed and rec.owners == (branch,):
            return new_record(rec.path, rec.base)
        return rec
    base, current = split_lines(rec.base.data), split_lines(rec.known.data)
    texts = _item_texts(rec.items, base, current)
    items: list[Item] = []
    lines: list[bytes] = []
    for (op, owners), text in zip(rec.items, texts):
        mine = owners == (branch,)
        if op == "I" and mine:
            continue
        if op == "D" and mine:
            items.append(("K", ()))
            lines.append(text)
            continue
        items.append((op, owners))
        if op in "KI":
            lines.append(text)
    known = FileState(True, rec.known.mode, b"".join(lines))
    return FileOwnership(rec.path, rec.base, known, canonicalize(items, base, lines), ())


def settle(rec: FileOwnership, branch: int, lines: tuple[int, int] | None, claim: bool) -> FileOwnership:
    """A session settles what is ambiguous about its part in the record (current lines start..end, or all).

    `claim`: contested changes it shares, and unattributed ones, become `branch`'s alone.
    Otherwise it disowns: `branch` leaves the owners of the changes it shares (the other
    owners keep them; a change it owned alone becomes unattributed). Changes of other
    branches that `branch` has no part in are never touched.
    """

    def settled(owners: tuple[int, ...]) -> tuple[int, ...]:
        if claim:
            return (branch,) if branch in owners or owners == (UNATTRIBUTED,) else owners
        if branch not in owners:
            return owners
        return tuple(o for o in owners if o != branch) or (UNATTRIBUTED,)

    if rec.is_whole:
        return FileOwnership(rec.path, rec.base, rec.known, None, settled(rec.owners) if rec.changed else (), rec.stat)
    selected = _select_items(rec.items, lines)
    items = []
    for index, (op, owners) in enumerate(rec.items):
        if index not in selected or op == "K" or (op == "X" and not claim):
            items.append((op, owners))
        elif op != "X" or branch not in owners:  # a claimed tombstone goes, as with reassign
            items.append((op, settled(owners)) if op != "X" else (op, owners))
    base, current = split_lines(rec.base.data), split_lines(rec.known.data)
    return FileOwnership(rec.path, rec.base, rec.known, canonicalize(items, base, current), (), rec.stat)
