"""SQLite state under the git directory: schema, migrations, rows in and out.

WAL and a busy timeout let many hook processes read and write at once; every
multi-step change also holds the inter-process lock (lock.py), so a
read-modify-write of a file's ownership never interleaves with another.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import zlib
from collections import namedtuple
from pathlib import Path

from vbranch.core.ownership import FileOwnership, FileState, inserted_lines, lines_of, rebuilt, runs, split_lines
from vbranch.errors import StateError

SCHEMA_VERSION = 11

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE branches (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        applied INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        branch_id INTEGER NOT NULL REFERENCES branches(id),
        agent TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        ended_at TEXT
    );
    CREATE TABLE files (
        path TEXT PRIMARY KEY,
        base BLOB NOT NULL,
        known BLOB NOT NULL,
        items TEXT,
        owners TEXT NOT NULL,
        stat TEXT
    );
    CREATE TABLE oplog (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        op TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        session TEXT,
        branch_id INTEGER,
        path TEXT NOT NULL,
        source TEXT NOT NULL
    );
    """,
    # 2: agent hooks. A session exists before its first change (branch_id NULL until
    # then) and remembers its prompts; per-file write leases; open tool windows.
    2: """
    CREATE TABLE sessions_v2 (
        id TEXT PRIMARY KEY,
        branch_id INTEGER REFERENCES branches(id),
        agent TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        ended_at TEXT,
        first_prompt TEXT NOT NULL DEFAULT '',
        prompt TEXT NOT NULL DEFAULT '',
        turn_started_at TEXT
    );
    INSERT INTO sessions_v2(id, branch_id, agent, created_at, ended_at)
        SELECT id, branch_id, agent, created_at, ended_at FROM sessions;
    DROP TABLE sessions;
    ALTER TABLE sessions_v2 RENAME TO sessions;
    ALTER TABLE events ADD COLUMN agent_id TEXT;
    CREATE TABLE leases (
        path TEXT PRIMARY KEY,
        session TEXT NOT NULL,
        tool_use_id TEXT NOT NULL,
        expires REAL NOT NULL
    );
    CREATE TABLE windows (
        tool_use_id TEXT PRIMARY KEY,
        session TEXT NOT NULL,
        started REAL NOT NULL,
        before TEXT NOT NULL,
        partial INTEGER NOT NULL DEFAULT 0
    )
    """,
    # 3: the watcher's live dirty set: paths that changed, and when.
    3: """
    CREATE TABLE dirty (
        path TEXT PRIMARY KEY,
        changed REAL NOT NULL
    )
    """,
    # 4: landing and recovery. Each operation keeps the state before and after it
    # (refs, ownership, branches; file records by content hash in op_records) and,
    # until its refs and files are in place, the intent it is carrying out
    # (`pending`). An unapplied branch's ownership waits in `shelf`.
    4: """
    ALTER TABLE oplog ADD COLUMN before BLOB;
    ALTER TABLE oplog ADD COLUMN after BLOB;
    ALTER TABLE oplog ADD COLUMN pending TEXT;
    ALTER TABLE oplog ADD COLUMN undone_by INTEGER;
    CREATE INDEX oplog_pending ON oplog(pending) WHERE pending IS NOT NULL;
    CREATE TABLE op_records (
        hash TEXT PRIMARY KEY,
        data BLOB NOT NULL
    );
    CREATE TABLE shelf (
        branch_id INTEGER NOT NULL,
        path TEXT NOT NULL,
        saved BLOB NOT NULL,
        left_behind BLOB NOT NULL,
        PRIMARY KEY (branch_id, path)
    )
    """,
    # 5: the command tracer. When each path was last read from disk into its record
    # (time.time_ns()): a traced write event before that is already folded in. And the
    # tool calls waiting for a file's lease, first come first served.
    5: """
    CREATE TABLE folds (
        path TEXT PRIMARY KEY,
        ns INTEGER NOT NULL
    );
    CREATE TABLE lease_queue (
        ticket INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL,
        session TEXT NOT NULL,
        tool_use_id TEXT NOT NULL,
        seen REAL NOT NULL
    );
    CREATE INDEX lease_queue_path ON lease_queue(path, ticket)
    """,
    # 6: the guard by effect. A branch's version of a file from before another change
    # took some of its work away (rescue.py), until `vbranch rescue` puts it back.
    6: """
    CREATE TABLE rescue (
        path TEXT NOT NULL,
        branch_id INTEGER NOT NULL,
        base BLOB NOT NULL,
        version BLOB NOT NULL,
        at TEXT NOT NULL,
        by TEXT,
        PRIMARY KEY (path, branch_id)
    )
    """,
    # 7: commit in O(change). What a branch's commit was last built from: the head it
    # built (or found unchanged) over which base, and the digest of every record as it
    # read it. A cache of facts about immutable commits, never part of a snapshot: a
    # branch whose head and base are still those and whose records have the same
    # digests needs no tree built; otherwise only the records whose digest differs.
    7: """
    CREATE TABLE commit_heads (
        branch_id INTEGER PRIMARY KEY,
        head TEXT NOT NULL,
        base TEXT NOT NULL
    );
    CREATE TABLE commit_marks (
        branch_id INTEGER NOT NULL,
        path TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (branch_id, path)
    )
    """,
    # 8: the process of the agent whose tool call holds a lease (Claude Code's), so that a
    # lease whose agent died is free at once, and one whose agent lives is waited for.
    8: """
    ALTER TABLE leases ADD COLUMN pid INTEGER
    """,
    # 9: the last verification of each branch (`vbranch land --verify`): the target commit and
    # branch head it ran against, the command, its exit status (NULL: timed out or did not
    # start) and the tail of its output. A log, never part of a snapshot; keyed by name so it
    # outlives the branch row a landing retires.
    9: """
    CREATE TABLE verifications (
        branch TEXT PRIMARY KEY,
        target TEXT,
        head TEXT,
        tree TEXT,
        command TEXT NOT NULL,
        exit_code INTEGER,
        tail TEXT NOT NULL,
        at TEXT NOT NULL,
        landed INTEGER NOT NULL DEFAULT 0
    )
    """,
    # 10: each record's digest (record_digest of its packed form, as snapshots name it), written
    # with the record: an operation's snapshots and a commit's marks read the digests instead of
    # packing and hashing every record (three times per operation). NULL for a row written before
    # (or by an older vbranch): computed from the row when read.
    10: """
    ALTER TABLE files ADD COLUMN digest TEXT
    """,
    # 11: a line-owned record's file (`known`) may be kept as only its inserted lines (_pack_known);
    # nothing to change in the tables, but a vbranch older than this one could not read those.
    11: "",
}


