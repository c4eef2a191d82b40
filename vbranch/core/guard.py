"""What the guard refuses: writes over others' lines, and git commands that discard shared work.

Pure: the hook passes in records, branches and the command text.
"""
from __future__ import annotations

import posixpath
import re
import shlex
from collections import namedtuple
from itertools import islice

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

from vbranch.core.ownership import FileOwnership, FileState, diff_regions, runs

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
    lines = _current_runs(rec.items)
    if proposed is None or not proposed.is_text or proposed.mode != rec.known.mode:
        changed = [(0, lines[-1][1] if lines else 0)]  # the whole file is rewritten
    else:
        changed = [(i1, i2) for _tag, i1, i2, *_rest in diff_regions(rec.known.data, proposed.data) if i2 > i1]
    out: list[Touched] = []
    k = 0  # the first run not wholly before this region (regions ascend and are apart)
    for lo, hi in changed:
        while k < len(lines) and lines[k][1] <= lo:
            k += 1
        for start, end, owners in islice(lines, k, None):
            if start >= hi:
                break
            first, last = max(start, lo), min(end, hi)  # (0-based, last excluded)
            if not foreign(owners):
                continue
            if out and out[-1].owners == owners and out[-1].lines[1] == first:
                out[-1] = Touched(owners, (out[-1].lines[0], last))
            else:
                out.append(Touched(owners, (first + 1, last)))
    return out


def _current_runs(items: list) -> list[tuple[int, int, tuple[int, ...]]]:
    """The file's lines as runs (start, end, owners) of K or I items with the same owners (0-based, end excluded)."""
    out = []
    line = 0
    for (op, owners), n in runs(items):
        if op in "KI":
            out.append((line, line + n, owners))
            line += n
    return out


# A git invocation that would discard or rewrite work in the shared directory: its kind
# ("discard", "restore", "switch", "commit"), the pathspecs a restore would overwrite (relative
# to `cwd`, or absolute), and the directory git runs in relative to the hook's cwd (`cd DIR`,
# `git -C DIR`; None: the hook's cwd).
GitRisk = namedtuple("GitRisk", "kind command paths cwd", defaults=((), None))

# The spelling-based refusals are the fast first line only: the command tracer keeps what any
# command overwrote, whatever its spelling. So this errs towards refusing: a word we cannot
# read (a variable, a substitution, xargs' input) is taken to cover its whole directory, a
# directory we cannot follow turns a restore into a refusal, and a prefix of a dangerous long
# option counts as that option, as git's option parser accepts unique prefixes.

SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "fish", "su", "runuser", "script", "flock"}
# Wrappers that run their arguments as a command: name -> (options taking a value, long ones too).
WRAPPERS = {
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "--user", "--group", "--chdir", "--host", "--prompt"},
    "doas": {"-u", "-C"},
    "command": set(), "builtin": set(), "exec": {"-a"}, "time": {"-f", "-o", "--format", "--output"},
    "nohup": set(), "setsid": set(), "chronic": set(), "unbuffer": set(), "caffeinate": set(),
    "nice": {"-n", "--adjustment"}, "ionice": {"-c", "-n", "-p", "-P", "-u", "--class", "--classdata"},
    "timeout": {"-s", "-k", "--signal", "--kill-after"}, "stdbuf": {"-i", "-o", "-e", "--input", "--output", "--error"},
    "env": {"-u", "-C", "-S", "--unset", "--chdir", "--split-string"}, "xargs": {
        "-I", "-i", "-n", "-P", "-d", "-E", "-e", "-L", "-l", "-s", "-a", "--arg-file", "--delimiter", "--max-args",
        "--max-procs", "--max-lines", "--max-chars", "--replace", "--eof", "--process-slot-var"},
    "taskset": set(), "chrt": set(), "strace": {"-o", "-e", "-p", "-s", "-u"}, "ltrace": {"-o", "-e", "-p", "-s"},
    "valgrind": set(), "watch": {"-n", "-d", "--interval"}, "parallel": set(), "proot": set(), "fakeroot": set(),
    "firejail": set(), "unshare": set(), "nsenter": set(), "systemd-run": set(), "catchsegv": set(),
}
# Durations and the like that some wrappers take before the command.
WRAPPER_FIRST_ARG = {"timeout", "taskset", "chrt"}
RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "esac", "in"}
HEADERS = {"for", "select", "case", "function"}
PATTERN = re.compile(r"[*?\[{$`]")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
MAX_DEPTH = 12

