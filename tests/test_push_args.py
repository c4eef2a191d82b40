"""`vbranch push --remote X`: X is a remote's name, a path or a URL, never a git option that runs a command."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, git
from tests.test_landing import three_sessions
from tests.test_push import bare, push
from vbranch.errors import UsageError
from vbranch.git import gitcli

OPTIONS = ["--upload-pack=touch {m}", "--receive-pack=touch {m}", "--exec=touch {m}", "-o{m}"]


@pytest.fixture
def committed(vb):
    v = three_sessions(vb)
    v.commit()
    return v


@pytest.mark.parametrize("option", OPTIONS)
def test_an_option_as_the_remote_is_refused_and_runs_nothing(committed, tmp_path, option):
    marker = tmp_path / "ran"
    with pytest.raises(UsageError, match="is not a remote"):
        push(committed, "session-a", option.format(m=marker))
    assert not marker.exists()
    assert not list(tmp_path.glob("ran*"))


def test_on_the_command_line(committed, tmp_path):
    marker = tmp_path / "ran"
    proc = subprocess.run([sys.executable, "-m", "vbranch", "-C", str(committed.repo), "push", "session-a",
                           f"--remote=--upload-pack=touch {marker}"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "is not a remote" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not marker.exists()


@pytest.mark.parametrize("option", OPTIONS)
def test_gitcli_refuses_options_too(committed, tmp_path, option):
    """Whoever calls them: push and remote_head put the remote after `--` and refuse one that starts with '-'."""
    marker = tmp_path / "ran"
    hostile = option.format(m=marker)
    with pytest.raises(UsageError):
        gitcli.remote_head(committed.repo, hostile, "refs/heads/session-a")
    with pytest.raises(UsageError):
        gitcli.push(committed.repo, hostile, "refs/heads/session-a:refs/heads/session-a", None)
    assert not marker.exists()


def test_a_remote_path_that_merely_contains_dashes_still_works(committed, tmp_path):
    where = bare(tmp_path, "-odd--name.git")
    report = push(committed, "session-a", str(where))
    assert report.remote == str(where)
    assert git(where, "rev-parse", "session-a") == git(committed.repo, "rev-parse", "session-a")
    assert gitcli.remote_head(committed.repo, str(where), "refs/heads/session-a") == report.head