class BranchRow(namedtuple("BranchRow", "id name applied created_at")):
    __slots__ = ()

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.name}"


# branch_id is None until the session's first change.
SessionRow = namedtuple(
    "SessionRow",
    "id branch_id agent created_at ended_at first_prompt prompt turn_started_at",
    defaults=("", "", None),
)


# A command's run: the state of files when it started. `before` maps paths to their
# signatures; a partial window covers only those paths (else every path: unlisted ones
# were clean).
Window = namedtuple("Window", "id session started before partial")


def _window(row) -> Window:
    return Window(row[0], row[1], row[2], json.loads(row[3]), bool(row[4]))


# An operation in the log: `undone_by` is the undo that reverted it, if any.
OpRow = namedtuple("OpRow", "id at op detail undone_by restorable")


SESSION_COLUMNS = "id, branch_id, agent, created_at, ended_at, first_prompt, prompt, turn_started_at"


Verification = namedtuple("Verification", "branch target head tree command exit_code tail at landed")


class Store:
    """One connection to the state database; use `with store.tx():` to write."""

    def __init__(self, path: Path, any_thread: bool = False):
        """`any_thread`: the connection may move between threads, used by one at a time (WorkspacePool)."""
        self.path = path
        # Which file this connection opens (found first: if it is replaced meanwhile, the two differ
        # and a WorkspacePool drops the connection rather than keep one on a deleted file).
        self.file_id = store_file_id(path)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=not any_thread)
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        if any_thread:  # kept open in a pool (WorkspacePool): SQLite's default page cache is 2 MB per connection
            self.db.execute("PRAGMA cache_size = -256")
        self.migrate()

    def close(self) -> None:
        self.db.close()

    def tx(self):
        return _Transaction(self.db)

    def snapshot(self) -> _Snapshot:
        """A read transaction begun now: this connection reads the state as it is now until the
        snapshot is closed, while others go on writing (WAL). Write nothing through it meanwhile."""
        return _Snapshot(self.db)

    def migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state database {self.path} has schema {version}, newer than this vbranch knows ({SCHEMA_VERSION})",
                hint="upgrade vbranch",
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.tx():
                if self.db.execute("PRAGMA user_version").fetchone()[0] >= target:
                    continue  # another process migrated first
                # executescript would commit on its own: run the statements one by one
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {target}")

    # meta

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # branches

    def branches(self) -> list[BranchRow]:
        rows = self.db.execute("SELECT id, name, applied, created_at FROM branches ORDER BY id").fetchall()
        return [BranchRow(r[0], r[1], bool(r[2]), r[3]) for r in rows]

    def branch_by_name(self, name: str) -> BranchRow | None:
        return next((b for b in self.branches() if b.name == name), None)

    def branch_by_id(self, branch_id: int) -> BranchRow | None:
        return next((b for b in self.branches() if b.id == branch_id), None)

    def add_branch(self, name: str, at: str) -> BranchRow:
        cur = self.db.execute("INSERT INTO branches(name, applied, created_at) VALUES (?, 1, ?)", (name, at))
        return BranchRow(cur.lastrowid, name, True, at)

    def rename_branch(self, branch_id: int, name: str) -> None:
        self.db.execute("UPDATE branches SET name = ? WHERE id = ?", (name, branch_id))

    def delete_branch(self, branch_id: int) -> None:
        # Its sessions go on, and get a new branch at their next change.
        self.db.execute("UPDATE sessions SET branch_id = NULL WHERE branch_id = ?", (branch_id,))
        self.db.execute("DELETE FROM branches WHERE id = ?", (branch_id,))

    # sessions

    def session(self, session_id: str) -> SessionRow | None:
        row = self.db.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return SessionRow(*row) if row else None

    def sessions(self) -> list[SessionRow]:
        rows = self.db.execute(f"SELECT {SESSION_COLUMNS} FROM sessions ORDER BY created_at")
        return [SessionRow(*r) for r in rows]

    def add_session(self, session_id: str, branch_id: int | None, agent: str, at: str) -> SessionRow:
        self.db.execute(
            "INSERT INTO sessions(id, branch_id, agent, created_at) VALUES (?, ?, ?, ?)",
            (session_id, branch_id, agent, at),
        )
        return SessionRow(session_id, branch_id, agent, at, None)

    def set_session_branch(self, session_id: str, branch_id: int) -> None:
        self.db.execute("UPDATE sessions SET branch_id = ? WHERE id = ?", (branch_id, session_id))

    def start_turn(self, session_id: str, prompt: str, at: str) -> None:
        self.db.execute(
            "UPDATE sessions SET prompt = ?, turn_started_at = ?, ended_at = NULL,"
            " first_prompt = CASE WHEN first_prompt = '' THEN ? ELSE first_prompt END WHERE id = ?",
            (prompt, at, prompt, session_id),
        )

    def end_session(self, session_id: str, at: str | None) -> None:
        """Mark a session ended (at a time) or live again (None, on resume)."""
        self.db.execute("UPDATE sessions SET ended_at = ? WHERE id = ?", (at, session_id))

    # file ownership

    def file(self, path: str) -> FileOwnership | None:
        row = self.db.execute("SELECT path, base, known, items, owners, stat FROM files WHERE path = ?", (path,)).fetchone()
        return _file_from_row(row) if row else None

    def files(self) -> list[FileOwnership]:
        rows = self.db.execute("SELECT path, base, known, items, owners, stat FROM files ORDER BY path").fetchall()
        return [_file_from_row(r) for r in rows]

    def contested_files(self) -> list[FileOwnership]:
        """The records that may hold a contested change (all those `conflicts` finds one in), by path.

        Told by their owner lists alone, before anything is unpacked: a prompt's check of what its
        session shares need not unpack every record of the tree.
        """
        rows = self.db.execute("SELECT path, items, owners FROM files ORDER BY path").fetchall()
        shared = [path for path, items, owners in rows if _SHARED.search(owners if items is None else items)]
        return [rec for path in shared if (rec := self.file(path)) is not None]

    def stats(self) -> dict[str, tuple | None]:
        """Each recorded path's stat signature as last folded: what a snapshot compares, without the records."""
        rows = self.db.execute("SELECT path, stat FROM files").fetchall()
        return {path: None if stat is None else tuple(json.loads(stat)) for path, stat in rows}

    def has_file(self, path: str) -> bool:
        return self.db.execute("SELECT 1 FROM files WHERE path = ?", (path,)).fetchone() is not None

    def paths(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT path FROM files")]

    def put_file(self, rec: FileOwnership) -> None:
        """Store the record; one that holds no change and is its base is dropped: no record means that."""
        if not rec.changed and rec.known == rec.base:
            self.delete_file(rec.path)
            return
        base, known, items = _pack_states(rec)
        owners = json.dumps(list(rec.owners))
        self.db.execute(
            "INSERT OR REPLACE INTO files(path, base, known, items, owners, stat, digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                rec.path, base, known, items, owners,
                None if rec.stat is None else json.dumps(list(rec.stat)),
                record_digest(_pack_row(base, known, items, owners)),
            ),
        )

    def keep_for_rescue(self, path: str, branch_id: int, base: FileState, version: FileState, at: str, by: str | None) -> None:
        """The first loss is kept: a later one of the same work takes away from a version already reduced."""
        self.db.execute(
            "INSERT OR IGNORE INTO rescue(path, branch_id, base, version, at, by) VALUES (?, ?, ?, ?, ?, ?)",
            (path, branch_id, _pack_state(base), _pack_state(version), at, by),
        )

    def rescue_keys(self) -> list[tuple[str, int]]:
        """(path, branch) of each kept version, in kept_for_rescue's order, without unpacking them."""
        return [tuple(row) for row in self.db.execute("SELECT path, branch_id FROM rescue ORDER BY at, path")]

    def kept_for_rescue(self, paths: list[str] | None = None):
        from vbranch.core.losses import Kept

        rows = self.db.execute("SELECT path, branch_id, base, version, at, by FROM rescue ORDER BY at, path")
        return [
            Kept(path, branch_id, _unpack_state(base), _unpack_state(version), at, by)
            for path, branch_id, base, version, at, by in rows
            if paths is None or path in paths
        ]

    def drop_rescue(self, path: str, branch_id: int) -> None:
        self.db.execute("DELETE FROM rescue WHERE path = ? AND branch_id = ?", (path, branch_id))

    def delete_file(self, path: str) -> None:
        self.db.execute("DELETE FROM files WHERE path = ?", (path,))

    def reset_workspace(self) -> None:
        """Forget ownership, sessions and branches (the refs stay in git); keep the logs."""
        for table in ("files", "sessions", "branches"):
            self.db.execute(f"DELETE FROM {table}")

    # raw records: a file's ownership as bytes, for the operation log's snapshots

    def raw_files(self) -> dict[str, bytes]:
        """Every record packed as bytes (its stat signature left out), keyed by path."""
        rows = self.db.execute("SELECT path, base, known, items, owners FROM files")
        return {r[0]: _pack_row(r[1], r[2], r[3], r[4]) for r in rows}

    def unkept_records(self) -> dict[str, bytes]:
        """The packed records (by digest) that op_records does not hold yet: what a snapshot of now
        must keep. Records unchanged since the last operation are neither read nor hashed."""
        rows = self.db.execute(
            "SELECT f.base, f.known, f.items, f.owners FROM files f"
            " WHERE f.digest IS NULL OR NOT EXISTS (SELECT 1 FROM op_records r WHERE r.hash = f.digest)"
        )
        packed = [_pack_row(*row) for row in rows]
        return {record_digest(p): p for p in packed}

    def keep_records(self, records: dict[str, bytes]) -> None:
        """Store packed records by their hash (once each) for snapshots to refer to."""
        self.db.executemany("INSERT OR IGNORE INTO op_records(hash, data) VALUES (?, ?)", list(records.items()))

    def kept_record(self, digest: str) -> bytes:
        row = self.db.execute("SELECT data FROM op_records WHERE hash = ?", (digest,)).fetchone()
        if row is None:
            raise StateError(f"the operation log lost a file record ({digest})", hint="this snapshot cannot be restored")
        return row[0]

    # commit marks (migration 7): what each branch's head was built from

    def commit_marks(self, branch_id: int) -> tuple[str, str, dict[str, str]] | None:
        """(head, base, {path: record digest}) the branch's head was built from; None if unknown."""
        row = self.db.execute("SELECT head, base FROM commit_heads WHERE branch_id = ?", (branch_id,)).fetchone()
        if row is None:
            return None
        marks = self.db.execute("SELECT path, digest FROM commit_marks WHERE branch_id = ?", (branch_id,))
        return row[0], row[1], dict(marks.fetchall())

    def set_commit_marks(self, branch_id: int, head: str, base: str, changed: dict[str, str | None], replace: bool) -> None:
        """Record what `head` was built from: `changed` digests (None: the record is gone), all of them if `replace`."""
        self.db.execute("INSERT OR REPLACE INTO commit_heads(branch_id, head, base) VALUES (?, ?, ?)", (branch_id, head, base))
        if replace:
            self.db.execute("DELETE FROM commit_marks WHERE branch_id = ?", (branch_id,))
        gone = [(branch_id, p) for p, d in changed.items() if d is None]
        if gone:
            self.db.executemany("DELETE FROM commit_marks WHERE branch_id = ? AND path = ?", gone)
        self.db.executemany(
            "INSERT OR REPLACE INTO commit_marks(branch_id, path, digest) VALUES (?, ?, ?)",
            [(branch_id, p, d) for p, d in changed.items() if d is not None],
        )

    def prune_commit_marks(self) -> None:
        """Forget the marks of branches that are gone."""
        self.db.execute("DELETE FROM commit_marks WHERE branch_id NOT IN (SELECT id FROM branches)")
        self.db.execute("DELETE FROM commit_heads WHERE branch_id NOT IN (SELECT id FROM branches)")

    # bounded logs: compaction of the oplog, op_records and events (bounds in oplog.py)

    def snapshot_ops(self) -> list[int]:
        """Ids of the operations that still hold snapshots, oldest first."""
        return [r[0] for r in self.db.execute("SELECT id FROM oplog WHERE before IS NOT NULL ORDER BY id")]

    def drop_snapshots(self, up_to: int) -> None:
        """Operations up to `up_to` keep their row (for `oplog`) but no longer their snapshots."""
        self.db.execute("UPDATE oplog SET before = NULL, after = NULL WHERE id <= ? AND pending IS NULL", (up_to,))

    def drop_ops(self, up_to: int) -> None:
        """Forget operations up to `up_to` entirely (never one still being carried out)."""
        self.db.execute("DELETE FROM oplog WHERE id <= ? AND pending IS NULL", (up_to,))

    def op_ids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM oplog ORDER BY id")]

    def snapshot_blobs(self):
        """Every kept snapshot (before and after), packed."""
        for before, after in self.db.execute("SELECT before, after FROM oplog WHERE before IS NOT NULL"):
            yield before
            if after is not None:
                yield after

    def drop_records_except(self, keep: set[str]) -> int:
        """Delete kept records no snapshot refers to; returns how many went."""
        gone = [(h,) for (h,) in self.db.execute("SELECT hash FROM op_records") if h not in keep]
        self.db.executemany("DELETE FROM op_records WHERE hash = ?", gone)
        return len(gone)

    def count_records(self) -> int:
        return self.db.execute("SELECT count(*) FROM op_records").fetchone()[0]

    def op_at(self, op_id: int) -> str | None:
        row = self.db.execute("SELECT at FROM oplog WHERE id = ?", (op_id,)).fetchone()
        return row[0] if row else None

    def prune_events(self, before: str | None, keep_rows: int) -> None:
        """Drop events older than `before` (None: no age limit), and all but the newest `keep_rows`."""
        if before is not None:
            self.db.execute("DELETE FROM events WHERE at < ?", (before,))
        top = self.db.execute("SELECT max(id) FROM events").fetchone()[0]
        if top is not None:
            self.db.execute("DELETE FROM events WHERE id <= ?", (top - keep_rows,))

    def count_events(self) -> int:
        return self.db.execute("SELECT count(*) FROM events").fetchone()[0]

    def raw_digests(self) -> dict[str, str]:
        """Every record's digest (record_digest of its packed form), by path."""
        digests = dict(self.db.execute("SELECT path, digest FROM files"))
        for path, base, known, items, owners in self.db.execute(
            "SELECT path, base, known, items, owners FROM files WHERE digest IS NULL"
        ):
            digests[path] = record_digest(_pack_row(base, known, items, owners))
        return digests

    # operations with snapshots and intents

    def begin_op(self, at: str, op: str, detail: dict, before: bytes, after: bytes, pending: dict | None) -> int:
        cur = self.db.execute(
            "INSERT INTO oplog(at, op, detail, before, after, pending) VALUES (?, ?, ?, ?, ?, ?)",
            (at, op, json.dumps(detail), before, after, None if pending is None else json.dumps(pending)),
        )
        return cur.lastrowid

    def finish_op(self, op_id: int) -> None:
        self.db.execute("UPDATE oplog SET pending = NULL WHERE id = ?", (op_id,))

    def last_op_id(self) -> int:
        return self.db.execute("SELECT coalesce(max(id), 0) FROM oplog").fetchone()[0]

    def ops_after(self, op_id: int) -> list[tuple[str, dict]]:
        """(kind, detail) of every operation logged after `op_id`, oldest first."""
        rows = self.db.execute("SELECT op, detail FROM oplog WHERE id > ? ORDER BY id", (op_id,))
        return [(r[0], json.loads(r[1])) for r in rows]

    def pending_ops(self) -> list[tuple[int, str, dict]]:
        rows = self.db.execute("SELECT id, op, pending FROM oplog WHERE pending IS NOT NULL ORDER BY id")
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def op_rows(self) -> list[OpRow]:
        """Every operation, oldest first, without its snapshots."""
        rows = self.db.execute("SELECT id, at, op, detail, undone_by, before IS NOT NULL FROM oplog ORDER BY id")
        return [OpRow(r[0], r[1], r[2], json.loads(r[3]), r[4], bool(r[5])) for r in rows]

    def op_snapshots(self, op_id: int) -> tuple[bytes | None, bytes | None]:
        row = self.db.execute("SELECT before, after FROM oplog WHERE id = ?", (op_id,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def set_undone(self, op_id: int, by: int | None) -> None:
        self.db.execute("UPDATE oplog SET undone_by = ? WHERE id = ?", (by, op_id))

    # rows as they were: restoring a snapshot

    def put_branch(self, row: BranchRow) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO branches(id, name, applied, created_at) VALUES (?, ?, ?, ?)",
            (row.id, row.name, int(row.applied), row.created_at),
        )

    def set_applied(self, branch_id: int, applied: bool) -> None:
        self.db.execute("UPDATE branches SET applied = ? WHERE id = ?", (int(applied), branch_id))

    # the shelf: an unapplied branch's ownership, as it was and what it left behind

    def put_shelf(self, branch_id: int, path: str, saved: bytes, left_behind: bytes) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO shelf(branch_id, path, saved, left_behind) VALUES (?, ?, ?, ?)",
            (branch_id, path, saved, left_behind),
        )

    def shelf(self, branch_id: int | None = None) -> list[tuple[int, str, bytes, bytes]]:
        sql = "SELECT branch_id, path, saved, left_behind FROM shelf"
        rows = self.db.execute(sql + " ORDER BY branch_id, path") if branch_id is None else self.db.execute(
            sql + " WHERE branch_id = ? ORDER BY path", (branch_id,)
        )
        return [tuple(r) for r in rows]

    def clear_shelf(self, branch_id: int | None = None) -> None:
        if branch_id is None:
            self.db.execute("DELETE FROM shelf")
        else:
            self.db.execute("DELETE FROM shelf WHERE branch_id = ?", (branch_id,))

    # logs

    def log_op(self, at: str, op: str, detail: dict) -> int:
        cur = self.db.execute("INSERT INTO oplog(at, op, detail) VALUES (?, ?, ?)", (at, op, json.dumps(detail)))
        return cur.lastrowid

    def folded_at(self, path: str) -> int:
        row = self.db.execute("SELECT ns FROM folds WHERE path = ?", (path,)).fetchone()
        return row[0] if row else 0

    def set_folded(self, path: str, ns: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO folds(path, ns) VALUES (?, ?)", (path, ns))

    def log_event(
        self, at: str, session: str | None, branch_id: int | None, path: str, source: str, agent_id: str | None = None
    ) -> None:
        self.db.execute(
            "INSERT INTO events(at, session, branch_id, path, source, agent_id) VALUES (?, ?, ?, ?, ?, ?)",
            (at, session, branch_id, path, source, agent_id),
        )

    def events(self) -> list[tuple]:
        return self.db.execute("SELECT at, session, branch_id, path, source, agent_id FROM events ORDER BY id").fetchall()

    def paths_changed_since(self, session: str, at: str) -> list[str]:
        rows = self.db.execute(
            "SELECT DISTINCT path FROM events WHERE session = ? AND at >= ? ORDER BY path", (session, at)
        )
        return [r[0] for r in rows]

    # write leases: a file being written by one session's tool call

    def lease(self, path: str) -> tuple[str, str, float] | None:
        row = self.db.execute("SELECT session, tool_use_id, expires FROM leases WHERE path = ?", (path,)).fetchone()
        return tuple(row) if row else None

    def put_lease(self, path: str, session: str, tool_use_id: str, expires: float, pid: int | None = None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO leases(path, session, tool_use_id, expires, pid) VALUES (?, ?, ?, ?, ?)",
            (path, session, tool_use_id, expires, pid),
        )

    def lease_pid(self, path: str) -> int | None:
        row = self.db.execute("SELECT pid FROM leases WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def enqueue(self, path: str, session: str, tool_use_id: str, now: float) -> int:
        cursor = self.db.execute(
            "INSERT INTO lease_queue(path, session, tool_use_id, seen) VALUES (?, ?, ?, ?)", (path, session, tool_use_id, now)
        )
        return cursor.lastrowid

    def touch_ticket(self, ticket: int, now: float) -> None:
        self.db.execute("UPDATE lease_queue SET seen = ? WHERE ticket = ?", (now, ticket))

    def first_waiter(self, path: str, seen_after: float) -> tuple[int, str] | None:
        """The oldest ticket for `path` whose waiter is still polling, and its session."""
        row = self.db.execute(
            "SELECT ticket, session FROM lease_queue WHERE path = ? AND seen >= ? ORDER BY ticket LIMIT 1", (path, seen_after)
        ).fetchone()
        return tuple(row) if row else None

    def drop_ticket(self, ticket: int) -> None:
        self.db.execute("DELETE FROM lease_queue WHERE ticket = ?", (ticket,))

    def release_leases(self, session: str, tool_use_id: str | None = None) -> None:
        """Release one tool call's leases, or (None) all of a session's."""
        if tool_use_id is None:
            self.db.execute("DELETE FROM leases WHERE session = ?", (session,))
        else:
            self.db.execute("DELETE FROM leases WHERE session = ? AND tool_use_id = ?", (session, tool_use_id))

    # tool windows: a command running, with the state of the files when it started

    def open_window(self, tool_use_id: str, session: str, started: float, before: dict, partial: bool = False) -> None:
        """A window covers every path (`before` lists the dirty ones), or only `before`'s if partial."""
        self.db.execute(
            "INSERT OR REPLACE INTO windows(tool_use_id, session, started, before, partial) VALUES (?, ?, ?, ?, ?)",
            (tool_use_id, session, started, json.dumps(before), int(partial)),
        )

    def window(self, tool_use_id: str) -> Window | None:
        row = self.db.execute(
            "SELECT tool_use_id, session, started, before, partial FROM windows WHERE tool_use_id = ?", (tool_use_id,)
        ).fetchone()
        return _window(row) if row else None

    def close_window(self, tool_use_id: str) -> None:
        self.db.execute("DELETE FROM windows WHERE tool_use_id = ?", (tool_use_id,))

    def windows(self) -> list[Window]:
        rows = self.db.execute("SELECT tool_use_id, session, started, before, partial FROM windows ORDER BY started")
        return [_window(r) for r in rows]

    # the watcher's dirty set

    def mark_dirty(self, paths: list[str], when: float) -> None:
        """Mark paths changed at `when`; a path marked later keeps its later mark (the watcher's
        seed marks what changed before it started, and may write after it marked a new change)."""
        self.db.executemany(
            "INSERT INTO dirty(path, changed) VALUES (?, ?)"
            " ON CONFLICT(path) DO UPDATE SET changed = max(changed, excluded.changed)",
            [(p, when) for p in paths],
        )

    def forget_dirty(self, paths: list[str], up_to: float) -> None:
        """Take paths out of the dirty set, but not one marked after `up_to` (changed again since)."""
        self.db.executemany("DELETE FROM dirty WHERE path = ? AND changed <= ?", [(p, up_to) for p in paths])

    def dirty_since(self, when: float) -> dict[str, float]:
        """Paths the watcher saw change at or after `when`, with the time of their last change."""
        rows = self.db.execute("SELECT path, changed FROM dirty WHERE changed >= ?", (when,))
        return dict(rows.fetchall())

    def prune_windows(self, older_than: float) -> None:
        self.db.execute("DELETE FROM windows WHERE started < ?", (older_than,))

    def drop_windows(self, session: str) -> None:
        self.db.execute("DELETE FROM windows WHERE session = ?", (session,))

    # verifications (`vbranch land --verify`)

    def put_verification(self, v: "Verification") -> None:
        with self.tx():
            self.db.execute(
                "INSERT OR REPLACE INTO verifications(branch, target, head, tree, command, exit_code, tail, at, landed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (v.branch, v.target, v.head, v.tree, v.command, v.exit_code, v.tail, v.at, int(bool(v.landed))),
            )

    def set_verification_landed(self, branch: str) -> None:
        with self.tx():
            self.db.execute("UPDATE verifications SET landed = 1 WHERE branch = ?", (branch,))

    def verification(self, branch: str) -> "Verification | None":
        row = self.db.execute(
            "SELECT branch, target, head, tree, command, exit_code, tail, at, landed FROM verifications WHERE branch = ?", (branch,)
        ).fetchone()
        return Verification(*row[:8], bool(row[8])) if row else None

    def verifications(self) -> "dict[str, Verification]":
        rows = self.db.execute("SELECT branch, target, head, tree, command, exit_code, tail, at, landed FROM verifications").fetchall()
        return {r[0]: Verification(*r[:8], bool(r[8])) for r in rows}


def pack_record(rec: FileOwnership) -> bytes:
    """A record as bytes, its stat signature left out (snapshots and the shelf keep these)."""
    return _pack_row(*_pack_states(rec), json.dumps(list(rec.owners)))


def unpack_record(path: str, packed: bytes) -> FileOwnership:
    base, known, items, owners = _unpack_row(packed)
    return _file_from_row((path, base, known, items, owners, None))


def record_digest(packed: bytes) -> str:
    """A packed record's name in snapshots and op_records."""
    from hashlib import sha1  # here: a hook that writes no record need not load hashlib

    return sha1(packed).hexdigest()


def _pack_row(base: bytes, known: bytes, items: str | None, owners: str) -> bytes:
    # "len(base) len(known) len(items)|-1\n" then the four fields back to back.
    items_b = b"" if items is None else items.encode()
    header = b"%d %d %d\n" % (len(base), len(known), -1 if items is None else len(items_b))
    return header + base + known + items_b + owners.encode()


def _unpack_row(packed: bytes) -> tuple[bytes, bytes, str | None, str]:
    header, _, body = packed.partition(b"\n")
    n_base, n_known, n_items = (int(x) for x in header.split())
    base, known = body[:n_base], body[n_base:n_base + n_known]
    rest = body[n_base + n_known:]
    items = None if n_items < 0 else rest[:n_items].decode()
    return base, known, items, rest[max(n_items, 0):].decode()


def store_file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the database file, None without one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


class _Snapshot:
    """BEGIN … COMMIT around reads only: in WAL mode the snapshot is taken at the first read."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        db.execute("BEGIN")
        db.execute("SELECT 1 FROM meta LIMIT 1").fetchall()

    def close(self) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _pack_states(rec: FileOwnership) -> tuple[bytes, bytes, str | None]:
    """The record's base, file and alignment (None for a whole-file record), packed."""
    if rec.items is None:
        return _pack_state(rec.base), _pack_state(rec.known), None
    item_runs = runs(rec.items)
    counts = [(op, n) for (op, _owners), n in item_runs]
    return _pack_state(rec.base), _pack_known(rec, counts), _pack_items(item_runs)


# A line-owned record's file is its base's kept lines and its own inserted ones: kept as only those
# inserted lines (this mark ends the header), it is packed without compressing the whole file again at
# every write (~7 ms for 750 KB at zlib's fastest) and is a few bytes instead of a fourth of the file.
KNOWN_AS_INSERTED = b"i"


def _pack_known(rec: FileOwnership, counts: list[tuple[str, int]]) -> bytes:
    lines = lines_of(rec.known.data)
    inserted = inserted_lines(counts, lines)
    # Checked, not assumed: a record whose alignment did not rebuild its file is kept whole.
    if inserted is None or rebuilt(rec.base.data, counts, inserted) != rec.known.data:
        return _pack_state(rec.known)
    header = b"%d %o %s\n" % (rec.known.exists, rec.known.mode, KNOWN_AS_INSERTED)
    return header + zlib.compress(b"".join(inserted), 1)


def _unpack_known(path: str, blob: bytes, base: FileState, counts) -> FileState:
    header, _, body = blob.partition(b"\n")
    fields = header.split()
    if len(fields) == 2:
        return _unpack_state(blob)
    inserted = split_lines(zlib.decompress(body))
    data = rebuilt(base.data, counts, inserted)
    if data is None:  # (checked when packed: only a database changed by hand gets here)
        raise StateError(f"the record of {path} does not fit its base", hint="the state database was changed outside vbranch")
    return FileState(fields[0] == b"1", int(fields[1], 8), data)


def _pack_state(state: FileState) -> bytes:
    # A header line "exists mode" then the zlib-compressed bytes.
    header = f"{int(state.exists)} {state.mode:o}\n".encode()
    return header + _packed.get(state.data, _compress)


def _compress(data: bytes) -> bytes:
    packed = zlib.compress(data, 1)
    _unpacked.put(packed, data)  # what the next read of this state unpacks: no need to decompress it then
    return packed


def _unpack_state(blob: bytes) -> FileState:
    header, _, body = blob.partition(b"\n")
    exists, mode = header.split()
    return FileState(exists == b"1", int(mode, 8), _unpacked.get(body, zlib.decompress))


class _Recent:
    """Recent results of a pure function of bytes, keyed by those bytes, up to `budget` bytes of keys
    and results (least recently used out).

    Every put of a record packs its base again, and every read unpacks it: for a 750 KB file, ~8 ms
    to compress and ~4 ms to decompress, at each hook on that file; and a commit reads every record.
    Kept here, a base is packed once; and since an unpacked one is the same bytes object each time,
    its hash is computed once too. Looking up costs a hash of the key (~0.5 ns a byte), unpacking
    ~20 ns a packed byte: only tiny data is cheaper to redo. The watcher's threads share these,
    hence the lock. A state packed is put in the unpacked cache too: the next read of the record
    finds it there.
    """

    def __init__(self, budget: int, from_size: int):
        self.budget, self.from_size = budget, from_size
        self.results: dict[bytes, bytes] = {}
        self.size = 0  # of the keys and results kept
        self.lock = threading.Lock()

    def get(self, key: bytes, make) -> bytes:
        if len(key) < self.from_size:
            return make(key)
        with self.lock:
            found = self.results.pop(key, None)
            if found is not None:
                self.results[key] = found  # the most recently used last: a base read at every hook stays
        if found is None:
            found = make(key)
            self.put(key, found)
        return found

    def put(self, key: bytes, result: bytes) -> None:
        cost = len(key) + len(result)
        if len(key) < self.from_size or cost > self.budget:
            return
        with self.lock:
            old = self.results.pop(key, None)
            self.size += cost - (0 if old is None else len(key) + len(old))
            self.results[key] = result
            while self.size > self.budget:
                first = next(iter(self.results))
                self.size -= len(first) + len(self.results.pop(first))


_packed = _Recent(budget=16 << 20, from_size=4 << 10)  # data -> compressed
_unpacked = _Recent(budget=32 << 20, from_size=1 << 10)  # compressed -> data


# A list of two owners or more, in the JSON of a record's items or whole-file owners (only owner lists
# start with a number: the runs start with their op).
_SHARED = re.compile(r"\[-?\d+,")


def _pack_items(item_runs: list) -> str:
    # Run-length encoded: [[op, count, owners], ...] (ownership.runs: a large file's are a few long ones)
    return json.dumps([[op, n, list(owners)] for (op, owners), n in item_runs], separators=(",", ":"))


def _unpack_items(text: str) -> tuple[list, list[tuple[str, int]]]:
    """The alignment, and its runs as (op, count)."""
    items, counts = [], []
    for op, count, owners in json.loads(text):
        items.extend([(op, tuple(owners))] * count)
        counts.append((op, count))
    return items, counts


def _file_from_row(row) -> FileOwnership:
    path, base, known, items, owners, stat = row
    base_state = _unpack_state(base)
    if items is None:
        alignment, known_state = None, _unpack_state(known)
    else:
        alignment, counts = _unpack_items(items)
        known_state = _unpack_known(path, known, base_state, counts)
    return FileOwnership(
        path, base_state, known_state, alignment, tuple(json.loads(owners)), None if stat is None else tuple(json.loads(stat)),
    )
