"""Shared harness files outside the repository (auto memory, skills, CLAUDE.md): guard, journal, restore.

Two sessions' hooks are played with payloads shaped like the captured ones (tests/payloads/),
the tools' effects done by the test, under a temporary HOME: the real ~/.claude is never touched.
"""
from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path

import pytest

from tests.conftest import VB
from tests.hookdriver import payload
from vbranch.hooks import harness
from vbranch.state.workspace import open_workspace

A, B = "sess-aaaa", "sess-bbbb"
ARCH_V1 = "# Architecture\n\n## Storage\nSQLite under .git.\n"
A_SECTION = "\n## Hooks\nhook.py dispatches on hook_event_name.\n"
B_SECTION = "\n## Tests\npytest, no wall clock.\n"


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    return home


@pytest.fixture
def repo(make_repo, home):
    repo = make_repo({"app.py": "a = 1\n"})
    VB(repo).init()
    return repo


@pytest.fixture
def ws(repo):
    ws = open_workspace(repo)
    yield ws
    ws.close()


def memory_dir(home: Path, repo: Path) -> Path:
    return home / ".claude" / "projects" / harness.project_key(repo) / "memory"


class Tools:
    """One session's Read/Write/Edit on absolute paths, with the harness hooks around them."""

    def __init__(self, ws, repo: Path, home: Path, session: str):
        self.ws, self.repo, self.session = ws, repo, session
        self.transcript = str(home / ".claude" / "projects" / harness.project_key(repo) / f"{session}.jsonl")

    def _payload(self, name: str, **fields) -> dict:
        return payload(name, self.repo, session_id=self.session, transcript_path=self.transcript,
                       tool_use_id=f"toolu_{uuid.uuid4().hex[:12]}", **fields)

    def read(self, path: Path) -> str:
        text = path.read_text()
        lines = text.count("\n") + (0 if text.endswith("\n") else 1)
        response = {"type": "text", "file": {"filePath": str(path), "content": text, "numLines": lines + 1,
                                             "startLine": 1, "totalLines": lines + 1}}
        harness.record_read(self.ws, self._payload("PostToolUse_Write", tool_name="Read",
                                                   tool_input={"file_path": str(path)}, tool_response=response))
        return text

    def write(self, path: Path, content: str, force: bool = False) -> str | None:
        """A Write: the deny reason if refused (and nothing written, unless `force`: the policy warn)."""
        tool_input = {"file_path": str(path), "content": content}
        reason = harness.check_write(self.ws, self._payload("PreToolUse_Write", tool_name="Write", tool_input=tool_input))
        if reason and not force:
            return reason
        original = path.read_text() if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        response = {"type": "update" if original is not None else "create", "filePath": str(path),
                    "content": content, "structuredPatch": [], "originalFile": original}
        harness.record_write(self.ws, self._payload("PostToolUse_Write", tool_name="Write", tool_input=tool_input,
                                                    tool_response=response))
        return reason

    def edit(self, path: Path, old: str, new: str) -> str | None:
        tool_input = {"file_path": str(path), "old_string": old, "new_string": new, "replace_all": False}
        reason = harness.check_write(self.ws, self._payload("PreToolUse_Edit", tool_name="Edit", tool_input=tool_input))
        if reason:
            return reason
        original = path.read_text()
        path.write_text(original.replace(old, new, 1))
        response = {"filePath": str(path), "oldString": old, "newString": new, "originalFile": original,
                    "structuredPatch": [], "userModified": False, "replaceAll": False}
        harness.record_write(self.ws, self._payload("PostToolUse_Edit", tool_name="Edit", tool_input=tool_input,
                                                    tool_response=response))
        return None


def test_the_project_key_is_the_clis(tmp_path):
    # Seen with 2.1.197 and the newest release: a repository at /tmp/probe-old-ey0kerfp/my_repo.x
    # has its memory at ~/.claude/projects/-tmp-probe-old-ey0kerfp-my-repo-x/memory/.
    assert harness.project_key("/tmp/probe-old-ey0kerfp/my_repo.x") == "-tmp-probe-old-ey0kerfp-my-repo-x"


