"""git's pack delta format: a large blob stored as copies from a similar blob plus the bytes that differ.

vbranch writes many near-identical large blobs at once: a landing rebases every other branch
onto the new target, so each branch's copy of a shared file is written again (the target's
version plus that branch's lines). Stored whole, each is compressed again (~5 ms for 600 KB);
as a delta against the first of them, it is a few hundred bytes.

The encoder is greedy and runs at C speed (chunked compares and bytes.find), not a minimal
diff: every copy it emits covers bytes found equal, so a poor match costs size, never
correctness. Pure: bytes in, bytes out.
"""
from __future__ import annotations

MIN_COPY = 32  # a shorter match is not worth a copy (and may be chance): kept as literal bytes
PROBE = 32  # the bytes of a line start looked up in the base to find where the two agree again
TRIES = 64  # line starts tried per difference before the rest of the data is taken as literal
CHUNK = 4096  # bytes compared at a time when extending a match (doubling up to CHUNK_MAX)
CHUNK_MAX = 1 << 16
COPY_MAX = 0xFFFFFF  # the largest size one copy instruction holds (three size bytes)


def encode(base: bytes, data: bytes, limit: int) -> bytes | None:
    """The delta turning `base` into `data`; None when more than `limit` bytes of data are not found in base."""
    out = bytearray(varint(len(base)) + varint(len(data)))
    i = j = 0  # the next byte of data to encode; where in base it is expected to continue
    pending = 0  # data[pending:i] is not yet encoded: it goes in as literal bytes
    literal = 0
    while i < len(data):
        size = _match(base, j, data, i)
        if size >= MIN_COPY:
            _insert(out, data[pending:i])
            _copy(out, j, size)
            literal += i - pending
            i = pending = i + size
            j += size
            continue
        found = _agree_again(base, j, data, i)
        if found is None:
            break
        if literal + found[0] - pending > limit:
            return None
        i, j = found
    _insert(out, data[pending:])
    literal += len(data) - pending
    return None if literal > limit else bytes(out)


def alike(base: bytes, data: bytes, probes: int = 4) -> bool:
    """Whether `data` looks like a version of `base`: lines taken across it are all found there.
    A cheap test before `encode` (a different file fails at its first probe)."""
    step = len(data) // (probes + 1)
    for n in range(1, probes + 1):
        start = data.find(b"\n", n * step) + 1
        probe = data[start:start + PROBE] if start else b""
        if len(probe) < PROBE or base.find(probe) < 0:
            return False
    return True


def varint(n: int) -> bytes:
    """A size in a delta's header: 7 bits a byte, least significant first."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _agree_again(base: bytes, j: int, data: bytes, i: int) -> tuple[int, int] | None:
    """The first line start k >= i of data (i itself first) whose next PROBE bytes are found in base,
    looking after j first (lines changed or removed), then anywhere (lines moved back): (k, where)."""
    k = i
    for _ in range(TRIES):
        probe = data[k:k + PROBE]
        if len(probe) < PROBE:
            return None
        where = base.find(probe, j)
        if where < 0:
            where = base.find(probe, 0, j + PROBE)
        if where >= 0:
            return k, where
        k = data.find(b"\n", k) + 1
        if k == 0:
            return None
    return None


def _match(base: bytes, j: int, data: bytes, i: int) -> int:
    """The length of the common prefix of base[j:] and data[i:]: growing chunks compared, then the
    differing chunk halved."""
    limit = min(len(base) - j, len(data) - i)
    lo, step = 0, CHUNK
    while lo < limit:
        hi = min(lo + step, limit)
        if base[j + lo:j + hi] != data[i + lo:i + hi]:
            break
        lo, step = hi, min(2 * step, CHUNK_MAX)
    else:
        return max(limit, 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if base[j + lo:j + mid] == data[i + lo:i + mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _copy(out: bytearray, offset: int, size: int) -> None:
    """Copy instructions: 0x80 | which offset and size bytes follow, then those bytes (zero bytes left out)."""
    while size:
        n = min(size, COPY_MAX)
        cmd, args = 0x80, bytearray()
        for k in range(4):
            if byte := (offset >> (8 * k)) & 0xFF:
                cmd |= 1 << k
                args.append(byte)
        for k in range(3):
            if byte := (n >> (8 * k)) & 0xFF:
                cmd |= 0x10 << k
                args.append(byte)
        out.append(cmd)
        out += args
        offset += n
        size -= n


def _insert(out: bytearray, literal: bytes) -> None:
    """Insert instructions: a length byte (1-127), then that many bytes of data."""
    for at in range(0, len(literal), 127):
        chunk = literal[at:at + 127]
        out.append(len(chunk))
        out += chunk
