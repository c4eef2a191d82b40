"""The real Claude Code CLI edits CRLF and mixed-ending files under vbranch's hooks.

Claude Code reports `originalFile` with LF endings and writes the file back in
one style (CRLF when the file's start holds more CRLF than LF): the branch, and
the target it lands on, must hold exactly the bytes the working file holds, every
line once.
"""

import json
import subprocess
import sys

from vbranch.agents.claude_code import install

from . import claude_cli
from .fake_api import FakeAnthropic

SESSION_TIMEOUT = 120
CMD_TIMEOUT = 60

CRLF = b"".join(b"line %d\r\n" % i for i in range(1, 7))
MIXED = b"one\r\ntwo\nthree\r\nfour\r\nfive\n"  # 3 CRLF, 2 LF: written back all CRLF


def run(repo, *args):
    proc = subprocess.run(list(args), cwd=str(repo), capture_output=True, timeout=CMD_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def git(repo, *args):
    return run(repo, "git", *args)


def vbranch(repo, *args):
    return run(repo, sys.executable, "-m", "vbranch", *args).decode()


def tree(repo, rev):
    names = git(repo, "ls-tree", "-r", "--name-only", "-z", rev).decode().split("\0")
    return {n: git(repo, "cat-file", "blob", "%s:%s" % (rev, n)) for n in names if n}


def test_a_real_edit_of_crlf_and_mixed_files_commits_and_lands_the_exact_bytes(claude_bin, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "e2e@example.com")
    git(repo, "config", "user.name", "e2e")
    git(repo, "config", "core.autocrlf", "false")
    (repo / "crlf.txt").write_bytes(CRLF)
    (repo / "mixed.txt").write_bytes(MIXED)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    vbranch(repo, "init")
    install(repo, "local")

    crlf, mixed = str(repo / "crlf.txt"), str(repo / "mixed.txt")
    script = [
        {"tool": "Read", "input": {"file_path": crlf}},
        {"tool": "Edit", "input": {"file_path": crlf, "old_string": "line 2\nline 3\n",
                                   "new_string": "line 2 edited\nline 3 edited\nline 3b\n"}},
        {"tool": "Edit", "input": {"file_path": crlf, "old_string": "line 5", "new_string": "line 5 edited"}},
        {"tool": "Read", "input": {"file_path": mixed}},
        {"tool": "Edit", "input": {"file_path": mixed, "old_string": "three", "new_string": "THREE"}},
        "edits done",
    ]
    with FakeAnthropic({"endings": script}) as api:
        result = claude_cli.run_claude(
            claude_bin, repo, "SCRIPT=endings edit the windows files", claude_cli.write_settings(tmp_path / "none.json", {}),
            api.url, tmp_path / "home", timeout=SESSION_TIMEOUT)
    log = repo / ".git" / "vbranch" / "hook.log"
    where = "%s\nhook.log: %s" % (result.describe(), log.read_text() if log.exists() else "")
    assert result.returncode == 0 and result.output["result"] == "edits done", where
    assert result.output["permission_denials"] == [], where
    assert [r["is_error"] for r in api.tool_results("endings")] == [False] * 5, api.tool_results("endings")
    assert not api.errors and not log.exists(), where

    # What the real CLI left: CRLF kept; the mixed file in its majority style throughout.
    work = {"crlf.txt": (repo / "crlf.txt").read_bytes(), "mixed.txt": (repo / "mixed.txt").read_bytes()}
    assert work["crlf.txt"] == CRLF.replace(b"line 2\r\nline 3\r\n", b"line 2 edited\r\nline 3 edited\r\nline 3b\r\n") \
        .replace(b"line 5", b"line 5 edited")
    assert work["mixed.txt"] == b"one\r\ntwo\r\nTHREE\r\nfour\r\nfive\r\n"

    status = json.loads(vbranch(repo, "status", "--json"))
    assert status["unattributed"] == [] and status["contested"] == [], status
    [branch] = [b for b in status["branches"] if b["sessions"]]
    assert [s["id"] for s in branch["sessions"]] == [result.output["session_id"]]
    files = {f["path"]: f["lines"] for f in branch["files"]}
    assert files["crlf.txt"] == [[2, 4], [6, 6]], branch
    # The Stop hook committed the session's branch: exactly the working files' bytes, every line once.
    assert tree(repo, branch["ref"]) == work
    vbranch(repo, "land", branch["name"])
    assert tree(repo, "main") == work
    assert git(repo, "status", "--porcelain") == b""  # nothing left over: no line twice anywhere
