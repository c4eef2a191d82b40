"""The operations a user or an agent runs: commit, branches, land, update, undo and restore, rescue,
push, init and teardown, status; each reads as its plan inside `operation.operation()`."""
