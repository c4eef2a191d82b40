"""A file symlink in the working tree must not carry a file tool's write outside the repository or into .git."""
from __future__ import annotations

import os

import pytest

from vbranch.errors import PathError
from vbranch.git.worktree import resolve, resolve_write_target


@pytest.fixture
def top(tmp_path):
    top = tmp_path / "repo"
    (top / ".git" / "hooks").mkdir(parents=True)
    (top / ".git" / "config").write_text("[core]\n")
    (top / "src").mkdir()
    (top / "src" / "real.txt").write_text("x\n")
    (tmp_path / "outside.txt").write_text("secret\n")
    return top


def link(top, name, target):
    path = top / name
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


@pytest.mark.parametrize("target", [
    "../outside.txt",           # relative, out of the tree
    "{tmp}/outside.txt",        # absolute
    "{tmp}/not-there-yet.txt",  # dangling: a write would create it outside
    "/etc/passwd",
    "..",                       # the directory above the repository
])
def test_a_link_pointing_outside_is_refused(top, tmp_path, target):
    path = link(top, "esc.txt", target.format(tmp=tmp_path))
    assert resolve(top, path) == "esc.txt"  # recording still sees the link itself
    with pytest.raises(PathError, match="outside the repository"):
        resolve_write_target(top, path)
    with pytest.raises(PathError, match="outside the repository"):
        resolve_write_target(top, "esc.txt", cwd=top)


@pytest.mark.parametrize("target", [".git/config", ".git/hooks/pre-commit", "../.git/HEAD", ".git", "sub/.git/config"])
def test_a_link_into_git_is_refused(top, target):
    path = link(top, "src/inner.txt", "../" + target if not target.startswith("..") else target)
    assert resolve(top, path) == "src/inner.txt"
    with pytest.raises(PathError, match="into .git"):
        resolve_write_target(top, path)


def test_a_chain_is_followed_to_its_end(top, tmp_path):
    """in-repo link -> in-repo link -> outside: refused; in-repo link -> outside link -> back in: allowed."""
    link(top, "hop2.txt", str(tmp_path / "outside.txt"))
    hop1 = link(top, "hop1.txt", "hop2.txt")
    with pytest.raises(PathError, match="outside the repository"):
        resolve_write_target(top, hop1)
    back = link(tmp_path, "back.txt", str(top / "src" / "real.txt"))
    via = link(top, "via.txt", str(back))
    assert resolve_write_target(top, via) == "src/real.txt"


def test_links_inside_and_plain_files_are_fine(top):
    assert resolve_write_target(top, top / "src" / "real.txt") == "src/real.txt"
    assert resolve_write_target(top, top / "new.txt") == "new.txt"  # not there yet, not a link
    inner = link(top, "alias.txt", "src/real.txt")
    assert resolve_write_target(top, inner) == "src/real.txt"  # where the write lands
    assert resolve(top, inner) == "alias.txt"
    dangling = link(top, "later.txt", "src/made-later.txt")
    assert resolve_write_target(top, dangling) == "src/made-later.txt"


def test_a_loop_is_not_an_error_here(top):
    """Writing through a loop fails on its own (ELOOP); the check neither hangs nor lets anything out."""
    link(top, "a.txt", "b.txt")
    link(top, "b.txt", "a.txt")
    assert resolve_write_target(top, top / "a.txt") in ("a.txt", "b.txt")


def test_what_resolve_refuses_stays_refused(top, tmp_path):
    with pytest.raises(PathError, match="outside"):
        resolve_write_target(top, tmp_path / "outside.txt")
    with pytest.raises(PathError, match="inside .git"):
        resolve_write_target(top, top / ".git" / "config")
    link(tmp_path, "dirlink", str(top / ".git"))
    with pytest.raises(PathError):
        resolve_write_target(top, top / "src" / ".." / ".git" / "HEAD")


def test_a_link_to_the_repository_itself_is_refused(top):
    path = link(top, "self", ".")
    with pytest.raises(PathError, match="repository itself"):
        resolve_write_target(top, path)
