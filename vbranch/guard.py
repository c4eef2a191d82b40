"""What the guard refuses: writes over others' lines, and git commands that discard shared work.

Pure: the hook passes in records, branches and the command text.
"""
from __future__ import annotations

import re
import shlex
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

from .ownership import FileOwnership, FileState, diff_opcodes, split_lines


# Lines of other branches a proposed write would change (1-based; None: the whole file).
Touched = namedtuple("Touched", "owners lines")


def touched_lines(rec: FileOwnership, proposed: FileState | None, mine: int | None, protected: set[int]) -> list[Touched]:
    """The changes of `protected` branches (not `mine`) that writing `proposed` would alter.

    `proposed` None means the new content cannot be known: every such change
    in the file counts as touched.
    """
    if proposed is not None and proposed == rec.known:
        return []

    def foreign(owners: tuple[int, ...]) -> bool:
        return mine not in owners and bool(set(owners) & protected)

    if rec.is_whole:
        return [Touched(rec.owners, None)] if rec.changed and foreign(rec.owners) else []
    owners_by_line = [owners for op, owners in rec.items if op in "KI"]
    if proposed is None or not proposed.is_text or proposed.mode != rec.known.mode:
        changed = list(range(len(owners_by_line)))  # the whole file is rewritten
    else:
        opcodes = diff_opcodes(split_lines(rec.known.data), split_lines(proposed.data))
        changed = [line for _tag, i1, i2, _j1, _j2 in opcodes for line in range(i1, i2)]
    out: list[Touched] = []
    for line in changed:
        owners = owners_by_line[line]
        if not foreign(owners):
            continue
        if out and out[-1].owners == owners and out[-1].lines[1] == line:
            out[-1] = Touched(owners, (out[-1].lines[0], line + 1))
        else:
            out.append(Touched(owners, (line + 1, line + 1)))
    return out


# A git invocation that would discard or rewrite work in the shared directory: its kind
# ("discard", "restore", "switch", "commit"), the pathspecs a restore would overwrite, and
# a `-C DIR` given to git.
GitRisk = namedtuple("GitRisk", "kind command paths cwd", defaults=((), None))


WRAPPERS = {"sudo", "command", "env", "exec", "time", "nohup", "nice", "xargs"}
GIT_VALUE_OPTIONS = {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env"}
REWRITERS = {"commit", "rebase", "merge", "pull", "cherry-pick", "revert", "am"}


def git_risks(command: str, is_path: Callable[[str], bool] = lambda _: False) -> list[GitRisk]:
    """The risky git invocations in a shell command line, however chained."""
    risks = []
    for words in _simple_commands(command):
        invocation = _git_invocation(words)
        if invocation is None:
            continue
        cwd, sub, args = invocation
        risk = _classify(sub, args, is_path)
        if risk is not None:
            kind, paths = risk
            risks.append(GitRisk(kind, " ".join(["git", sub, *args]), tuple(paths), cwd))
    return risks


def _simple_commands(command: str) -> list[list[str]]:
    """The words of each simple command, split at ; & | ( ) and line ends."""
    out: list[list[str]] = []
    # One line at a time: shlex's comments would swallow the line end that separates commands.
    for line in command.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # unbalanced quotes (a multi-line string): plain splitting
            tokens = line.replace(";", " ; ").replace("&&", " && ").split()
        current: list[str] = []
        for token in tokens:
            if token and set(token) <= set(";&|()"):
                if current:
                    out.append(current)
                current = []
            else:
                current.append(token)
        if current:
            out.append(current)
    return out


def _git_invocation(words: list[str]) -> tuple[str | None, str, list[str]] | None:
    i = 0
    while i < len(words) and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[i]) or words[i] in WRAPPERS):
        i += 1
    if i >= len(words) or words[i].rsplit("/", 1)[-1] != "git":
        return None
    i += 1
    cwd = None
    while i < len(words) and words[i].startswith("-"):
        option = words[i]
        if option in GIT_VALUE_OPTIONS and i + 1 < len(words):
            if option == "-C":
                cwd = words[i + 1]
            i += 2
        else:
            i += 1
    if i >= len(words):
        return None
    return cwd, words[i], words[i + 1:]


def _classify(sub: str, args: list[str], is_path: Callable[[str], bool]) -> tuple[str, list[str]] | None:
    flags = {a for a in args if a.startswith("-")}
    if sub == "reset":
        return ("discard", []) if flags & {"--hard", "--merge", "--keep"} else (
            ("commit", []) if "--soft" in flags else None
        )
    if sub == "stash":
        return None if args[:1] in (["list"], ["show"]) else ("discard", [])
    if sub == "clean":
        forced = any(a == "--force" or re.fullmatch(r"-[a-zA-Z]*f[a-zA-Z]*", a) for a in args)
        dry = any(a in ("-n", "--dry-run") or re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", a) for a in args)
        return ("discard", []) if forced and not dry else None
    if sub == "switch":
        return ("switch", [])
    if sub == "restore":
        if ("--staged" in flags or "-S" in flags) and not ({"--worktree", "-W"} & flags):
            return None
        return ("restore", _pathspecs(args))
    if sub == "checkout":
        if "--" in args:
            return ("restore", args[args.index("--") + 1:])
        if flags & {"-b", "-B", "--orphan", "--detach"}:
            return ("switch", [])
        positional = [a for a in args if not a.startswith("-")]
        if positional and all(is_path(a) for a in positional):
            return ("restore", positional)
        return ("switch", []) if positional else None
    if sub in REWRITERS:
        return ("commit", [])
    return None


def _pathspecs(args: list[str]) -> list[str]:
    if "--" in args:
        return args[args.index("--") + 1:]
    skip_next = {"-s", "--source"}
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in skip_next:
            skip = True
        elif not a.startswith("-"):
            out.append(a)
    return out or ["."]
