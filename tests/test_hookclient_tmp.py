"""The hook client hands the payload to the full hook through no file name another user could take first."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_hookserver import client, decision, stash
from vbranch import hookclient

LAST_PID = Path("/proc/sys/kernel/ns_last_pid")


def test_a_tmpdir_that_is_not_a_directory_does_not_matter(vb, tmp_path):
    """Before: the client opened $TMPDIR/vbranch-hook-<pid> and crashed (fail open) when it could not."""
    repo = vb({"a.txt": "a\n"}).repo
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    env = {**os.environ, "VBRANCH_HOOK_SERVER": "off", "TMPDIR": str(not_a_dir)}
    proc = subprocess.run([sys.executable, "-S", hookclient.__file__, "hook"], input=json.dumps(stash(repo)).encode(),
                          cwd=repo, env=env, capture_output=True)
    assert proc.returncode == 0 and decision(proc) == "deny", proc.stderr


@pytest.mark.skipif(not LAST_PID.exists(), reason="needs Linux's sequential pid counter")
def test_hostile_files_at_the_old_names_are_never_touched(vb, tmp_path, monkeypatch):
    """Another user's symlinks at /tmp/vbranch-hook-<pid> for the next pids: the answer is right, their target untouched."""
    repo = vb({"a.txt": "a\n"}).repo
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    target = tmp_path / "victim.txt"
    target.write_text("mine\n")
    last = int(LAST_PID.read_text())
    for pid in range(last + 1, last + 400):
        (hostile / f"vbranch-hook-{pid}").symlink_to(target)
    monkeypatch.setenv("TMPDIR", str(hostile))
    for _ in range(3):
        assert decision(client(repo, stash(repo), mode="off")) == "deny"
    assert target.read_text() == "mine\n"
    assert sorted(p.name for p in hostile.iterdir()) == sorted(f"vbranch-hook-{pid}" for pid in range(last + 1, last + 400))


RUN_WITHOUT_MEMFD = """
import os, sys
del os.memfd_create  # as on macOS: the pipe fallback
sys.path.insert(0, {dir!r})
import hookclient
sys.exit(hookclient.main(["hook"]))
"""


@pytest.mark.parametrize("padding", [0, 300_000])
def test_the_pipe_fallback_gives_the_full_hook_the_whole_payload(vb, padding):
    """Small payloads go into the pipe directly, large ones (beyond any pipe buffer) from a forked writer."""
    repo = vb({"a.txt": "a\n"}).repo
    data = stash(repo)
    data["padding"] = "x" * padding
    code = RUN_WITHOUT_MEMFD.format(dir=os.path.dirname(hookclient.__file__))
    env = {**os.environ, "VBRANCH_HOOK_SERVER": "off"}
    proc = subprocess.run([sys.executable, "-S", "-c", code], input=json.dumps(data).encode(), cwd=repo, env=env,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0 and decision(proc) == "deny", proc.stderr


def test_payload_fd_reads_back_exactly(tmp_path):
    data = bytes(range(256)) * 2000
    for make in (hookclient.payload_fd, hookclient.pipe_fd):
        fd = make(data)
        try:
            assert hookclient._read_all(fd) == data
        finally:
            os.close(fd)
    fd = hookclient.pipe_fd(b"tiny")
    assert hookclient._read_all(fd) == b"tiny"
    os.close(fd)