GIT_VALUE_OPTIONS = {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env", "--super-prefix", "--list-cmds"}
REWRITERS = {"commit", "rebase", "merge", "pull", "cherry-pick", "revert", "am"}
# git subcommands that aliases cannot shadow (git ignores such aliases).
BUILTINS = REWRITERS | {
    "add", "apply", "bisect", "blame", "branch", "checkout", "checkout-index", "clean", "clone", "config", "describe",
    "diff", "fetch", "grep", "init", "log", "ls-files", "mv", "push", "read-tree", "reflog", "remote", "reset",
    "restore", "rev-parse", "rm", "show", "sparse-checkout", "stash", "status", "submodule", "switch", "symbolic-ref",
    "tag", "update-index", "update-ref", "worktree",
}
_LOST = "\0lost"  # a directory the command changes to that we cannot follow


class _Word(str):
    """A shell word after quote removal; `unknown` when part of it is only known at run time."""

    unknown = False


def _word(text: str, unknown: bool = False) -> _Word:
    w = _Word(text)
    w.unknown = unknown
    return w


def git_risks(
    command: str,
    is_path: Callable[[str], bool] = lambda _: False,
    aliases: dict[str, str] | Callable[[], dict[str, str]] | None = None,
    top: str | None = None,
) -> list[GitRisk]:
    """The risky git invocations in a shell command line, however chained, nested or wrapped.

    `is_path(p)`: does p (relative to the hook's cwd, or absolute) exist. `aliases`: the
    repository's git aliases (name -> value, see `aliases_from_config`), or what gives them when
    first needed (reading them costs a git process; most commands run no git, or only its own
    subcommands, which no alias shadows). `top`: the repository's top directory, for `:/`
    pathspecs and `!` aliases (which run there); without it those refuse.
    """
    scan = _Scan(is_path, aliases, top)
    try:
        scan.script(command, None, 0)
    except RecursionError:  # pragma: no cover - absurd nesting
        scan.risks.append(GitRisk("discard", command[:200]))
    return scan.risks


def aliases_from_config(output: str) -> dict[str, str]:
    """Aliases from `git config -z --get-regexp '^alias\\.'` (entries `alias.NAME\\nVALUE\\0`)."""
    out = {}
    for entry in output.split("\0"):
        key, _, value = entry.partition("\n")
        if key.lower().startswith("alias.") and len(key) > 6:
            out[key[6:].lower()] = value
    return out


# --- the shell --------------------------------------------------------------------------------

_OPERATORS = ["&&", "||", ";;&", ";;", ";&", "|&", "&>>", "&>", ">>", "<<<", "<<-", "<<", ">&", "<&", "<>", ">|",
              ";", "&", "|", "(", ")", "<", ">", "\n"]
_REDIRECTS = {"&>>", "&>", ">>", "<<<", "<<-", "<<", ">&", "<&", "<>", ">|", "<", ">"}
_SEPARATORS = {"&&", "||", ";;&", ";;", ";&", "|&", ";", "&", "|", "\n", "(", ")"}
_WORD_END = set(" \t\n;&|()<>")
_PLAIN = re.compile(r"[^\s;&|()<>\\'\"$`]+")
_PLAIN_QUOTED = re.compile(r'[^"\\$`]+')


def _matching(text: str, i: int, close: str = ")") -> int:
    """Index just past the `close` matching an opener before i (quotes and nesting respected)."""
    depth, n = 1, len(text)
    opener = "(" if close == ")" else None
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "'" and close == ")":
            j = text.find("'", i + 1)
            i = n if j < 0 else j + 1
            continue
        if c == '"' and close == ")":
            i = _dquote_end(text, i + 1)
            continue
        if c == "`" and close == "`":
            return i + 1
        if opener and c == opener:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _dquote_end(text: str, i: int) -> int:
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        elif c == "$" and text[i + 1:i + 2] == "(":
            i = _matching(text, i + 2)
        elif c == "`":
            i = _matching(text, i + 1, "`")
        else:
            i += 1
    return n


_ANSI = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "e": "\x1b", "v": "\v", "f": "\f"}


