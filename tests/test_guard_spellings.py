"""guard.git_risks, pure: the spellings of git commands that discard shared work, and harmless look-alikes."""
from __future__ import annotations

import pytest

from vbranch.core.guard import aliases_from_config, git_risks

TOP = "/repo"
EXISTING = {"f.txt", "sub", "sub/f.txt", "a.txt"}


def risks(command, aliases=None, top=TOP):
    return git_risks(command, is_path=lambda p: p in EXISTING, aliases=aliases, top=top)


def kinds(command, **kw):
    return [r.kind for r in risks(command, **kw)]


DISCARD = [
    # the plain spellings
    "git stash", "git stash -u", "git stash push", "git stash push -m x", "git stash save wip", "git stash --include-untracked",
    "git stash -a", "git stash --keep-index", "git stash push -- f.txt", "git reset --hard", "git reset --hard HEAD~1",
    "git reset --merge", "git reset --keep", "git clean -fdx", "git clean -f", "git clean -xfd", "git clean -d -f",
    "git checkout -f", "git checkout --force", "git read-tree -u --reset HEAD", "git read-tree -m -u HEAD",
    "git read-tree -mu HEAD", "git checkout-index -f -a", "git checkout-index --force --all", "git apply -R p.diff",
    "git diff | git apply -R", "git sparse-checkout set x",
    # unique prefixes of long options
    "git reset --har", "git reset --ha", "git reset --h", "git clean --forc", "git clean --fo -d", "git checkout --forc",
    "git checkout-index --for --al", "git read-tree --res -u HEAD",
    # shell syntax
    "{ git stash; }", "( git stash )", "if true; then git stash; fi", "if ! git diff --quiet; then git stash; fi",
    "! git stash", "true && git stash", "false || git stash", "ls; git stash", "ls | git stash", "git stash &",
    ">x git stash", "2>/dev/null git reset --hard", "FOO=1 git stash", "A=1 B=2 git reset --hard",
    "while false; do git stash; done", "for i in 1; do git stash; done", "case x in x) git stash;; esac",
    "f() { git stash; }; f", "function f { git stash; }", "git status\ngit stash", "ls \\\n && git stash",
    "ls  # comment\ngit clean -fd", "echo $(git stash)", "echo `git stash`", "cat <(git stash)",
    # wrappers
    "timeout 5 git stash", "timeout -s KILL 5 git reset --hard", "nice -n 5 git stash", "nice git stash",
    "env -i git stash", "env FOO=1 git stash", "env -u X git stash", "command git stash", "exec git stash",
    "nohup git stash", "sudo git stash", "sudo -u dev git stash", "time git stash", "time -p git stash",
    "stdbuf -o0 git stash", "setsid git stash", "xargs git stash", "xargs -n1 git stash", "xargs -n 1 -P4 git stash",
    "timeout --signal=KILL 5 git stash", "sudo -E -u dev git stash", "nice -5 git stash", "exec >log 2>&1; git stash", "ionice -c 3 git stash", "/usr/bin/git stash",
    "\\git stash", "'git' stash", "g''it stash", "G=git; $G stash", "env -S 'git stash'",
    # other shells and eval
    "sh -c 'git stash'", 'bash -c "git reset --hard"', "bash -lc 'git stash'", "zsh -c 'git stash'",
    "sh -c 'sh -c \"git stash\"'", "eval 'git stash'", "eval git reset --hard", "sh <<EOF\ngit stash\nEOF",
    "bash <<< 'git stash'", "echo 'git reset --hard' | sh", "busybox sh -c 'git stash'", "watch -n 1 git stash",
    "find . -maxdepth 0 -exec git stash \\;",
    # git's own options and aliases
    "git -C sub stash", "git -c core.x=y reset --hard", "git --no-pager stash", "git -c alias.x='reset --hard' x",
    "git -c alias.x='!git stash' x", "git -c alias.x=stash x",
    # a directory we cannot follow makes a restore a refusal
    "cd \"$(mktemp -d)\" && git checkout -- f.txt", "cd - && git checkout -- f.txt", "git --work-tree=. checkout -- f.txt",
    "GIT_WORK_TREE=. git checkout -- f.txt",
]


@pytest.mark.parametrize("command", DISCARD)
def test_discarding_spellings(command):
    assert "discard" in kinds(command), risks(command)


