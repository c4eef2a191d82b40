"""Writes outside the repository, as Claude Code sessions make them today, with both releases.

Two real sessions write scratch files in /tmp, a plan and Claude Code's own auto-memory files
outside the repository: none is refused (nothing there belongs to a branch). They share one
memory file: beta read it before alpha added its section, and rewrites it from that stale read.
Claude Code refuses the first try (changed since read); the scripted model re-reads and retries
with the same stale text, as a careless model would, and alpha's section is gone from the file.
`vbranch memory log` shows every version with its session, and `vbranch memory restore` brings
the lost section back without losing beta's version.
"""

import json
import re
import uuid

from vbranch.hooks import harness
from vbranch.state.workspace import open_workspace

from .test_vbranch_sessions import describe, make_repo, run_scripts, vbranch


def memory_dir(home, repo):
    """Claude Code's auto memory of this project (checked on 2.1.197 and 2.1.332)."""
    return home / ".claude" / "projects" / re.sub(r"[^A-Za-z0-9]", "-", str(repo)) / "memory"


def test_outside_writes_pass_and_a_lost_memory_section_comes_back(claude_bin, tmp_path):
    repo = make_repo(tmp_path, {"README": "readme\n"})
    home = tmp_path / "home"
    memory = memory_dir(home, repo)
    notes = memory / "architecture.md"
    scratch = tmp_path / ("scratch-%s" % uuid.uuid4().hex[:8])
    plan = home / ".claude" / "plans" / "plan.md"
    first = "# Architecture\n\n## Storage\nSQLite, WAL.\n"
    alpha_section = "\n## Alpha\nThe tracer runs every command.\n"
    stale = first + "\n## Beta\nLeases are per tool call.\n"

    def write(path, content, **ann):
        return dict({"tool": "Write", "input": {"file_path": str(path), "content": content}}, **ann)

    scripts = {
        "alpha": [write(scratch / "alpha.txt", "scratch\n"),
                  write(notes, first),
                  {"tool": "Read", "input": {"file_path": str(notes)}, "arrive": "alpha-wrote", "after": "beta-read"},
                  write(notes, first + alpha_section, arrive="alpha-added"),
                  "alpha done"],
        "beta": [write(scratch / "beta.txt", "scratch\n"),
                 write(plan, "1. trace\n2. land\n"),
                 {"tool": "Read", "input": {"file_path": str(notes)}, "after": "alpha-wrote"},
                 dict(write(notes, stale), arrive="beta-read", after="alpha-done", retry=3),
                 "beta done"],
    }
    # beta's stale Write waits until alpha's turn has ended (its section written)
    scripts["alpha"][-1] = {"text": "alpha done", "arrive": "alpha-done"}
    api, sessions, runs = run_scripts(claude_bin, repo, tmp_path, scripts, "note the %s design")
    for name in scripts:  # nothing outside the repository was refused by vbranch
        assert not any("vbranch" in r["content"] for r in api.tool_results(name) if r["is_error"]), describe(api, runs, repo)
    assert (scratch / "alpha.txt").exists() and (scratch / "beta.txt").exists() and plan.exists()
    assert vbranch(repo, "status", "--json") and json.loads(vbranch(repo, "status", "--json"))["unattributed"] == []

    # The careless retry dropped alpha's section; the journal has every version with its session.
    assert notes.read_text() == stale
    ws = open_workspace(repo)
    try:
        versions = harness.log(ws, str(notes))
    finally:
        ws.close()
    by = {v["session"] for v in versions}
    assert {sessions.ids["alpha"], sessions.ids["beta"]} <= by, versions
    with_alpha = [v for v in versions if v["session"] == sessions.ids["alpha"] and alpha_section.strip() in _data(repo, notes, v)]
    assert with_alpha, versions
    listed = vbranch(repo, "memory", "log", str(notes))
    assert sessions.ids["alpha"][:8] in listed and sessions.ids["beta"][:8] in listed, listed

    vbranch(repo, "memory", "restore", str(notes), str(with_alpha[-1]["version"]))
    assert alpha_section.strip() in notes.read_text()
    ws = open_workspace(repo)
    try:
        assert any(_data(repo, notes, v) == stale for v in harness.log(ws, str(notes)))  # beta's version kept too
    finally:
        ws.close()


def _data(repo, path, version):
    ws = open_workspace(repo)
    try:
        data = harness.version_data(ws, str(path), version["version"])
    finally:
        ws.close()
    return (data or b"").decode()