def _lex(text: str, nested: list[str]) -> list[tuple]:
    """Tokens: ("w", _Word) or ("op", operator, heredoc body holder). Substitutions go to `nested`."""
    tokens: list[tuple] = []
    pending: list[tuple[str, bool, list]] = []  # heredocs whose bodies start at the next line
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
            continue
        if c == "\\" and text[i + 1:i + 2] == "\n":
            i += 2
            continue
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c in "<>" and text[i + 1:i + 2] == "(":  # process substitution
            end = _matching(text, i + 2)
            nested.append(text[i + 2:end - 1])
            tokens.append(("w", _word("/dev/fd/63", True)))
            i = end
            continue
        if c in _WORD_END:
            op = next(o for o in _OPERATORS if text.startswith(o, i))
            i += len(op)
            if op == "\n":
                tokens.append(("op", "\n", None))
                for delim, strip, holder in pending:
                    lines = []
                    while i < n:
                        j = text.find("\n", i)
                        line = text[i:] if j < 0 else text[i:j]
                        i = n if j < 0 else j + 1
                        if (line.lstrip("\t") if strip else line) == delim:
                            break
                        lines.append(line)
                    holder.append("\n".join(lines))
                pending = []
                continue
            holder: list = []
            tokens.append(("op", op, holder))
            if op in ("<<", "<<-"):
                while i < n and text[i] in " \t":
                    i += 1
                word, i = _read_word(text, i, nested)
                pending.append((str(word), op == "<<-", holder))
            continue
        word, i = _read_word(text, i, nested)
        if word.isdigit() and i < n and text[i] in "<>":
            continue  # a file descriptor number: `2>x`
        tokens.append(("w", word))
    if pending:  # a heredoc without its body (the command ends first)
        for _delim, _strip, holder in pending:
            holder.append("")
    return tokens


def _read_word(text: str, i: int, nested: list[str]) -> tuple[_Word, int]:
    out: list[str] = []
    unknown = False
    n = len(text)
    while i < n and text[i] not in _WORD_END:
        plain = _PLAIN.match(text, i)
        if plain:
            out.append(plain.group())
            i = plain.end()
            continue
        c = text[i]
        if c == "\\":
            out.append(text[i + 1:i + 2])
            i += 2
        elif c == "'":
            j = text.find("'", i + 1)
            j = n if j < 0 else j
            out.append(text[i + 1:j])
            i = j + 1
        elif c == "$" and text[i + 1:i + 2] == "'":
            i += 2
            while i < n and text[i] != "'":
                if text[i] == "\\" and i + 1 < n:
                    out.append(_ANSI.get(text[i + 1], text[i + 1]))
                    i += 2
                else:
                    out.append(text[i])
                    i += 1
            i += 1
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                plain = _PLAIN_QUOTED.match(text, i)
                if plain:
                    out.append(plain.group())
                    i = plain.end()
                    continue
                d = text[i]
                if d == "\\" and text[i + 1:i + 2] in ('"', "\\", "$", "`", "\n"):
                    out.append(text[i + 1] if text[i + 1] != "\n" else "")
                    i += 2
                elif d == "`" or (d == "$" and text[i + 1:i + 2] == "("):
                    end = _substitution(text, i, nested)
                    out.append(text[i:end])
                    unknown = True
                    i = end
                else:
                    out.append(d)
                    i += 1
            i += 1
        elif c == "`" or (c == "$" and text[i + 1:i + 2] == "("):
            end = _substitution(text, i, nested)
            out.append(text[i:end])
            unknown = True
            i = end
        elif c == "$" and text[i + 1:i + 2] == "{":
            end = _matching(text, i + 2, "}")
            out.append(text[i:end])
            i = end
        else:
            out.append(c)
            i += 1
    return _word("".join(out), unknown), i


