"""What each session does, and what its branch and the landed target must then hold.

A plan is plain JSON (the session processes read it). Per session: new files
(Write), one-line edits of files only it touches (Edit), a one-line edit in
each shared file — on its own line, spread out in most shared files and on
adjacent lines in one (git's merge treats touching hunks as a conflict) — and
a shell command that writes a file (Bash). Every edit appends a comment to a
line whose text is unique in its file, so an Edit's old_string is unambiguous.
"""
from __future__ import annotations

import random
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from .measure import out

SPREAD_GAP = 4  # lines between two sessions' edits in a "spread" shared file: git merges these cleanly
MIN_LINE = 12   # shortest line text worth editing (short ones are rarely unique)

# The shell command's program: writes the session's generated file (path and session in argv).
GENERATOR = ("import sys; p, s = sys.argv[1], sys.argv[2]; "
             "open(p, 'w').write(''.join(f'{s.upper()}_VALUE_{k} = {k * k}\\n' for k in range(40)))")


@dataclass
class Params:
    new_files: int = 3
    own_edits: int = 4
    spread_shared: int = 2   # shared files where sessions' lines are SPREAD_GAP apart
    adjacent_shared: int = 1  # shared files where sessions' lines are adjacent
    bash: bool = True


def generated(session: str) -> str:
    return "".join(f"{session.upper()}_VALUE_{k} = {k * k}\n" for k in range(40))


def new_file(session: str, k: int) -> str:
    body = [f'"""Feature {k} of session {session}: written by the benchmark."""', ""]
    for j in range(20):
        body += [f"def {session}_feature_{k}_step_{j}(value):", f"    return value * {j + 1} + {k}", ""]
    return "\n".join(body) + "\n"


class _Lines:
    """A file's lines, and whether an Edit can target one by its own text alone (checked lazily)."""

    def __init__(self, text: str):
        self.text, self.lines, self._ok = text, text.split("\n"), {}

    def ok(self, i: int) -> bool:
        if i not in self._ok:
            line = self.lines[i]
            self._ok[i] = len(line.strip()) >= MIN_LINE and self.text.count(line) == 1
        return self._ok[i]

    def near_middle(self) -> int | None:
        middle = len(self.lines) // 2
        for d in range(len(self.lines)):
            for i in (middle - d, middle + d):
                if 0 <= i < len(self.lines) and self.ok(i):
                    return i
        return None


def _texts(repo: Path) -> dict[str, str]:
    """Tracked UTF-8 files of the corpus library with Unix line ends, by path."""
    texts = {}
    for path in out(repo, "ls-files", "lib").split("\n"):
        if path.endswith(".py"):
            try:
                text = (repo / path).read_bytes().decode()
            except UnicodeDecodeError:
                continue
            if "\r" not in text:
                texts[path] = text
    return texts


def _find_run(texts: dict[str, str], count: int, gap: int, exclude: set[str]) -> tuple[str, list[int]]:
    """A file with `count` editable lines `gap` apart (largest files first); their indexes."""
    for path in sorted(texts, key=lambda p: (-len(texts[p]), p)):
        if path in exclude:
            continue
        f, span = _Lines(texts[path]), (count - 1) * gap
        for start in range(len(f.lines) // 3, len(f.lines) - span):  # past the header and imports
            if all(f.ok(start + i * gap) for i in range(count)):
                return path, [start + i * gap for i in range(count)]
    raise RuntimeError(f"no corpus file has {count} editable lines {gap} apart")


def _edit(path: str, text: str, index: int, session: str) -> dict:
    line = text.split("\n")[index]
    return {"kind": "edit", "path": path, "old": line, "new": f"{line}  # edited by {session}"}


def build(repo: Path, n: int, params: Params, seed: int = 0, overlap: bool = False) -> dict:
    """The plan for n sessions on the corpus at `repo` (its working tree is the base)."""
    texts = _texts(repo)
    shared = []
    for kind, count in (("spread", params.spread_shared), ("adjacent", params.adjacent_shared)):
        for _ in range(count):
            path, lines = _find_run(texts, n, SPREAD_GAP if kind == "spread" else 1, {p for p, _, _ in shared})
            shared.append((path, lines, kind))
    taken = {p for p, _, _ in shared}
    pool = sorted(p for p in texts if p not in taken)
    random.Random(seed).shuffle(pool)
    own = [(p, i) for p, i in ((p, _Lines(texts[p]).near_middle()) for p in pool[:3 * n * params.own_edits + 10])
           if i is not None][:n * params.own_edits]
    sessions = []
    for i in range(n):
        sid = f"s{i}"
        writes = [{"kind": "write", "path": f"bench/{sid}/feature_{k}.py", "content": new_file(sid, k)}
                  for k in range(params.new_files)]
        edits = []
        for path, index in own[i * params.own_edits:(i + 1) * params.own_edits]:
            edits.append(_edit(path, texts[path], index, sid))
        for j, (path, lines, _) in enumerate(shared):
            # The overlap variant: session 1 edits session 0's line of the first shared file.
            index = lines[0] if overlap and i == 1 and j == 0 else lines[i]
            edits.append(_edit(path, texts[path], index, sid))
        ops = _interleave(writes, edits)
        if params.bash:
            target = f"bench/{sid}/generated.py"
            command = f"mkdir -p bench/{sid} && {shlex.quote(sys.executable)} -c {shlex.quote(GENERATOR)} {target} {sid}"
            ops.insert(len(ops) // 2, {"kind": "bash", "command": command, "path": target, "content": generated(sid)})
        sessions.append({"index": i, "id": sid, "ops": ops})
    return {"n": n, "overlap": overlap, "sessions": sessions,
            "shared": [{"path": p, "lines": [x + 1 for x in lines], "kind": k} for p, lines, k in shared]}


def paced(plan: dict, think: tuple[float, float]) -> dict:
    """The same plan, each session waiting `think` (low, high) seconds, at random, before each tool call."""
    return {**plan, "think": list(think), "sessions": [{**s, "think": list(think)} for s in plan["sessions"]]}


def _interleave(a: list, b: list) -> list:
    out_ = []
    for k in range(max(len(a), len(b))):
        out_ += a[k:k + 1] + b[k:k + 1]
    return out_


def apply(text: str | None, op: dict) -> str:
    """One op's effect on a file's text (what the tool or command writes)."""
    if op["kind"] in ("write", "bash"):
        return op["content"]
    return text.replace(op["old"], op["new"], 1)


def expected(repo: Path, sessions: list[dict], skip: set[tuple[int, int]] = frozenset()) -> dict[str, str]:
    """Changed path -> content after the ops of `sessions` (minus (session, op) pairs in `skip`)."""
    files: dict[str, str] = {}
    for s in sessions:
        for k, op in enumerate(s["ops"]):
            if (s["index"], k) in skip:
                continue
            path = op["path"]
            if path not in files:
                base = repo / path
                files[path] = base.read_text() if op["kind"] == "edit" else None
            files[path] = apply(files[path], op)
    return files
