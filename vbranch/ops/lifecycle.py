"""Setting the workspace up and taking it down: init and teardown (the git guard is git/precommit.py)."""
from __future__ import annotations

from pathlib import Path

from vbranch.errors import UsageError
from vbranch.git import gitcli, gitops
from vbranch.git.precommit import install_guard
from vbranch.ops.intent import Guard, IndexReset, Intent, Kind, RefUpdate
from vbranch.state import config
from vbranch.state.models import write_config
from vbranch.state.workspace import WORKSPACE_REF, Workspace, open_state


def init(start: Path | str, target: str | None, at: str) -> Workspace:
    """Record the base, point HEAD at a fresh workspace commit, install the guard."""
    ws = open_state(start)
    with ws.lock:
        if ws.active:
            raise UsageError(f"vbranch is already set up in {ws.top}", hint="`vbranch status` shows its state")
        head_ref = gitcli.symbolic_head(ws.top)
        if head_ref == WORKSPACE_REF:
            raise UsageError(
                "HEAD points at the vbranch workspace but no workspace is recorded",
                hint="check out your branch first (`git symbolic-ref HEAD refs/heads/main`)",
            )
        origin = head_ref or gitcli.rev_parse(ws.top, "HEAD")
        if origin is None:
            raise UsageError("HEAD points nowhere", hint="check out a branch first")
        target = target or head_ref
        base = gitcli.rev_parse(ws.top, target) if target else None
        if target and base is None and target != head_ref:
            raise UsageError(f"the target {target!r} names no commit", hint="give a branch or commit, e.g. --target main")
        with ws.store.tx():
            ws.store.reset_workspace()
            ws.store.clear_shelf()  # an earlier workspace's unapplied branches (their work stays in git)
            ws.store.set_meta("base", base or "")
            ws.store.set_meta("target", target or "")
            ws.store.set_meta("origin", origin)
            ws.store.set_meta("active", "1")
            ws.store.log_op(at, Kind.INIT.value, {"base": base, "target": target, "origin": origin})
        repo = gitops.open_repo(ws.top)
        workspace = gitops.make_commit(repo, gitops.tree_of(repo, base).id, [base] if base else [], "vbranch workspace\n")
        old = gitops.head_of(repo, WORKSPACE_REF)
        gitcli.update_refs(ws.top, [(WORKSPACE_REF, workspace, old)], "vbranch: init")
        gitcli.git(ws.top, "symbolic-ref", "HEAD", WORKSPACE_REF)
        gitcli.git(ws.top, "reset", "-q")  # index = base; the working tree is not touched
        install_guard(ws.top)
        write_config(ws.state_dir, config.load(ws.state_dir))
    from vbranch import tracefilter

    tracefilter.ensure(ws.state_dir)  # built once here, not by the first commands of every session at once
    return ws


def teardown(ws: Workspace, at: str) -> str:
    """Return HEAD to where init found it, keep every working file; branches stay.

    The scratch checkout of verified landings goes too (its files and its worktree
    registration), under the queue lock so that no verification runs in it meanwhile.
    """
    from vbranch.ops.operation import operation
    from vbranch.ops.verify import queue_lock, remove_scratch

    with queue_lock(ws):
        remove_scratch(ws)
        with operation(ws, Kind.TEARDOWN, at, fold=False) as tx:
            origin = ws.store.get_meta("origin")
            old = gitcli.rev_parse(ws.top, WORKSPACE_REF)
            intent = Intent(
                refs=[RefUpdate(WORKSPACE_REF, None, old)] if old else [], head=origin, index=IndexReset(), guard=Guard.REMOVE
            )
            tx.finish({"origin": origin, "workspace": old}, intent, lambda: ws.store.set_meta("active", "0"))
            return origin
