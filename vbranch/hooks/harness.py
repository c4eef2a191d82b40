"""Shared harness state outside the repository: Claude Code's auto memory, skills, CLAUDE.md files.

Every session of one repository shares these files (the auto-memory directory is
`<config>/projects/<repository path, each non-alphanumeric character made '-'>/memory/`,
checked on 2.1.197 and the newest release; `autoMemoryDirectory` moves it). The model
writes them with Write/Edit at absolute paths, so two sessions updating one note from
stale reads would be last-write-wins, silently. Here they get line ownership without
branches (owners are per-session numbers in `ownership.record_change`), a guard, and a
journal of every version:

- `record_read` (PostToolUse of Read): what the session has now seen of the file.
- `check_write` (PreToolUse of Write/Edit/MultiEdit): a deny reason when the write would
  drop or change lines another live session added that this session never saw.
- `record_write` (PostToolUse of Write/Edit/MultiEdit): the new version journaled,
  ownership updated, and the session has seen it.
- `log` / `restore` (and `cli_log` / `cli_restore`): the journal, and any version put back.

State: `.git/vbranch/harness.db` (SQLite, WAL), this module's own; ownership is computed
on Claude Code's view of a file (decoded, CRLF as LF), the journal keeps the disk's bytes.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import zlib
from pathlib import Path

from vbranch.core import endings, guard
from vbranch.core.ownership import REGULAR, FileOwnership, FileState, record_change
from vbranch.git.worktree import sha1  # the builtin module: hashlib would load OpenSSL on every Read's hook
from vbranch.hooks import contract as claude
from vbranch.state.clock import now

WRITE_TOOLS = ("Write", "Edit", "MultiEdit")
DB_NAME = "harness.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS actors (num INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS records (path TEXT PRIMARY KEY, base BLOB NOT NULL, known BLOB NOT NULL, items TEXT);
CREATE TABLE IF NOT EXISTS seen (path TEXT NOT NULL, session TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (path, session));
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, version INTEGER NOT NULL,
    session TEXT, at TEXT NOT NULL, kind TEXT NOT NULL, exists_ INTEGER NOT NULL, sha TEXT NOT NULL, data BLOB NOT NULL,
    UNIQUE (path, version)
);
"""


# ---------------------------------------------------------------- which files


def config_dir() -> Path:
    """Claude Code's configuration directory: $CLAUDE_CONFIG_DIR, else ~/.claude."""
    env = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(env).expanduser() if env else Path(os.path.expanduser("~")) / ".claude"


def project_key(path: Path | str) -> str:
    """Claude Code's name for a project directory: every non-alphanumeric character made '-'."""
    return re.sub(r"[^A-Za-z0-9]", "-", str(path))


def _project_roots(ws) -> list[Path]:
    """The repository's paths Claude Code may name its project by: the top, and the main
    worktree's top (all worktrees of a repository share one memory directory)."""
    roots = [Path(ws.top)]
    common = Path(ws.git_dir)
    commondir = common / "commondir"
    if commondir.is_file():  # a linked worktree's git directory points at the shared one
        common = (common / commondir.read_text().strip()).resolve()
    if common.name == ".git":
        roots.append(common.parent)
    return list(dict.fromkeys(roots))


def _settings_files(ws) -> list[Path]:
    """Claude Code's settings files, lowest precedence first (managed settings win)."""
    top = Path(ws.top)
    return [
        config_dir() / "settings.json",
        top / ".claude" / "settings.json",
        top / ".claude" / "settings.local.json",
        Path("/etc/claude-code/managed-settings.json"),
    ]


def auto_memory_setting(ws) -> Path | None:
    """The `autoMemoryDirectory` the settings files name (the highest-precedence one), or None.

    A `--settings` file given on the command line is not visible here.
    """
    found = None
    for path in _settings_files(ws):
        try:
            value = json.loads(path.read_text()).get("autoMemoryDirectory")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str) and value.strip():
            found = value.strip()
    if found is None:
        return None
    where = Path(os.path.expanduser(found))
    return where if where.is_absolute() else Path(ws.top) / where


