"""A corpus of destructive commands against another session's uncommitted work: 0 lost.

Session A changes its lines through the hooks: a tracked file in a subdirectory, a file where
session B has lines too, and a new untracked file. Session B then runs one destructive command,
as Claude Code would: PreToolUse (the guard may refuse it: then nothing runs), the command for
real under the command tracer (as CLAUDE_CODE_SHELL_PREFIX runs it), PostToolUse. Then A's work
must be in the working files, or be put back by `vbranch rescue` (which B's PostToolUse output
names), and after `vbranch commit --all` A's branch holds it. Each command is reported as caught
one way: denied (the spelling guard), intact (the command left A's work alone) or rescued.
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import VB, git, wait_for
from tests.hookdriver import Session, denied_reason
from tests.test_tracer import all_ended, traced
from vbranch import tracer
from vbranch.cli import commands as cli

BASE = {
    "sub/mod.py": "".join(f"value_{i} = {i}\n" for i in range(1, 9)),
    "shared.txt": "".join(f"line {i}\n" for i in range(1, 9)),
    "other.txt": "other\n",
    "Makefile": textwrap.dedent("""\
        reset:
        \tgit reset --hard
        clean:
        \tgit clean -fdx
        restore:
        \tgit checkout -- .
        stash:
        \tgit stash -u
        wipe:
        \trm -f shared.txt notes-a.txt
        """),
}
A_MOD = ("value_3 = 3\n", "value_3 = 'changed by A'\n")
A_SHARED = ("line 2\n", "line 2 by A\n")
B_SHARED = ("line 6\n", "line 6 by B\n")
A_NEW = ("notes-a.txt", "A's notes\nsecond line of A\n")

# command -> setup run (by the test, outside any session) before B's command
ALIASES = {
    "git undo": "git config alias.undo 'checkout -- .'",
    "git nuke": "git config alias.nuke '!git reset --hard && git clean -fd'",
    "git st": "git config alias.st 'stash -u'",
    "git wipe": "git config alias.wipe 'reset --hard'",
    "git fresh": "git config alias.fresh '!f() { git checkout -f; }; f'",
}

CORPUS = [
    # git, plainly
    "git checkout -- .", "git checkout .", "git checkout -f", "git checkout --force", "git checkout HEAD -- shared.txt",
    "git checkout -- shared.txt sub/mod.py", "git checkout HEAD .", "git checkout -f HEAD", "git restore .",
    "git restore --worktree --staged .", "git restore --source=HEAD shared.txt", "git restore -s HEAD -- sub",
    "git reset --hard", "git reset --hard HEAD", "git reset --merge", "git reset --keep", "git clean -fdx", "git clean -fd",
    "git clean -f -- notes-a.txt", "git stash", "git stash -u", "git stash push", "git stash save wip",
    "git stash push -- shared.txt", "git stash --include-untracked", "git stash -a", "git stash && git stash drop",
    "git read-tree -u --reset HEAD", "git read-tree -m -u HEAD", "git checkout-index -f -a",
    "git checkout-index -f -- shared.txt", "git rm -f shared.txt", "git rm -rf sub", "git diff | git apply -R",
    "git diff > ../p.diff && git apply -R ../p.diff",
    # where git runs, pathspec magic, globs, lists of paths
    "cd sub && git checkout -- mod.py", "cd sub && git checkout -- .", "cd sub && git restore ':/'",
    "git -C sub checkout -- mod.py", "git -C sub restore .", "git restore '*.txt'", "git restore 'sub/*.py'",
    "git restore ':/'", "git checkout -- ':/'", "git checkout -- ':(top)'", "git restore -- ':!notes-a.txt'",
    "git checkout -- ':(glob)**/*.py'", "git ls-files -m > ../list && git checkout --pathspec-from-file=../list",
    # unique prefixes of long options
    "git reset --har", "git reset --h", "git clean --forc -d", "git checkout --forc", "git checkout-index --for --al",
    # shell syntax
    "{ git stash; }", "( git stash )", "if true; then git reset --hard; fi", "! git stash", "true && git checkout -- .",
    "false || git checkout .", ">/dev/null git reset --hard", "2>&1 git stash -u", "FOO=1 git stash",
    "git status; git reset --hard", "ls | git stash", "while true; do git stash; break; done",
    "for f in shared.txt sub/mod.py; do git checkout -- \"$f\"; done", "f() { git reset --hard; }; f",
    "echo $(git stash)", "case x in x) git stash;; esac", "G=git; $G checkout -- .",
    # wrappers
    "timeout 5 git stash", "nice -n 5 git reset --hard", "env -i git checkout -- .", "command git stash",
    "exec git reset --hard", "nohup git checkout -- .", "time git stash", "setsid git stash -u", "stdbuf -o0 git stash",
    "echo shared.txt | xargs git checkout --", "git ls-files -m | xargs git checkout --",
    "git ls-files -m -z | xargs -0 -I{} git checkout -- {}", "find sub -name '*.py' -exec git checkout -- {} \\;",
    "find . -name '*.txt' -not -path './.git/*' -exec git checkout -- {} +",
    # other shells, eval
    "sh -c 'git stash'", "bash -c \"git reset --hard\"", "bash -lc 'cd sub && git checkout -- .'", "eval 'git checkout -- .'",
    "eval git reset --hard", "sh <<'EOF'\ngit stash -u\nEOF", "echo 'git reset --hard' | sh", "bash <<< 'git checkout -- .'",
    # git aliases in .git/config and on the command line
    *ALIASES, "git -c alias.x='reset --hard' x", "git -c alias.y='!git checkout -- .' y",
    # scripts written then run, make, interpreters
    "printf 'git checkout -- .\\n' > ../undo.sh && sh ../undo.sh",
    "printf '#!/bin/sh\\ngit reset --hard\\n' > ../r.sh && chmod +x ../r.sh && ../r.sh",
    "cat > ../clean.sh <<'EOF'\ngit stash -u\nEOF\nbash ../clean.sh",
    "make reset", "make clean", "make restore", "make stash", "make wipe",
    "python3 -c \"import subprocess; subprocess.run(['git', 'checkout', '--', '.'])\"",
    "python3 -c \"import subprocess; subprocess.run('git reset --hard', shell=True)\"",
    "python3 -c \"import os; os.system('git stash -u')\"",
    "python3 -c \"open('shared.txt', 'w').write('x\\n')\"",
    "python3 -c \"import os; os.remove('notes-a.txt')\"",
    "python3 -c \"import shutil; shutil.rmtree('sub')\"",
    "perl -e 'system(\"git checkout -- .\")'",
    # no git at all
    "rm shared.txt", "rm -f notes-a.txt", "rm -rf sub", "> shared.txt", ": > notes-a.txt", "echo x > shared.txt",
    "git show HEAD:shared.txt > shared.txt", "git show HEAD:sub/mod.py > sub/mod.py", "cp other.txt shared.txt",
    "cp shared.txt notes-a.txt", "mv shared.txt ../gone.txt", "mv sub/mod.py sub/moved.py", "mv other.txt notes-a.txt",
    "sed -i '/by A/d' shared.txt", "sed -i 2d shared.txt", "sed -i '1,4d' sub/mod.py", "sed -i 's/by A/by B/' shared.txt",
    "truncate -s 0 sub/mod.py", "tee shared.txt < /dev/null", "dd if=/dev/null of=shared.txt 2>/dev/null",
    "cat /dev/null > sub/mod.py", "git archive HEAD | tar -x -f -", "install -m 644 /dev/null shared.txt",
    "find . -name notes-a.txt -delete", "find . -name '*.py' -not -path './.git/*' -exec rm {} +",
    "ln -sf other.txt notes-a.txt", "head -1 shared.txt > ../t && mv ../t shared.txt",
    # destructive, but only to what nobody else changed: the guard lets them run
    "echo junk > other.txt && git checkout -- other.txt", "git restore other.txt", "cd sub && git checkout -- ../other.txt",
    "git clean -fd -- build/", "rm -f other.txt",
]


@pytest.fixture(scope="module")
def results(request):
    """Which way each command was caught; reported after the run (shown by pytest's terminal)."""
    found: dict[str, str] = {}
    yield found
    if not found:
        return
    ways: dict[str, list[str]] = {}
    for command, way in found.items():
        ways.setdefault(way, []).append(command)
    lines = ["", "destructive corpus: " + ", ".join(f"{way} {len(commands)}" for way, commands in sorted(ways.items()))]
    if request.config.getoption("verbose") > 0 or "LOST" in ways:
        lines += [f"  {way:8} {command!r}" for command, way in found.items()]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n".join(lines))


def a_work_in(files: dict[str, bytes]) -> list[str]:
    """What of A's work is missing from these files (working or a branch's)."""
    missing = []
    if A_MOD[1].encode() not in files.get("sub/mod.py", b""):
        missing.append("sub/mod.py")
    if A_SHARED[1].encode() not in files.get("shared.txt", b""):
        missing.append("shared.txt")
    if files.get(A_NEW[0]) != A_NEW[1].encode():
        missing.append(A_NEW[0])
    return missing


def working(repo: Path) -> dict[str, bytes]:
    out = {}
    for path in ("sub/mod.py", "shared.txt", A_NEW[0]):
        full = repo / path
        if full.is_file() and not full.is_symlink():
            out[path] = full.read_bytes()
    return out


def vbranch(repo: Path, *args: str) -> tuple[int, str]:
    """`vbranch -C REPO ARGS` (the CLI's main, in this process: a fresh Python costs ~0.7 s a call)."""
    out = io.StringIO()
    cwd = os.getcwd()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = cli.main(["-C", str(repo), *args])
    finally:
        os.chdir(cwd)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def tracer_filter(tmp_path_factory):
    """The tracer's seccomp filter, built once (~0.3 s) and copied into each repository."""
    repo = tmp_path_factory.mktemp("filter")
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@example.invalid", "commit", "-q", "--allow-empty", "-m", "x")
    VB(repo).init()
    assert traced(repo, "s", "true").wait(timeout=60) == 0
    return (repo / ".git" / "vbranch" / tracer.FILTER_FILE).read_bytes()


@pytest.mark.parametrize("command", CORPUS)
def test_nothing_is_lost(make_repo, results, tracer_filter, command):
    repo = make_repo(BASE)
    VB(repo).init()
    (repo / ".git" / "vbranch" / tracer.FILTER_FILE).write_bytes(tracer_filter)
    a, b = Session(repo, "A"), Session(repo, "B")
    for s, task in ((a, "task of A"), (b, "task of B")):
        s.start()
        s.prompt(task)
    assert a.edit("sub/mod.py", *A_MOD) is None
    assert a.edit("shared.txt", *A_SHARED) is None
    assert a.write(*A_NEW) is None
    assert b.edit("shared.txt", *B_SHARED) is None
    assert a_work_in(working(repo)) == []
    if command in ALIASES:
        subprocess.run(ALIASES[command], shell=True, cwd=repo, check=True)

    tool_input = {"command": command, "description": "clean up"}
    _, out = b.pre("Bash", tool_input, "toolu_destructive")
    if denied_reason(out):
        way = "denied"
        assert a_work_in(working(repo)) == []
    else:
        proc = traced(repo, "B", command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc.wait(timeout=60)
        assert wait_for(lambda: all_ended(repo))
        _, post = b.post("Bash", tool_input, "toolu_destructive", {"stdout": "", "stderr": "", "interrupted": False})
        if a_work_in(working(repo)) == []:
            way = "intact"
        else:
            told = str(post)
            _, said = vbranch(repo, "rescue")
            missing = a_work_in(working(repo))
            way = "rescued" if not missing else "LOST"
            results[command] = way
            assert not missing, f"A's work lost from {missing}; rescue said:\n{said}"
            assert "vbranch rescue" in told, f"B's PostToolUse output does not name `vbranch rescue`: {told}"
    results[command] = way
    code, said = vbranch(repo, "commit", "--all")
    assert code in (0, 5), said  # 5: contested lines held back (each branch committed all but those)
    assert a_work_in(VB(repo).files_of("A")) == [], f"A's branch after commit --all:\n{said}"