def _substitution(text: str, i: int, nested: list[str]) -> int:
    """A `$(…)` or backquoted command at `i`: its inner command goes to `nested`; returns where it ends."""
    if text[i] == "`":
        end = _matching(text, i + 1, "`")
        nested.append(text[i + 1:end - 1])
    else:
        end = _matching(text, i + 2)
        nested.append(text[i + 2:end - 1])
    return end


class _Scan:
    def __init__(self, is_path, aliases, top: str | None):
        self.is_path = is_path
        self.given_aliases = aliases
        self.aliases: dict[str, str] | None = None  # lower-cased, read at the first alias looked up
        self.top = top
        self.risks: list[GitRisk] = []
        self.vars: dict[str, str] = {}

    def alias(self, name: str) -> str | None:
        if self.aliases is None:
            given = self.given_aliases() if callable(self.given_aliases) else self.given_aliases
            self.aliases = {k.lower(): v for k, v in (given or {}).items()}
        return self.aliases.get(name.lower())

    # A list of commands: returns the directory it leaves the shell in.
    def script(self, text: str, cwd: str | None, depth: int) -> str | None:
        if depth > MAX_DEPTH:
            self.risks.append(GitRisk("discard", text[:200]))
            return cwd
        nested: list[str] = []
        tokens = _lex(text, nested)
        stack: list[str | None] = []
        words: list[_Word] = []
        stdin: list[str] = []
        prev: list[_Word] | None = None
        redirect = None
        for token in tokens + [("op", "\n", None)]:
            if token[0] == "w":
                if redirect is not None:
                    if redirect == "<<<":
                        stdin.append(str(token[1]))
                    redirect = None
                    continue
                words.append(token[1])
                continue
            op, holder = token[1], token[2]
            if op in _REDIRECTS:
                if op in ("<<", "<<-"):
                    stdin.append(holder)  # the body, filled at the next line end; the lexer took the delimiter
                else:
                    redirect = op  # the next word is its target (or, for <<<, the input)
                continue
            redirect = None
            if words:
                cwd = self.simple(words, cwd, stdin, prev, depth)
                prev = words if op in ("|", "|&") else None
            words, stdin = [], []
            if op == "(":
                stack.append(cwd)
            elif op == ")" and stack:
                cwd = stack.pop()
        for inner in nested:
            self.script(inner, cwd, depth + 1)
        return cwd

    def expand(self, w: _Word) -> _Word:
        if "$" not in w:
            return w
        unknown = w.unknown

        def sub(m):
            nonlocal unknown
            name = m.group(1) or m.group(2)
            if name in self.vars:
                return self.vars[name]
            unknown = True
            return m.group(0)

        text = VARIABLE.sub(sub, w)
        if "$" in text:
            unknown = True
        return _word(text, unknown)

    def simple(self, words: list[_Word], cwd: str | None, stdin: list, prev: list[_Word] | None, depth: int) -> str | None:
        words = [self.expand(w) for w in words]
        assignments = {}
        i = 0
        while i < len(words):
            w = words[i]
            if w in HEADERS:
                if w != "function":
                    return cwd  # `for x in ...`, `case x in`: no command here
                i += 2
            elif w in RESERVED or w in ("time", "-p", "()"):
                i += 1
            elif ASSIGNMENT.match(w) and not w.startswith("="):
                name, _, value = w.partition("=")
                assignments[name.rstrip("+")] = value
                i += 1
            else:
                break
        if i >= len(words):
            self.vars.update(assignments)  # `G=git` on its own sets a shell variable
            return cwd
        worktree = any(k in ("GIT_WORK_TREE", "GIT_DIR") for k in assignments)
        return self.run(words[i:], cwd, stdin, prev, depth, worktree)

    def run(self, words: list[_Word], cwd, stdin, prev, depth: int, odd_tree: bool = False, extra: bool = False):
        """One command's words (wrappers still on): returns the shell's directory after it."""
        if depth > MAX_DEPTH or not words:
            return cwd
        name = words[0].rsplit("/", 1)[-1]
        args = words[1:]
        if name in ("cd", "pushd"):
            targets = [a for a in args if not a.startswith("-") or a == "-"]
            if not targets or targets[0] in ("-", "~") or targets[0].unknown or PATTERN.search(targets[0]) or targets[0].startswith("~"):
                return _LOST
            return _join(cwd, targets[0])
        if name == "popd":
            return _LOST
        if name in WRAPPERS:
            return self.wrapper(name, args, cwd, stdin, prev, depth, odd_tree, extra)
        if name in SHELLS:
            self.shell(name, args, cwd, stdin, prev, depth)
            return cwd
        if name in ("eval", "."):  # `. file` has no text here; eval's does, and its `cd` stays
            return self.script(" ".join(args), cwd, depth + 1) if name == "eval" else cwd
        if name == "find":
            self.find(args, cwd, depth)
            return cwd
        if name == "git" or (words[0].unknown and "git" in words[0]):
            self.git(args, cwd, depth, odd_tree, extra)
        return cwd

    def wrapper(self, name, args, cwd, stdin, prev, depth, odd_tree, extra):
        values = WRAPPERS[name]
        i = 0
        if name == "xargs":
            extra = True
        if name == "watch":
            start = 0
            while start < len(args) and args[start].startswith("-"):
                start += 2 if args[start] in values else 1
            self.script(" ".join(args[start:]), cwd, depth + 1)
            return cwd
        while i < len(args):
            a = args[i]
            if a == "--":
                i += 1
                break
            if name == "env" and ASSIGNMENT.match(a):
                odd_tree = odd_tree or a.startswith(("GIT_WORK_TREE=", "GIT_DIR="))
                i += 1
                continue
            if not a.startswith("-") or a == "-":
                break
            option, eq, value = a.partition("=")
            if name == "env" and option in ("-S", "--split-string"):
                rest = value if eq else (args[i + 1] if i + 1 < len(args) else "")
                tail = args[i + (1 if eq else 2):]
                self.script(" ".join([rest, *(_quote(t) for t in tail)]), cwd, depth + 1)
                return cwd
            if name == "env" and option in ("-C", "--chdir"):
                target = value if eq else (args[i + 1] if i + 1 < len(args) else "")
                cwd = _join(cwd, target) if target and not getattr(target, "unknown", False) else _LOST
            if option in values and not eq:
                i += 2
            elif len(option) > 2 and option[:2] in values and not option.startswith("--"):
                i += 1  # `-n5`
            else:
                i += 1
        if name in WRAPPER_FIRST_ARG and i < len(args):
            i += 1
        if name in ("nice",) and i < len(args) and re.fullmatch(r"-?\d+", args[i]):
            i += 1
        self.run(args[i:], cwd, stdin, prev, depth + 1, odd_tree, extra)
        return cwd

    def shell(self, name, args, cwd, stdin, prev, depth):
        if name == "busybox":
            if args and args[0] in SHELLS | {"sh"}:
                self.shell(args[0], args[1:], cwd, stdin, prev, depth)
            elif args:
                self.run(args, cwd, stdin, prev, depth + 1)
            return
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-c", "--command") or (a.startswith("-") and not a.startswith("--") and "c" in a[1:]):
                if i + 1 < len(args):
                    self.script(args[i + 1], cwd, depth + 1)
                return
            if a in ("-o", "+o", "-O", "+O", "-u", "-g", "-w") and name in ("bash", "su", "runuser", "flock") | {"sh"}:
                i += 2 if name in ("bash", "sh") and a in ("-o", "+o", "-O", "+O") else 1
                continue
            if not a.startswith(("-", "+")):
                if name in ("flock",) and i + 1 < len(args):
                    self.run(args[i + 1:], cwd, stdin, prev, depth + 1)
                return  # a script file: its text is not in the command (the tracer keeps what it overwrites)
            i += 1
        for text in stdin:  # `sh <<EOF`, `bash <<< '...'`
            self.script(text if isinstance(text, str) else "".join(text), cwd, depth + 1)
        if prev and prev[0].rsplit("/", 1)[-1] in ("echo", "printf"):  # `echo 'git stash' | sh`
            self.script(" ".join(w for w in prev[1:] if not w.startswith("-")).replace("\\n", "\n"), cwd, depth + 1)

    def find(self, args, cwd, depth):
        i = 0
        while i < len(args):
            if args[i] in ("-exec", "-execdir", "-ok", "-okdir"):
                j = i + 1
                while j < len(args) and args[j] not in (";", "+"):
                    j += 1
                inner = [_word(a, True) if "{}" in a else a for a in args[i + 1:j]]
                self.run(inner, _LOST if args[i].endswith("dir") else cwd, [], None, depth + 1)
                i = j
            i += 1

    # --- git ---------------------------------------------------------------------------------

    def git(self, args: list[_Word], cwd, depth: int, odd_tree: bool = False, extra: bool = False):
        i = 0
        config: dict[str, str] = {}
        while i < len(args) and args[i].startswith("-"):
            option, eq, value = args[i].partition("=")
            if option in GIT_VALUE_OPTIONS and (eq or i + 1 < len(args)):
                value = value if eq else args[i + 1]
                if option == "-C":
                    cwd = _LOST if getattr(value, "unknown", False) or PATTERN.search(value) else _join(cwd, value)
                elif option == "-c":
                    key, _, val = value.partition("=")
                    config[key.lower()] = val
                elif option in ("--git-dir", "--work-tree"):
                    odd_tree = True
                i += 1 if eq else 2
            else:
                i += 1
        if i >= len(args):
            return
        sub, rest = args[i], args[i + 1:]
        alias = config.get(f"alias.{sub.lower()}")
        if alias is None and sub not in BUILTINS:
            alias = self.alias(sub)
        if alias is not None:
            if alias.startswith("!"):
                shell_cwd = self.top if self.top else _LOST
                self.script(" ".join([alias[1:], *(_quote(a) for a in rest)]), shell_cwd, depth + 1)
            else:
                try:
                    expanded = [_word(w) for w in shlex.split(alias)]
                except ValueError:
                    expanded = [_word(w) for w in alias.split()]
                self.git([a for k, v in config.items() for a in (_word("-c"), _word(f"{k}={v}"))] + expanded + rest,
                         cwd, depth + 1, odd_tree, extra)
            return
        if sub == "submodule" and "foreach" in rest:
            k = rest.index("foreach") + 1
            while k < len(rest) and rest[k].startswith("-"):
                k += 1
            self.script(" ".join(rest[k:]), _LOST, depth + 1)
            return
        risk = _classify(sub, list(rest) + ([_word("*", True)] if extra else []), self.pathlike(cwd))
        if risk is None:
            return
        kind, paths = risk
        shown = " ".join(["git", sub, *rest])
        if kind == "restore":
            resolved = None if cwd == _LOST or odd_tree else self.scope(paths)
            if resolved is None:
                kind, resolved = "discard", ()
            self.risks.append(GitRisk(kind, shown, tuple(resolved), None if kind == "discard" else cwd))
        else:
            self.risks.append(GitRisk(kind, shown))

    def pathlike(self, cwd):
        def check(arg: str) -> bool:
            if getattr(arg, "unknown", False) or arg.startswith(":") or PATTERN.search(arg) or arg in (".", "..") or arg.endswith("/"):
                return True
            return cwd != _LOST and bool(self.is_path(_join(cwd, arg)))
        return check

    def scope(self, specs) -> list[str] | None:
        """The paths (relative to git's cwd, or absolute) that pathspecs can cover; None: can't tell."""
        out = []
        for spec in specs:
            if spec is _ALL:
                if not self.top:
                    return None
                out.append(self.top)
                continue
            spec = str(spec)
            base = None
            literal = False
            if spec.startswith(":"):
                magic, rest = _magic(spec)
                if magic is None:
                    return None
                if "top" in magic:
                    if not self.top:
                        return None
                    base = self.top
                if "literal" in magic:
                    literal = True
                if magic & {"exclude", "icase", "attr"}:
                    rest = ""
                spec = rest
            if not literal:
                m = PATTERN.search(spec)
                if m:
                    spec = spec[:m.start()].rpartition("/")[0]
            spec = spec or "."
            out.append(posixpath.join(base, spec) if base else spec)
        return out