def test_which_files_are_shared(ws, repo, home, tmp_path):
    mem = memory_dir(home, repo)
    assert harness.is_shared(ws, mem / "architecture.md")
    assert harness.is_shared(ws, mem / "MEMORY.md")
    assert harness.is_shared(ws, home / ".claude" / "skills" / "deploy" / "SKILL.md")
    assert harness.is_shared(ws, home / ".claude" / "CLAUDE.md")
    assert harness.is_shared(ws, repo.parent / "CLAUDE.md")  # a directory above the repository
    assert not harness.is_shared(ws, repo / "CLAUDE.md")  # inside: the repository's own guard
    assert not harness.is_shared(ws, repo / ".claude" / "skills" / "x" / "SKILL.md")
    assert not harness.is_shared(ws, home / ".claude" / "plans" / "a-plan.md")
    assert not harness.is_shared(ws, tmp_path / "scratch.txt")
    assert not harness.is_shared(ws, home / ".claude" / "projects" / "-some-other-repo" / "memory" / "x.md")


def test_auto_memory_directory_setting_and_config_dir_are_honoured(ws, repo, home, tmp_path, monkeypatch):
    elsewhere = tmp_path / "notes"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"autoMemoryDirectory": str(elsewhere)}))
    assert harness.is_shared(ws, elsewhere / "architecture.md")
    assert harness.is_shared(ws, memory_dir(home, repo) / "architecture.md")  # the default stays covered
    (home / ".claude" / "settings.json").write_text(json.dumps({"autoMemoryDirectory": "~/mem"}))
    assert harness.is_shared(ws, home / "mem" / "a.md")
    config = tmp_path / "cfg"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    assert harness.is_shared(ws, config / "projects" / harness.project_key(repo) / "memory" / "a.md")


def test_two_sessions_scratch_and_plan_files_are_never_refused(ws, repo, home, tmp_path):
    a, b = Tools(ws, repo, home, A), Tools(ws, repo, home, B)
    scratch = tmp_path / "scratch" / "out.txt"
    plan = home / ".claude" / "plans" / "shiny-plan.md"
    assert a.write(scratch, "a's scratch\n") is None
    assert b.write(scratch, "b's scratch, over a's\n") is None  # not shared: no guard, no journal
    assert a.write(plan, "# plan\n1. do it\n") is None
    assert b.write(plan, "# other plan\n") is None
    assert harness.log(ws) == []


def test_a_stale_rewrite_that_drops_another_sessions_section_is_refused(ws, repo, home):
    a, b = Tools(ws, repo, home, A), Tools(ws, repo, home, B)
    arch = memory_dir(home, repo) / "architecture.md"
    assert a.write(arch, ARCH_V1) is None
    stale = b.read(arch)  # both sessions read version 1
    a.read(arch)
    assert a.write(arch, ARCH_V1 + A_SECTION) is None  # a adds its section
    reason = b.write(arch, stale + B_SECTION)  # b rewrites from its stale read: a's section would go
    assert reason is not None
    assert str(arch) in reason and "lines 6-7" in reason and f"session {A}" in reason
    assert "Read the file again" in reason and "merge" in reason
    assert arch.read_text() == ARCH_V1 + A_SECTION
    # b does what it is told: reads again, merges, writes.
    merged = b.read(arch) + B_SECTION
    assert b.write(arch, merged) is None
    assert arch.read_text() == ARCH_V1 + A_SECTION + B_SECTION
    # a's next edit of its own section and b's lines it has not seen (the Edit keeps them) goes ahead.
    assert a.edit(arch, "hook.py dispatches", "hook.py dispatches events") is None


def test_an_edit_that_keeps_the_others_lines_goes_ahead_without_a_fresh_read(ws, repo, home):
    a, b = Tools(ws, repo, home, A), Tools(ws, repo, home, B)
    arch = memory_dir(home, repo) / "architecture.md"
    a.write(arch, ARCH_V1)
    b.read(arch)
    a.read(arch)
    a.write(arch, ARCH_V1 + A_SECTION)
    assert b.edit(arch, "SQLite under .git.", "SQLite (WAL) under .git.") is None  # touches none of a's lines
    assert b.edit(arch, "hook.py dispatches on hook_event_name.\n", "") is not None  # a's line, never seen by b


