"""Who owns what: the status report, built from the store's records.

`collect` builds it as plain data in the shape of models.StatusReport: what `vbranch
status` prints, without importing pydantic (a quarter of a second). `status` validates
it into that model, for `status --json` and the library.
"""
from __future__ import annotations

from vbranch.core.ownership import ABSENT, SYMLINK, UNATTRIBUTED, FileOwnership, OwnedSpan, is_binary, spans
from vbranch.git import gitcli
from vbranch.record.recording import fold_unseen
from vbranch.state.workspace import Workspace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vbranch.state.models import StatusReport


def status(ws: Workspace, at: str) -> StatusReport:
    from vbranch.state.models import StatusReport

    return StatusReport.model_validate(collect(ws, at))


def collect(ws: Workspace, at: str) -> dict:
    fold_unseen(ws, at)
    records = [rec for rec in ws.store.files() if rec.changed]
    branches = ws.store.branches()
    names = {b.id: b.name for b in branches}
    heads = _heads(ws, [b.ref for b in branches])
    sessions = ws.store.sessions()
    verified = ws.store.verifications()
    base = ws.base
    out = []
    for branch in branches:
        files = owned_files(records, branch.id)
        head = heads.get(branch.ref)
        out.append({
            "name": branch.name,
            "ref": branch.ref,
            "head": head,
            "applied": branch.applied,
            "sessions": [{"id": s.id, "agent": s.agent, "ended": s.ended_at is not None} for s in sessions if s.branch_id == branch.id],
            "files": files,
            "landing": landing_state(verified.get(branch.name), base, head, bool(files)),
        })
    return {
        "base": base,
        "target": ws.target,
        "branches": out,
        "unattributed": owned_files(records, UNATTRIBUTED),
        "contested": [contest for rec in records for contest in _contests(rec, names, sessions)],
        "rescue": [
            {"path": k.path, "branch": names.get(k.branch_id, str(k.branch_id)), "at": k.at, "by": k.by}
            for k in ws.store.kept_for_rescue()
        ],
        "tracer": dict(zip(("mode", "why"), tracer_mode(ws))),
    }


def landing_state(found, base: str | None, head: str | None, owns: bool) -> dict:
    """models.Landing: verified (this head, on this target), failed (the last verification did, until
    the next one: a queue rebases a held-out branch, so its head moves without new work), else
    waiting, or nothing to land."""
    if found is not None and not found.landed:
        if found.exit_code != 0:
            return {"state": "failed", "target": found.target, "command": found.command,
                    "exit_code": found.exit_code, "tail": found.tail, "at": found.at}
        if found.target == base and found.head == (head or base):
            return {"state": "verified", "target": found.target, "command": found.command, "exit_code": 0, "at": found.at}
    if head in (None, base) and not owns:
        return {"state": "nothing"}
    return {"state": "waiting"}


def tracer_mode(ws: Workspace) -> tuple[str, str]:
    """How Bash commands are attributed here, and why: what the last command that ran showed."""
    from vbranch.record.recording import TRACER_LAST

    last = ws.store.get_meta(TRACER_LAST) or ""
    if last == "traced":
        return "process", "commands run under the command tracer (seccomp user notification)"
    if last:
        return "window", f"the last command ran without the tracer: {last.partition(':')[2].strip()}"
    return "window", (
        "no command has run under the tracer yet: `vbranch install` sets Claude Code's CLAUDE_CODE_SHELL_PREFIX to it "
        "(another OS, or a prefix of your own, leaves time windows)"
    )


def owned_files(records: list[FileOwnership], owner: int) -> list[dict]:
    """The changes `owner` alone owns, file by file (models.FileLines)."""
    out = []
    for rec in records:
        if rec.is_whole:
            if rec.owners == (owner,):
                out.append({"path": rec.path, "lines": [], "deleted": [], "whole": True, "change": change_kind(rec)})
            continue
        mine = [s for s in spans(rec.items) if s.owners == (owner,)]
        if mine:
            lines = [s.inserted for s in mine if s.inserted]
            deleted = [s.deleted for s in mine if s.deleted]
            out.append({"path": rec.path, "lines": lines, "deleted": deleted, "whole": False, "change": "modified"})
    return out


def change_kind(rec: FileOwnership) -> str:
    if rec.base == ABSENT:
        return "added"
    if rec.known == ABSENT:
        return "deleted"
    if rec.known.mode == SYMLINK or rec.base.mode == SYMLINK:
        return "symlink"
    if is_binary(rec.known.data) or is_binary(rec.base.data):
        return "binary"
    return "mode"


def _contests(rec: FileOwnership, names: dict[int, str], sessions) -> list[dict]:
    if rec.is_whole:
        found = [OwnedSpan(rec.owners, None, None)] if len(rec.owners) > 1 else []
    else:
        found = [s for s in spans(rec.items) if len(s.owners) > 1]
    return [
        {
            "path": rec.path,
            "lines": span.inserted,
            "removed": span.removed,
            "branches": [names.get(o, str(o)) for o in span.owners if o != UNATTRIBUTED],
            "sessions": [s.id for s in sessions if s.branch_id in span.owners],
            "unattributed": UNATTRIBUTED in span.owners,
        }
        for span in found
    ]


def _heads(ws: Workspace, refs: list[str]) -> dict[str, str]:
    if not refs:
        return {}
    out = gitcli.git(ws.top, "for-each-ref", "--format=%(refname) %(objectname)", *refs)
    return dict(line.split(" ", 1) for line in out.decode().splitlines())