class _All:
    def __repr__(self):
        return "<every path>"


_ALL = _All()  # --pathspec-from-file, --stdin: any path of the repository


def _magic(spec: str) -> tuple[set[str] | None, str]:
    """Pathspec magic (`:(top,glob)x`, `:/x`, `:!x`, `:^x`): its names and the rest."""
    if spec.startswith(":("):
        end = spec.find(")")
        if end < 0:
            return None, ""
        names = {m.split(":", 1)[0].strip().lower() for m in spec[2:end].split(",")}
        names = {"exclude" if m in ("exclude", "!", "^") else m for m in names}
        return names, spec[end + 1:]
    names = set()
    i = 1
    while i < len(spec) and spec[i] in "/!^":
        names.add("top" if spec[i] == "/" else "exclude")
        i += 1
    if i < len(spec) and spec[i] == ":":
        i += 1
    return names, spec[i:]


def _join(cwd: str | None, path: str) -> str:
    if cwd == _LOST:
        return _LOST
    if path.startswith("/") or cwd is None:
        return posixpath.normpath(path)
    return posixpath.normpath(posixpath.join(cwd, path))


def _quote(word: str) -> str:
    return shlex.quote(str(word))


# --- git's options -------------------------------------------------------------------------------

# Per subcommand: long options (prefixes are accepted, as git does), long options taking a value,
# short options taking a value.
_OPTIONS = {
    "reset": ("--hard --soft --mixed --merge --keep --quiet --patch --intent-to-add --recurse-submodules --no-refresh "
              "--refresh --pathspec-from-file --pathspec-file-nul", {"--pathspec-from-file"}, set()),
    "checkout": ("--force --ours --theirs --merge --detach --orphan --track --no-track --guess --overlay --no-overlay "
                 "--pathspec-from-file --pathspec-file-nul --patch --quiet --progress --conflict "
                 "--ignore-skip-worktree-bits --ignore-other-worktrees --overwrite-ignore --recurse-submodules",
                 {"--orphan", "--conflict", "--pathspec-from-file"}, {"-b", "-B"}),
    "restore": ("--source --staged --worktree --ours --theirs --merge --conflict --patch --quiet --progress --overlay "
                "--no-overlay --ignore-unmerged --ignore-skip-worktree-bits --recurse-submodules --pathspec-from-file "
                "--pathspec-file-nul", {"--source", "--conflict", "--pathspec-from-file"}, {"-s"}),
    "clean": ("--dry-run --quiet --force --interactive --exclude", {"--exclude"}, {"-e"}),
    "read-tree": ("--reset --prefix --index-output --dry-run --trivial --aggressive --exclude-per-directory "
                  "--no-sparse-checkout --empty --quiet --recurse-submodules", {"--prefix", "--index-output", "--exclude-per-directory"}, set()),
    "checkout-index": ("--force --all --quiet --no-create --index --stdin --temp --prefix --stage --ignore-skip-worktree-bits",
                       {"--prefix", "--stage"}, set()),
    "rm": ("--force --cached --dry-run --quiet --ignore-unmatch --sparse --pathspec-from-file --pathspec-file-nul",
           {"--pathspec-from-file"}, set()),
    "mv": ("--force --dry-run --verbose --sparse", set(), set()),
    "apply": ("--reverse --cached --index --check --stat --numstat --summary --3way --include --exclude --directory "
              "--verbose --quiet", {"--include", "--exclude", "--directory"}, {"-p", "-C"}),
}


