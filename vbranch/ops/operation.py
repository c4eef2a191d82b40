"""One operation from start to finish: what every command that changes the state runs in.

    with operation(ws, Kind.LAND, at) as tx:
        ...                                     # read the state, write objects, plan
        tx.finish(detail, intent, save)         # log it and carry it out

`operation` takes the state lock, finishes an operation a killed process left
half done (oplog.finish_interrupted), and folds in the working tree's unseen changes
(recording.fold_unseen; `fold=False` for the commands that do not read the working
files). `tx.finish` is oplog.perform: the store change (`save`) and the log row
with its intent in one store transaction, then the intent carried out. A block
left without `finish` (a refusal, nothing to do, a dry run) logs nothing; any
objects it wrote are unreachable. This is jj's `start_transaction() … finish()`.

`up_to_date` is the same start without an operation to log (push reads the
state, then leaves the lock to talk to the remote; a commit folds, then plans
with the lock let go and checks under it what moved meanwhile: committing._commit).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

from vbranch.ops.intent import Intent, Kind
from vbranch.ops.oplog import finish_interrupted, perform
from vbranch.state.workspace import Workspace


@contextmanager
def up_to_date(ws: Workspace, at: str, fold: bool = True, lock=None):
    """The state lock held (`lock`, else ws.lock), an interrupted operation finished, unseen changes folded in.

    Yields the warnings of finishing the interrupted operation.
    """
    with ws.lock if lock is None else lock:
        warnings = finish_interrupted(ws)
        if fold:
            from vbranch.record.recording import fold_unseen

            fold_unseen(ws, at)
        yield warnings


class Operation:
    """An operation being planned; `finish` logs and carries it out (once)."""

    def __init__(self, ws: Workspace, kind: Kind, at: str, warnings: list[str]):
        self.ws, self.kind, self.at = ws, kind, at
        self.warnings = warnings  # finishing an interrupted operation, then carrying this one out
        self.id: int | None = None  # its row in the oplog, once finished

    def finish(self, detail: dict, intent: Intent | None = None, save: Callable[[], None] | None = None) -> int:
        """Log the operation (`save` writes its store rows in the same transaction) and carry `intent` out."""
        self.id, found = perform(self.ws, self.at, self.kind, detail, intent or Intent(), save)
        self.warnings += found
        return self.id


@contextmanager
def operation(ws: Workspace, kind: Kind, at: str, fold: bool = True, lock=None):
    """Start an operation of `kind` on an up-to-date state (see the module doc); yields an Operation."""
    with up_to_date(ws, at, fold, lock) as warnings:
        yield Operation(ws, kind, at, warnings)