def memory_dirs(ws, transcript_path: str | None = None) -> list[Path]:
    """Every directory that holds this repository's auto memory."""
    projects = config_dir() / "projects"
    dirs = [projects / project_key(root) / "memory" for root in _project_roots(ws)]
    if transcript_path:  # the session's own project directory, as Claude Code named it
        dirs.append(Path(transcript_path).parent / "memory")
    configured = auto_memory_setting(ws)
    if configured is not None:
        dirs.append(configured)
    return list(dict.fromkeys(dirs))


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def is_shared(ws, abs_path: str | Path, transcript_path: str | None = None) -> bool:
    """True for a harness file all sessions of this repository share, outside the repository:
    its auto memory, the user's skills, CLAUDE.md files (user-level, or in a directory above
    the repository). Plans, scratch files and everything else outside are not."""
    if not abs_path:
        return False
    path = _real(abs_path)
    top = _real(ws.top)
    if _under(path, top):
        return False  # inside the repository: line ownership by branch, not ours
    if any(_under(path, _real(d)) for d in memory_dirs(ws, transcript_path)):
        return True
    config = _real(config_dir())
    if _under(path, config / "skills"):
        return True
    if path.name in ("CLAUDE.md", "CLAUDE.local.md"):
        if path.parent == config:
            return True
        folder = path.parent.parent if path.parent.name == ".claude" else path.parent
        if folder in top.parents:  # Claude Code loads CLAUDE.md from every directory above the project
            return True
    if path.parent == config / "rules" or _under(path, config / "rules"):
        return True
    return False


def _key(abs_path: str | Path) -> str:
    """The journal's name for a file: its real absolute path."""
    return str(_real(abs_path))


# ---------------------------------------------------------------- the database