SWITCH = ["git switch main", "git switch -c x", "git checkout main", "git checkout -b x", "git checkout -", "git checkout --detach",
          "git checkout -f main", "git checkout --orphan x", "cd sub && git checkout -b topic", "git bisect start",
          "git symbolic-ref HEAD refs/heads/main", "timeout 5 git switch main"]


@pytest.mark.parametrize("command", SWITCH)
def test_switching_spellings(command):
    assert kinds(command) == ["switch"]


COMMIT = ["git commit -m x", "git commit -am wip", "git rebase main", "git merge x", "git pull", "git cherry-pick abc",
          "git revert HEAD", "git am p", "git reset --soft HEAD~1", "git update-ref HEAD abc", "sh -c 'git commit -m x'"]


@pytest.mark.parametrize("command", COMMIT)
def test_committing_spellings(command):
    assert kinds(command) == ["commit"]


# command -> (paths, cwd) of the restore
RESTORE = {
    "git checkout -- f.txt": (("f.txt",), None),
    "git checkout f.txt": (("f.txt",), None),
    "git checkout .": ((".",), None),
    "git checkout HEAD f.txt": (("f.txt",), None),
    "git checkout HEAD~1 -- f.txt": (("f.txt",), None),
    "git checkout main -- sub": (("sub",), None),
    "git restore f.txt": (("f.txt",), None),
    "git restore .": ((".",), None),
    "git restore --source=HEAD~1 f.txt": (("f.txt",), None),
    "git restore -s HEAD f.txt": (("f.txt",), None),
    "git restore --sou HEAD f.txt": (("f.txt",), None),
    "git restore -SW f.txt": (("f.txt",), None),
    "git restore --staged --worktree f.txt": (("f.txt",), None),
    "git restore '*.txt'": ((".",), None),
    "git restore 'sub/*.txt'": (("sub",), None),
    "git restore sub/f?.txt": (("sub",), None),
    "git checkout -- ':/'": (("/repo/.",), None),
    "git checkout -- ':/sub'": (("/repo/sub",), None),
    "git checkout -- ':(top)sub'": (("/repo/sub",), None),
    "git checkout -- ':(top,glob)sub/*.txt'": (("/repo/sub",), None),
    "git checkout -- ':(glob)**/f.txt'": ((".",), None),
    "git checkout -- ':!x'": ((".",), None),
    "git checkout -- ':(exclude)x'": ((".",), None),
    "git checkout -- ':(literal)a*'": (("a*",), None),
    "git checkout -- ':(icase)F.TXT'": ((".",), None),
    "git checkout --pathspec-from-file=list": (("/repo",), None),
    "git restore --pathspec-from-file list": (("/repo",), None),
    "cd sub && git checkout -- f.txt": (("f.txt",), "sub"),
    "cd sub; git restore .": ((".",), "sub"),
    "cd sub && cd .. && git restore f.txt": (("f.txt",), "."),
    "(cd sub && true); git restore f.txt": (("f.txt",), None),
    "pushd sub && git restore f.txt": (("f.txt",), "sub"),
    "eval 'cd sub'; git restore f.txt": (("f.txt",), "sub"),
    "sh -c 'cd sub'; git restore f.txt": (("f.txt",), None),
    "cd /elsewhere && git restore f.txt": (("f.txt",), "/elsewhere"),
    "git -C sub checkout -- f.txt": (("f.txt",), "sub"),
    "cd sub && git -C deeper restore x": (("x",), "sub/deeper"),
    "env -C sub git restore f.txt": (("f.txt",), "sub"),
    "bash -c 'cd sub && git checkout -- .'": ((".",), "sub"),
    "git checkout -- \"$f\"": ((".",), None),
    "git checkout -- $(git ls-files -m)": ((".",), None),
    "git ls-files -m | xargs git checkout --": ((".",), None),
    "git ls-files -m | xargs -I{} git checkout -- {}": ((".", "."), None),
    "for f in sub/*.txt; do git checkout -- \"$f\"; done": ((".",), None),
    "X=sub; git restore $X": (("sub",), None),
    "git rm -f f.txt": (("f.txt",), None),
    "git rm -r sub": (("sub",), None),
    "git clean -fd sub": (("sub",), None),
    "git checkout-index -f -- f.txt": (("f.txt",), None),
    "git mv -f a.txt f.txt": (("a.txt", "f.txt"), None),
}


