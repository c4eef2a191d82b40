"""Pushing a virtual branch: it is a real git branch already, so this is `git push` with care.

The branch's committed head goes to `refs/heads/<name>` on the remote. A
branch rebased by a landing has new commits, so the push may replace the
remote's: `--force-with-lease` does that only when the remote still has what
we last saw there (our remote-tracking ref), never someone else's new work.
"""
from __future__ import annotations

from dataclasses import dataclass

from vbranch.errors import GitError, UsageError
from vbranch.git import gitcli
from vbranch.state.workspace import Workspace, require_branch


@dataclass
class PushReport:
    branch: str
    remote: str
    head: str
    uncommitted: list[str]  # owned paths whose changes are not in the pushed commit


def push(ws: Workspace, name: str, remote: str | None, at: str) -> PushReport:
    from vbranch.git import gitops
    from vbranch.ops.committing import branch_changes
    from vbranch.ops.operation import up_to_date

    with up_to_date(ws, at):
        row = require_branch(ws, name)
        head = gitcli.rev_parse(ws.top, row.ref)
        if head is None:
            raise UsageError(f"{name} has no commits to push", hint=f"`vbranch commit {name}` first")
        remote = choose_remote(ws, remote)
        repo = gitops.open_repo(ws.top)
        head_tree = gitops.tree_of(repo, head)
        changes = branch_changes(ws.store.files(), row.id)
        uncommitted = sorted(p for p, state in changes.items() if gitops.state_at(repo, head_tree, p) != state)
    # The push itself runs without the state lock: it may wait on the network.
    lease = f"{row.ref}:{expected_there(ws, remote, row.ref, head) or ''}"
    gitcli.push(ws.top, remote, f"{row.ref}:{row.ref}", lease)
    return PushReport(name, remote, head, uncommitted)


def expected_there(ws: Workspace, remote: str, ref: str, head: str) -> str | None:
    """What the remote may hold for `ref` for us to replace it: our last push, or nothing.

    Our remote-tracking ref says what we last saw; without one (a remote given
    as a path) the remote's value counts only if this branch once had it.
    """
    if remote in gitcli.remotes(ws.top):
        seen = gitcli.rev_parse(ws.top, f"refs/remotes/{remote}/{ref.removeprefix('refs/heads/')}")
        if seen:
            return seen
    there = gitcli.remote_head(ws.top, remote, ref)
    if there is None or there in gitcli.reflog(ws.top, ref) or gitcli.is_ancestor(ws.top, there, head):
        return there
    raise GitError(
        f"{remote} has {ref} at {there[:12]}, a commit this branch never had",
        hint="someone else pushed there: fetch it and look before replacing it",
    )


def choose_remote(ws: Workspace, given: str | None) -> str:
    """The remote named, else `origin`, else the only one; a path or URL is taken as it is."""
    names = gitcli.remotes(ws.top)
    if given:
        gitcli.remote_arg(given)  # `--upload-pack=CMD` would run CMD: never an option
        if given in names or "/" in given or ":" in given:
            return given
        raise UsageError(f"no remote named {given!r}", hint=f"known remotes: {', '.join(names) or 'none'} (a path or URL works too)")
    if "origin" in names:
        return "origin"
    if len(names) == 1:
        return names[0]
    raise UsageError(
        "which remote?" if names else "this repository has no remote",
        hint="pass --remote NAME (a path or URL works too)" if names else "`git remote add NAME URL`, or pass --remote PATH",
    )