def connect(ws) -> sqlite3.Connection:
    db = sqlite3.connect(Path(ws.state_dir) / DB_NAME, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=30000")
    db.executescript(SCHEMA)
    return db


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT: one session's check or record at a time."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, *rest):
        self.db.execute("ROLLBACK" if kind else "COMMIT")


def _actor(db: sqlite3.Connection, session: str) -> int:
    db.execute("INSERT OR IGNORE INTO actors (session) VALUES (?)", (session,))
    return db.execute("SELECT num FROM actors WHERE session = ?", (session,)).fetchone()[0]


def _sessions_by_actor(db: sqlite3.Connection) -> dict[int, str]:
    return dict(db.execute("SELECT num, session FROM actors"))


def _pack(data: bytes) -> bytes:
    return zlib.compress(data)


def _unpack(blob: bytes) -> bytes:
    return zlib.decompress(blob)


def _view(data: bytes) -> bytes:
    """Claude Code's view of a file's bytes, as UTF-8: what ownership is computed on."""
    return endings.view(data).encode("utf-8", "surrogatepass")


def _state(view: bytes) -> FileState:
    return FileState(True, REGULAR, view)


def _load(db: sqlite3.Connection, path: str) -> FileOwnership | None:
    row = db.execute("SELECT base, known, items FROM records WHERE path = ?", (path,)).fetchone()
    if row is None:
        return None
    items = [(op, tuple(owners)) for op, owners in json.loads(row[2])] if row[2] is not None else None
    return FileOwnership(path, _state(_unpack(row[0])), _state(_unpack(row[1])), items)


def _save(db: sqlite3.Connection, rec: FileOwnership) -> None:
    items = json.dumps([[op, list(owners)] for op, owners in rec.items]) if rec.items is not None else None
    db.execute(
        "INSERT OR REPLACE INTO records (path, base, known, items) VALUES (?, ?, ?, ?)",
        (rec.path, _pack(rec.base.data), _pack(rec.known.data), items),
    )


def _read_disk(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _last_version(db: sqlite3.Connection, path: str):
    return db.execute(
        "SELECT version, sha, exists_ FROM versions WHERE path = ? ORDER BY version DESC LIMIT 1", (path,)
    ).fetchone()


def _journal(db: sqlite3.Connection, path: str, data: bytes | None, session: str | None, kind: str, force: bool = False) -> int | None:
    """Keep this version of the file, unless it is the last one kept (or `force`); its number."""
    raw = data if data is not None else b""
    sha = sha1(raw).hexdigest()
    last = _last_version(db, path)
    if last is not None and not force and last[1] == sha and bool(last[2]) == (data is not None):
        return None
    number = (last[0] if last else 0) + 1
    db.execute(
        "INSERT INTO versions (path, version, session, at, kind, exists_, sha, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (path, number, session, now(), kind, int(data is not None), sha, _pack(raw)),
    )
    return number


def _current(db: sqlite3.Connection, path: str, disk: bytes | None) -> FileOwnership:
    """The record, brought up to the disk: a change nobody reported is folded in as nobody's
    (owner 0) and journaled. A file first seen starts with its content as the base."""
    view = _view(disk) if disk is not None else b""
    rec = _load(db, path)
    if rec is None:
        rec = FileOwnership(path, _state(view), _state(view), [("K", ())] * len(_lines(view)))
        _save(db, rec)
        if disk is not None:
            _journal(db, path, disk, None, "found")
        return rec
    if rec.known.data != view:
        rec = record_change(rec, _state(view), 0)
        _save(db, rec)
        _journal(db, path, disk, None, "changed outside the tools")
    return rec


def _lines(view: bytes) -> list[bytes]:
    from vbranch.core.ownership import split_lines

    return split_lines(view)


def _live(ws, session_ids: set[str]) -> set[str]:
    """The sessions not known to have ended (a session the store never heard of counts as live)."""
    ended = {s.id for s in ws.store.sessions() if s.ended_at is not None}
    return {s for s in session_ids if s not in ended}


# ---------------------------------------------------------------- the hooks


def _path_of(payload: dict) -> str | None:
    path = claude.tool_path(payload)
    if path is None:
        return None
    if not os.path.isabs(path):
        path = os.path.join(payload.get("cwd") or ".", path)
    return path


def shared_path(ws, payload: dict) -> str | None:
    """The absolute path of the file a Read/Write/Edit/MultiEdit payload names, when it is a shared
    harness file of this repository (else None): what handler.py asks before calling the rest."""
    path = _path_of(payload)
    return path if path is not None and is_shared(ws, path, payload.get("transcript_path")) else None


def record_read(ws, payload: dict) -> None:
    """PostToolUse of Read on a shared file: the session has now seen it.

    The whole file's view when the Read returned all of it; for a partial read, the
    file as it is now (the lines it did not show are taken as seen: it chose not to).
    """
    path = _path_of(payload)
    if path is None or not is_shared(ws, path, payload.get("transcript_path")):
        return
    key = _key(path)
    disk = _read_disk(key)
    response = payload.get("tool_response")
    file = response.get("file") if isinstance(response, dict) else None
    seen = _view(disk) if disk is not None else b""
    if isinstance(file, dict) and isinstance(file.get("content"), str):
        whole = file.get("startLine", 1) == 1 and file.get("numLines") == file.get("totalLines")
        if whole:
            seen = file["content"].encode("utf-8", "surrogatepass")
    db = connect(ws)
    try:
        with _Tx(db):
            _current(db, key, disk)
            db.execute("INSERT OR REPLACE INTO seen (path, session, data) VALUES (?, ?, ?)", (key, payload["session_id"], _pack(seen)))
    finally:
        db.close()


def check_write(ws, payload: dict) -> str | None:
    """PreToolUse of Write/Edit/MultiEdit on a shared file: a deny reason, or None to let it go.

    Refused: a write that drops or changes lines another live session added and that
    this session's last read (or write) of the file did not hold.
    """
    tool = payload.get("tool_name")
    path = _path_of(payload)
    if tool not in WRITE_TOOLS or path is None or not is_shared(ws, path, payload.get("transcript_path")):
        return None
    key = _key(path)
    session = payload["session_id"]
    disk = _read_disk(key)
    db = connect(ws)
    try:
        with _Tx(db):
            rec = _current(db, key, disk)
            proposed = claude.proposed_content(tool, payload.get("tool_input") or {}, disk)
            if proposed is None:
                return None  # an Edit whose old_string is missing: the tool refuses it itself
            new_view = _view(proposed)
            if new_view == rec.known.data:
                return None
            mine = _actor(db, session)
            names = _sessions_by_actor(db)
            live = _live(ws, {s for n, s in names.items() if n != mine and n != 0})
            protected = {n for n, s in names.items() if s in live}
            touched = guard.touched_lines(rec, _state(new_view), mine, protected)
            if not touched:
                return None
            row = db.execute("SELECT data FROM seen WHERE path = ? AND session = ?", (key, session)).fetchone()
            unseen = _unseen_lines(_unpack(row[0]) if row else None, rec.known.data)
            lost = []
            for t in touched:
                lines = [n for n in range(t.lines[0], t.lines[1] + 1) if n in unseen] if t.lines else sorted(unseen)
                if lines:
                    lost.append((lines, t.owners))
            if not lost:
                return None
    finally:
        db.close()
    return _reason(tool, path, lost, names, mine, row is not None)


def _unseen_lines(seen: bytes | None, current: bytes) -> set[int]:
    """1-based numbers of the current file's lines the session's last read or write did not hold."""
    from vbranch.core.ownership import diff_opcodes

    now_lines = _lines(current)
    if seen is None:
        return set(range(1, len(now_lines) + 1))
    out = set()
    for tag, _i1, _i2, j1, j2 in diff_opcodes(_lines(seen), now_lines):
        if tag != "equal":
            out.update(range(j1 + 1, j2 + 1))
    return out


def _spans(lines: list[int]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for n in lines:
        if spans and spans[-1][1] == n - 1:
            spans[-1] = (spans[-1][0], n)
        else:
            spans.append((n, n))
    return spans


def _reason(tool: str, path: str, lost: list, names: dict[int, str], mine: int, read: bool) -> str:
    parts = []
    for lines, owners in lost:
        where = ", ".join(f"line {a}" if a == b else f"lines {a}-{b}" for a, b in _spans(lines))
        who = ", ".join(f"session {names.get(o, o)}" for o in owners if o != mine)
        parts.append(f"{where} (added by {who})")
    why = "changed since your last read of it" if read else "never read in this session"
    return (
        f"vbranch: this {tool} would drop or change {path} {'; '.join(parts)}: a file every session of this "
        f"repository shares, {why}, and another live session wrote those lines after that. Read the file again "
        f"with the Read tool and merge: keep their lines and add yours. (`vbranch memory log {path}` lists every "
        "version; `vbranch memory restore` puts one back.)"
    )


def record_write(ws, payload: dict) -> int | None:
    """PostToolUse of Write/Edit/MultiEdit on a shared file: journal the new version, own its
    lines, and remember that the session has seen it. The version's number, or None."""
    tool = payload.get("tool_name")
    path = _path_of(payload)
    if tool not in WRITE_TOOLS or path is None or not is_shared(ws, path, payload.get("transcript_path")):
        return None
    if payload.get("hook_event_name") == "PostToolUseFailure":
        return None
    key = _key(path)
    session = payload["session_id"]
    response = payload.get("tool_response")
    original = response.get("originalFile") if isinstance(response, dict) else None
    disk = _read_disk(key)
    db = connect(ws)
    try:
        with _Tx(db):
            rec = _load(db, key)
            if rec is None:  # first sight: what the tool read is the base
                before = original.encode("utf-8", "surrogatepass") if isinstance(original, str) else None
                rec = _current(db, key, before)
            elif isinstance(original, str):
                read = original.encode("utf-8", "surrogatepass")
                if read != rec.known.data:  # changed between our last look and the tool's read: nobody's
                    rec = record_change(rec, _state(read), 0)
                    _journal(db, key, read, None, "changed outside the tools")
            view = _view(disk) if disk is not None else b""
            rec = record_change(rec, _state(view), _actor(db, session))
            _save(db, rec)
            number = _journal(db, key, disk, session, tool.lower())
            seen = _seen_after(db, key, session, tool, payload.get("tool_input") or {}, view)
            db.execute("INSERT OR REPLACE INTO seen (path, session, data) VALUES (?, ?, ?)", (key, session, _pack(seen)))
    finally:
        db.close()
    return number


def _seen_after(db: sqlite3.Connection, path: str, session: str, tool: str, tool_input: dict, view: bytes) -> bytes:
    """What the session knows of the file after its write: all of it after a Write (it wrote
    every line); after an Edit, what it had seen with its edit applied (the tool shows only a
    snippet, so lines of others it never read stay unseen), or the file if that cannot be told."""
    if tool == "Write":
        return view
    row = db.execute("SELECT data FROM seen WHERE path = ? AND session = ?", (path, session)).fetchone()
    if row is None:
        return view
    applied = claude.proposed_content(tool, tool_input, _unpack(row[0]))
    return _view(applied) if applied is not None else view


# ---------------------------------------------------------------- log and restore


def log(ws, path: str | None = None) -> list[dict]:
    """Every journaled version (of one file, or of all), oldest first: path, version, session,
    at, kind, exists, size, sha."""
    db = connect(ws)
    try:
        query = "SELECT path, version, session, at, kind, exists_, length(data), sha, data FROM versions"
        args: tuple = ()
        if path is not None:
            query += " WHERE path = ?"
            args = (_key(path),)
        rows = db.execute(query + " ORDER BY path, version", args).fetchall()
    finally:
        db.close()
    return [
        {"path": p, "version": v, "session": s, "at": at, "kind": k, "exists": bool(e),
         "size": len(_unpack(d)), "sha": sha, "lines": _unpack(d).count(b"\n")}
        for p, v, s, at, k, e, _n, sha, d in rows
    ]


def version_data(ws, path: str, version: int) -> bytes | None:
    """One journaled version's bytes (None: the file did not exist then)."""
    db = connect(ws)
    try:
        row = db.execute("SELECT exists_, data FROM versions WHERE path = ? AND version = ?", (_key(path), int(version))).fetchone()
    finally:
        db.close()
    if row is None:
        raise KeyError(f"{path} has no version {version} in the journal")
    return _unpack(row[1]) if row[0] else None


def restore(ws, path: str, version: int, session: str | None = None) -> dict:
    """Write a journaled version back as the file's content. The current content is journaled
    first (nothing is lost), then the restored one as a new version of kind "restore of N".
    Returns {"path", "restored", "saved", "version"}: the version put back, the number the
    content it replaced was kept as (None when it was kept already), the new version."""
    key = _key(path)
    data = version_data(ws, key, version)
    db = connect(ws)
    try:
        with _Tx(db):
            disk = _read_disk(key)
            last = _last_version(db, key)
            saved = _journal(db, key, disk, None, "before restore")
            if saved is None and last is not None:
                saved_as = last[0]
            else:
                saved_as = saved
            rec = _current(db, key, disk)
            if data is None:
                if disk is not None:
                    os.unlink(key)
            else:
                Path(key).parent.mkdir(parents=True, exist_ok=True)
                tmp = f"{key}.vbranch-restore.{os.getpid()}"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, key)
            view = _view(data) if data is not None else b""
            rec = record_change(rec, _state(view), 0 if session is None else _actor(db, session))
            _save(db, rec)
            number = _journal(db, key, data, session, f"restore of {version}", force=True)
            if session is not None:
                db.execute("INSERT OR REPLACE INTO seen (path, session, data) VALUES (?, ?, ?)", (key, session, _pack(view)))
    finally:
        db.close()
    return {"path": key, "restored": int(version), "saved": saved_as, "version": number}


# ---------------------------------------------------------------- the CLI


def _open(args):
    from vbranch.state.workspace import open_workspace

    return open_workspace(getattr(args, "C", None) or ".")


def cli_log(args) -> int:
    """`vbranch memory log [PATH]`: every version of the shared harness files (or of one)."""
    ws = _open(args)
    try:
        rows = log(ws, getattr(args, "path", None))
    finally:
        ws.close()
    if not rows:
        print("no versions of shared harness files journaled" + (f" for {args.path}" if getattr(args, "path", None) else ""))
        return 0
    current = None
    for row in rows:
        if row["path"] != current:
            current = row["path"]
            print(current)
        who = f"session {row['session']}" if row["session"] else "no session"
        what = f"{row['lines']} lines, {row['size']} bytes" if row["exists"] else "absent"
        print(f"  {row['version']:>4}  {row['at']}  {row['kind']:<26}  {who}  ({what})")
    return 0


def cli_restore(args) -> int:
    """`vbranch memory restore PATH VERSION`: put a journaled version back."""
    ws = _open(args)
    try:
        try:
            done = restore(ws, args.path, int(args.version), session=os.environ.get("CLAUDE_CODE_SESSION_ID"))
        except KeyError as error:
            print(f"vbranch: {error.args[0]}; `vbranch memory log {args.path}` lists them")
            return 1
    finally:
        ws.close()
    kept = f"; the content it replaced is version {done['saved']}" if done["saved"] is not None else ""
    print(f"restored {done['path']} to version {done['restored']} (now version {done['version']}){kept}")
    return 0