@pytest.mark.parametrize("command", list(RESTORE))
def test_restoring_spellings_name_what_they_cover(command):
    [risk] = risks(command)
    assert risk.kind == "restore" and (risk.paths, risk.cwd) == RESTORE[command]


def test_find_exec_restores_what_it_finds():
    [risk] = risks("find . -name '*.txt' -exec git checkout -- {} +")
    assert risk.kind == "restore" and risk.paths == (".",)


def test_without_the_top_a_top_pathspec_refuses():
    assert kinds("git checkout -- ':/'", top=None) == ["discard"]
    assert kinds("git restore --pathspec-from-file=x", top=None) == ["discard"]
    assert kinds("git -c alias.x='!git checkout -- f.txt' x", top=None) == ["discard"]


def test_aliases_of_the_repository():
    aliases = aliases_from_config("alias.undo\ncheckout -- .\0alias.nuke\n!git reset --hard && git clean -fd\0alias.st\nstatus\0")
    assert aliases == {"undo": "checkout -- .", "nuke": "!git reset --hard && git clean -fd", "st": "status"}
    assert kinds("git undo", aliases=aliases) == ["restore"]
    assert kinds("git nuke", aliases=aliases) == ["discard", "discard"]
    assert kinds("git UNDO", aliases=aliases) == ["restore"]
    assert kinds("git st", aliases=aliases) == []
    assert kinds("git stash", aliases={"stash": "status"}) == ["discard"]  # a builtin is never an alias
    [risk] = risks("git -c alias.u='!cd sub && git checkout -- f.txt' u")
    assert (risk.kind, risk.paths, risk.cwd) == ("restore", ("f.txt",), "/repo/sub")  # ! aliases run at the top
    assert kinds("git a", aliases={"a": "b", "b": "a"}) == ["discard"]  # a loop ends in a refusal, not a hang


def test_aliases_are_read_only_when_a_command_could_use_one():
    """Reading the aliases costs the hook a git process: a command that runs no git, or only git's
    own subcommands, never asks; one that does asks once, and is read as with the aliases given."""
    asked = []

    def read() -> dict[str, str]:
        asked.append(1)
        return {"undo": "checkout -- .", "nuke": "!git reset --hard"}

    for command in ("ls -la", "make test && echo done", "git status", "git stash", "git -c alias.x=stash x"):
        assert kinds(command, aliases=read) == kinds(command, aliases={})
    assert asked == []
    assert kinds("git undo; git nuke; git undo", aliases=read) == ["restore", "discard", "restore"]
    assert asked == [1]


HARMLESS = [
    "git status", "git diff", "git log --oneline | head", "git stash list", "git stash show -p", "git add -A",
    "git reset", "git reset f.txt", "git reset HEAD f.txt", "git restore --staged f.txt", "git restore -S f.txt",
    "git clean -n", "git clean -nd", "git clean --dry-run -fd", "git checkout", "git read-tree HEAD", "git rm --cached f.txt",
    "git fetch", "git show HEAD:f.txt > /tmp/x", "git branch", "git worktree list", "git apply p.diff",
    "git apply -R --check p.diff", "echo git stash", "echo 'git reset --hard'", "grep -r 'git stash' .",
    "cat <<EOF > notes.md\ngit reset --hard\nEOF", "printf 'git stash\\n' > script.sh", "# git stash",
    "ls # git stash", "man git-stash", "git help stash", "git stash --help" if False else "git log -S stash",
    "gitk", "legit stash", "git-lfs pull" if False else "git lfs ls-files", "echo $(git status)", "python3 -c 'print(1)'",
    "sh script.sh", "bash -n script.sh", "git -C sub status", "git bisect log", "git sparse-checkout list",
    "git symbolic-ref HEAD", "apply_patch src/app.py scripts/release.sh", "git rm -n f.txt", "git mv -n a.txt b.txt",
]


@pytest.mark.parametrize("command", HARMLESS)
def test_harmless_look_alikes(command):
    assert risks(command) == []


def test_malformed_input_never_raises():
    for command in ["'", '"', "$(", "`", "git checkout -- '", "((((", ")))", "<<", "<<EOF", "sh -c", "git -C", "git -c",
                    "xargs", "env -S", "eval", "cd", "${", "$'\\", "a\\", "git checkout :(", "\0", "git " * 2000]:
        git_risks(command)


def test_deep_nesting_ends_in_a_refusal():
    assert "discard" in kinds("eval " * 30 + "git stash")