def test_a_session_that_saw_the_section_may_drop_it(ws, repo, home):
    a, b = Tools(ws, repo, home, A), Tools(ws, repo, home, B)
    arch = memory_dir(home, repo) / "architecture.md"
    a.write(arch, ARCH_V1 + A_SECTION)
    b.read(arch)
    assert b.write(arch, ARCH_V1) is None  # it read a's section: dropping it is its decision


def test_an_ended_sessions_lines_are_not_guarded(ws, repo, home):
    a, b = Tools(ws, repo, home, A), Tools(ws, repo, home, B)
    arch = memory_dir(home, repo) / "architecture.md"
    a.write(arch, ARCH_V1)
    stale = b.read(arch)
    a.read(arch)
    a.write(arch, ARCH_V1 + A_SECTION)
    with ws.lock, ws.store.tx():
        ws.store.add_session(A, None, "claude-code", "2026-01-01T00:00:00")
        ws.store.end_session(A, "2026-01-01T00:00:01")
    assert b.write(arch, stale + B_SECTION) is None  # journaled all the same: restore can bring it back
    assert [r["session"] for r in harness.log(ws, str(arch))] == [A, A, B]


def test_a_forced_overwrite_is_journaled_and_restore_brings_the_section_back(ws, repo, home, capsys):
    a, b = Tools(ws, repo, home, A), Tools(ws, repo, home, B)
    arch = memory_dir(home, repo) / "architecture.md"
    a.write(arch, ARCH_V1)
    stale = b.read(arch)
    a.read(arch)
    a.write(arch, ARCH_V1 + A_SECTION)
    assert b.write(arch, stale + B_SECTION, force=True) is not None  # guard_lines "warn": told, and written
    assert A_SECTION not in arch.read_text()

    rows = harness.log(ws, str(arch))
    assert [(r["version"], r["session"], r["kind"]) for r in rows] == [(1, A, "write"), (2, A, "write"), (3, B, "write")]
    harness.cli_log(argparse.Namespace(C=str(repo), path=str(arch)))
    out = capsys.readouterr().out
    assert str(arch) in out and f"session {A}" in out and f"session {B}" in out

    harness.cli_restore(argparse.Namespace(C=str(repo), path=str(arch), version=2))
    assert arch.read_text() == ARCH_V1 + A_SECTION
    assert "restored" in capsys.readouterr().out
    rows = harness.log(ws, str(arch))
    assert rows[-1]["kind"] == "restore of 2" and rows[-1]["version"] == 4
    assert harness.version_data(ws, str(arch), 3) == (stale + B_SECTION).encode()  # b's version is not lost
    # and b's section can come back too: b reads the restored file and merges its own in.
    assert b.write(arch, b.read(arch) + B_SECTION) is None
    assert arch.read_text() == ARCH_V1 + A_SECTION + B_SECTION


def test_restore_after_a_refusal_and_a_change_outside_the_tools(ws, repo, home):
    a, b = Tools(ws, repo, home, A), Tools(ws, repo, home, B)
    notes = memory_dir(home, repo) / "MEMORY.md"
    a.write(notes, "- [Architecture](architecture.md)\n")
    stale = b.read(notes)
    a.read(notes)
    a.edit(notes, "(architecture.md)\n", "(architecture.md)\n- [Hooks](hooks.md)\n")
    assert b.write(notes, stale + "- [Tests](tests.md)\n") is not None  # refused
    notes.write_text("- wiped by a shell command\n")  # a Bash write: no tool hook saw it
    assert b.read(notes) == "- wiped by a shell command\n"
    rows = harness.log(ws, str(notes))
    assert rows[-1]["session"] is None and rows[-1]["kind"] == "changed outside the tools"
    with_hooks = next(r["version"] for r in rows if r["session"] == A and r["kind"] == "edit")
    done = harness.restore(ws, str(notes), with_hooks)
    assert notes.read_text() == "- [Architecture](architecture.md)\n- [Hooks](hooks.md)\n"
    assert done["saved"] == rows[-1]["version"]  # what it replaced was kept already


def test_restore_of_an_unknown_version_says_so(ws, repo, home, capsys):
    arch = memory_dir(home, repo) / "architecture.md"
    Tools(ws, repo, home, A).write(arch, ARCH_V1)
    assert harness.cli_restore(argparse.Namespace(C=str(repo), path=str(arch), version=9)) == 1
    assert "no version 9" in capsys.readouterr().out
