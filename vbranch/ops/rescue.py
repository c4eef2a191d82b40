"""Work another change took away, kept and put back: the guard by effect.

Whatever removes or overwrites a branch's uncommitted lines (a `git checkout`
in any spelling, a script, `rm`, a formatter), the fold that sees it happen
compares each other branch's version of the file before and after (its base
plus only its own changes). One that lost something is kept here, in the
`rescue` table, as it was; `vbranch rescue` merges it back into the working
file (three-way, against the base) and gives those lines back to their branch.
No spelling of a command matters: only what happened to the file.
"""
from __future__ import annotations

from vbranch.core.losses import restored
from vbranch.state import leases


def rescue(ws, paths: list[str] | None, at: str) -> tuple[list[str], list[str]]:
    """Put kept work back into the working files (all, or of `paths`): (restored, clashing) paths.

    One operation: undone by `vbranch undo` like any other. A file under a tool's
    write lease is left for later (clashing), as `update` does.
    """
    from vbranch.core.ownership import FileOwnership, new_record
    from vbranch.git import gitops
    from vbranch.ops.intent import Intent, Kind
    from vbranch.ops.operation import operation
    from vbranch.ops.oplog import file_write

    with operation(ws, Kind.RESCUE, at) as tx:
        repo = gitops.open_repo(ws.top)
        base_tree = gitops.tree_of(repo, ws.base)
        before: dict[str, FileOwnership] = {}
        records: dict[str, FileOwnership] = {}  # each path after every kept version of it is back
        done, clashing = [], []
        for kept in ws.store.kept_for_rescue(paths):
            if kept.path not in before:
                before[kept.path] = ws.store.file(kept.path) or new_record(kept.path, gitops.state_at(repo, base_tree, kept.path))
            back = restored(records.get(kept.path) or before[kept.path], kept)
            if back is None or leases.live(ws, kept.path):
                clashing.append(kept.path)
                continue
            records[kept.path] = back
            done.append(kept)
        writes = [file_write(repo, p, before[p].known, rec.known) for p, rec in records.items() if rec.known != before[p].known]

        def save() -> None:
            for rec in records.values():
                rec.stat = None
                ws.store.put_file(rec)
            for kept in done:
                ws.store.drop_rescue(kept.path, kept.branch_id)

        if done:
            tx.finish({"paths": sorted(records)}, Intent(writes=writes), save)
        return sorted({k.path for k in done}), sorted(set(clashing))
