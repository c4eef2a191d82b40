"""The synthetic-repository generator used by benchmarks and tests."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import corpus  # noqa: E402


def git(repo, *args, check=True):
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def ls_files(repo):
    return git(repo, "ls-files").stdout.split()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    # One shared read-only repo keeps the module fast; tests that edit make their own.
    return corpus.make_repo(tmp_path_factory.mktemp("corpus") / "r", 300, seed=7)


def test_files_are_committed_on_main_and_checked_out(repo):
    tracked = ls_files(repo)
    assert len(tracked) == 300
    assert all((repo / p).is_file() for p in tracked)
    assert git(repo, "status", "--porcelain").stdout == ""
    assert git(repo, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/main"
    assert git(repo, "rev-list", "--count", "HEAD").stdout.strip() == "1"


def test_identity_is_set_locally(repo):
    assert git(repo, "config", "--local", "user.name").stdout.strip() == corpus.NAME
    assert git(repo, "config", "--local", "user.email").stdout.strip() == corpus.EMAIL


def test_fsck_is_clean(repo):
    proc = git(repo, "fsck", "--full", "--strict", "--no-dangling")
    assert proc.stdout == "" and "error" not in proc.stderr and "warning" not in proc.stderr


def test_ignored_files_exist_but_are_not_tracked(repo):
    tracked = set(ls_files(repo))
    assert ".gitignore" in tracked
    for path in corpus.IGNORED_FILES:
        assert (repo / path).is_file()
        assert path not in tracked
        assert git(repo, "check-ignore", "-q", path, check=False).returncode == 0


def test_tree_is_nested_and_sizes_vary(repo):
    tracked = ls_files(repo)
    assert max(p.count("/") for p in tracked) >= 3
    assert any("/" not in p for p in tracked)  # some files at the top too
    sizes = {len((repo / p).read_bytes().splitlines()) for p in tracked}
    assert len(sizes) > 50


def test_same_seed_same_commit_other_seed_differs(tmp_path):
    a = corpus.make_repo(tmp_path / "a", 120, seed=1)
    b = corpus.make_repo(tmp_path / "b", 120, seed=1)
    c = corpus.make_repo(tmp_path / "c", 120, seed=2)
    head = lambda r: git(r, "rev-parse", "HEAD").stdout  # noqa: E731
    assert head(a) == head(b)
    assert head(a) != head(c)
    assert corpus.tracked_files(a) == corpus.tracked_files(b)


def test_commit_false_leaves_files_untracked(tmp_path):
    repo = corpus.make_repo(tmp_path / "r", 40, seed=3, commit=False)
    assert git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False).returncode != 0
    assert ls_files(repo) == []
    untracked = git(repo, "ls-files", "--others", "--exclude-standard").stdout.split()
    assert len(untracked) == 40
    assert not set(untracked) & set(corpus.IGNORED_FILES)


def test_commit_false_writes_the_same_files_as_commit_true(tmp_path):
    a = corpus.make_repo(tmp_path / "a", 60, seed=4)
    b = corpus.make_repo(tmp_path / "b", 60, seed=4, commit=False)
    for path in corpus.tracked_files(a, suffix=""):
        assert (a / path).read_bytes() == (b / path).read_bytes()


def test_pick_files_gives_disjoint_python_files(repo):
    picks = corpus.pick_files(repo, 4, 5, seed=9)
    flat = [p for group in picks for p in group]
    assert [len(g) for g in picks] == [5] * 4
    assert len(set(flat)) == 20
    assert all(p.endswith(".py") for p in flat)
    assert picks == corpus.pick_files(repo, 4, 5, seed=9)


def test_edit_files_changes_only_given_files_repeatably(tmp_path):
    a = corpus.make_repo(tmp_path / "a", 80, seed=5)
    b = corpus.make_repo(tmp_path / "b", 80, seed=5)
    s0, s1 = corpus.pick_files(a, 2, 3)
    for r in (a, b):
        corpus.edit_files(r, s0, 0)
        corpus.edit_files(r, s1, 1)
    changed = git(a, "diff", "--name-only").stdout.split()
    assert sorted(changed) == sorted(s0 + s1)
    assert git(a, "diff").stdout == git(b, "diff").stdout
    assert b"session 1" in (a / s1[0]).read_bytes()
    # Two hunks per file: the first line and an appended one.
    numstat = git(a, "diff", "--numstat", "--", s0[0]).stdout.split()
    assert numstat[:2] == ["2", "1"]