def _options(sub: str, args: list[str]) -> tuple[set[str], dict[str, str], list[str], list[str] | None]:
    """Parsed as git would: (options given, their values, positionals, the words after `--`)."""
    longs, long_values, short_values = _OPTIONS.get(sub, ("", set(), set()))
    longs = longs.split()
    given: set[str] = set()
    values: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return given, values, positional, list(args[i + 1:])
        if a.startswith("--") and not getattr(a, "unknown", False):
            name, eq, value = a.partition("=")
            matches = [name] if name in longs else [o for o in longs if o.startswith(name) and len(name) > 2]
            given.update(matches or [name])
            if set(matches) & long_values:
                if not eq and i + 1 < len(args):
                    value = args[i + 1]
                    i += 1
                for m in matches:
                    values[m] = value
        elif a.startswith("-") and len(a) > 1 and not getattr(a, "unknown", False):
            for k, letter in enumerate(a[1:], 1):
                given.add("-" + letter)
                if "-" + letter in short_values:
                    value = a[k + 1:]
                    if not value and i + 1 < len(args):
                        value = args[i + 1]
                        i += 1
                    values["-" + letter] = value
                    break
        else:
            positional.append(a)
        i += 1
    return given, values, positional, None


def _classify(sub: str, args: list[str], pathlike: Callable[[str], bool]) -> tuple[str, list] | None:
    given, values, positional, after = _options(sub, args)
    every = [_ALL] if "--pathspec-from-file" in given or "--stdin" in given else []
    specs = (after if after is not None else positional) + every
    if sub == "reset":
        if given & {"--hard", "--merge", "--keep"}:
            return ("discard", [])
        return ("commit", []) if "--soft" in given else None
    if sub == "stash":
        return None if positional[:1] in (["list"], ["show"]) and args[:1] == positional[:1] else ("discard", [])
    if sub == "clean":
        if given & {"-n", "--dry-run"}:
            return None
        return ("restore", specs) if specs else ("discard", [])
    if sub == "switch":
        return ("switch", [])
    if sub == "restore":
        if given & {"--staged", "-S"} and not given & {"--worktree", "-W"}:
            return None
        return ("restore", specs or ["."])
    if sub == "checkout":
        if every:
            return ("restore", every)
        if after:
            return ("restore", after)
        if given & {"-b", "-B", "--orphan", "--detach"}:
            return ("switch", [])
        if not positional:
            return ("discard", []) if given & {"-f", "--force", "-m", "--merge"} else None
        if pathlike(positional[0]):
            return ("restore", positional)
        if len(positional) > 1:
            return ("restore", positional[1:])
        return ("switch", [])
    if sub == "read-tree":
        return ("discard", []) if "-u" in given and not given & {"-n", "--dry-run"} else None
    if sub == "checkout-index":
        if given & {"-a", "--all"} or every:
            return ("discard", []) if given & {"-f", "--force"} else ("restore", [_ALL])
        return ("restore", specs) if specs else None
    if sub == "rm":
        return None if "--cached" in given or given & {"-n", "--dry-run"} else (("restore", specs) if specs else None)
    if sub == "mv":
        return ("restore", positional) if positional and not given & {"-n", "--dry-run"} else None
    if sub == "apply":
        reverse = given & {"-R", "--reverse"} and not given & {"--cached", "--check", "--stat", "--numstat", "--summary"}
        return ("discard", []) if reverse else None
    if sub == "sparse-checkout":
        return None if positional[:1] == ["list"] else ("discard", [])
    if sub == "bisect":
        return None if positional[:1] in (["log"], ["view"], ["visualize"], ["terms"], ["help"]) else ("switch", [])
    if sub == "symbolic-ref":
        return ("switch", []) if len(positional) >= 2 else None
    if sub == "update-ref":
        return ("commit", []) if positional[:1] == ["HEAD"] else None
    if sub in REWRITERS:
        return ("commit", [])
    return None
