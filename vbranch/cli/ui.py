"""Everything vbranch prints: the only module that imports rich.

rich drops styling when output is not a terminal, so piped output stays
plain text. Inside `captured()` this thread prints into buffers instead, for
another process's terminal: the watcher runs commands for clients that way
(cli/served.py), one thread per client.
"""
from __future__ import annotations

import io
import os
import sys
import threading
from contextlib import contextmanager

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from vbranch.errors import VbranchError

# NO_COLOR wins over FORCE_COLOR: a pipe then gets plain text whatever else is set.
_plain = {"force_terminal": False, "no_color": True} if os.environ.get("NO_COLOR") else {}
out = Console(highlight=False, soft_wrap=True, **_plain)
err = Console(stderr=True, highlight=False, soft_wrap=True, **_plain)
_here = threading.local()  # .out, .err, .raw: set inside captured()


def _out() -> Console:
    return getattr(_here, "out", out)


def _err() -> Console:
    return getattr(_here, "err", err)


@contextmanager
def captured(width: int, color_system: str | None):
    """Print into buffers, in this thread, as for a terminal `width` wide with these colours (None:
    plain text, as for a pipe). Yields a function returning (stdout, stderr) printed so far."""
    stdout, stderr = io.StringIO(), io.StringIO()

    def console(file) -> Console:
        return Console(file=file, width=width, force_terminal=color_system is not None, no_color=color_system is None,
                       color_system=color_system, highlight=False, soft_wrap=True)

    _here.out, _here.err, _here.raw = console(stdout), console(stderr), stdout
    try:
        yield lambda: (stdout.getvalue(), stderr.getvalue())
    finally:
        del _here.out, _here.err, _here.raw


def ranges(spans: list[tuple[int, int]]) -> str:
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def describe(f: dict) -> str:
    if f["whole"]:
        return f["change"]
    parts = []
    if f["lines"]:
        parts.append(f"lines {ranges(f['lines'])}")
    if f["deleted"]:
        parts.append(f"removed base lines {ranges(f['deleted'])}")
    return "; ".join(parts)


def show_status(report: dict) -> None:
    """The status report (status.collect's plain data, shaped as models.StatusReport)."""
    console = _out()
    base = report["base"][:12] if report["base"] else "(no commits)"
    console.print(f"base {base}  target {report['target'] or '-'}")
    rows = []
    for branch in report["branches"]:
        sessions = ", ".join(s["id"] + (" (ended)" if s["ended"] else "") for s in branch["sessions"]) or "-"
        name = branch["name"] + ("" if branch["applied"] else " (unapplied)")
        if not branch["files"]:
            rows.append([name, sessions, "-", "no changes"])
        for i, f in enumerate(branch["files"]):
            rows.append([name if i == 0 else "", sessions if i == 0 else "", f["path"], describe(f)])
    _columns(console, ["branch", "sessions", "file", "owned changes"], rows)
    _show_landing(report["branches"])
    if report["unattributed"]:
        console.print(Text("unattributed (no known session made these; `vbranch assign` gives them to a branch):",
                           style="yellow"))
        for f in report["unattributed"]:
            console.print(f"  {f['path']}: {describe(f)}")
    if report["contested"]:
        console.print(Text("contested (changed by more than one branch; held out of their commits until settled with "
                           "`vbranch claim`/`disown` or `assign`):", style="red"))
        for c in report["contested"]:
            where = f"lines {ranges([c['lines']])}" if c["lines"] else (f"{c['removed']} removed line(s)" if c["removed"] else "whole file")
            who = ", ".join(c["branches"] + (["unattributed"] if c["unattributed"] else []))
            console.print(f"  {c['path']} {where}: {who}")
    if not report["unattributed"] and not report["contested"]:
        console.print("nothing unattributed or contested")
    if report.get("rescue"):
        console.print(Text("work another change took away, kept (`vbranch rescue` puts it back):", style="red"))
        for r in report["rescue"]:
            by = f" by session {r['by']}" if r["by"] else ""
            console.print(f"  {r['path']}: {r['branch']}'s changes, taken away at {r['at']}{by}")
    tracer = report.get("tracer")
    if tracer:
        style = None if tracer["mode"] == "process" else "yellow"
        console.print(Text(f"commands: attributed by {tracer['mode']} ({tracer['why']})", style=style))


def _columns(console: Console, header: list[str], rows: list[list[str]]) -> None:
    """Rows in aligned columns, the header bold. Not a rich Table: that costs ~0.7 ms a row (a status
    of 400 owned files took 0.3 s to draw), and these cells never need wrapping or borders."""
    widths = [max(cell_len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(cell + " " * (width - cell_len(cell)) for cell, width in zip(cells, widths)).rstrip()

    console.print(Text(line(header), style="bold"))
    if rows:
        console.print(Text("\n".join(line(row) for row in rows)))


def _show_landing(branches: list[dict]) -> None:
    """Verified at a target commit, or failed (and why): a line each; the branches waiting to land: one line."""
    console = _out()
    waiting = [b["name"] for b in branches if (b.get("landing") or {}).get("state") == "waiting"]
    for branch in branches:
        landing = branch.get("landing") or {}
        state = landing.get("state")
        if state == "verified":
            console.print(Text(f"  {branch['name']}: verified at {landing['target'][:12]} (`{landing['command']}`)",
                               style="green"))
        elif state == "failed":
            code = landing["exit_code"]
            why = f"exit {code}" if code is not None else "timed out or did not start"
            console.print(Text(f"  {branch['name']}: failed verification at {(landing['target'] or '')[:12]}: "
                               f"`{landing['command']}` {why} (`vbranch land --log {branch['name']}`)", style="red"))
            for text in (landing.get("tail") or "").rstrip("\n").splitlines()[-3:]:
                console.print(f"    | {text}")
    if waiting:
        console.print(f"waiting to land (not verified at this target): {', '.join(waiting)}")


def show_error(error: VbranchError) -> None:
    _err().print(Text("error: ", style="bold red") + Text(error.message))
    if error.hint:
        _err().print(Text("hint: ", style="bold cyan") + Text(error.hint))


def line(text: str = "", style: str | None = None) -> None:
    _out().print(Text(text, style=style) if style else text)


def note(text: str) -> None:
    """A line on stderr, beside the command's output (as it is: no rich markup)."""
    _err().print(text, markup=False)


def write_raw(data: str) -> None:
    getattr(_here, "raw", sys.stdout).write(data)


def show_doctor(report: dict) -> None:
    """doctor.run's report: one line per check, each problem with the command that fixes it."""
    marks = {"ok": ("ok  ", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "bold red")}
    for c in report["checks"]:
        mark, style = marks.get(c["level"], ("?   ", None))
        _out().print(Text(mark, style=style) + Text(f" {c['name']}: ", style="bold") + Text(c["detail"]))
        if c["fix"]:
            _out().print(Text("     fix: ", style="bold cyan") + Text(c["fix"]))
    failed = [c["name"] for c in report["checks"] if not c["ok"]]
    if failed:
        _out().print(Text(f"{len(failed)} problem(s): {', '.join(failed)}", style="red"))
    else:
        _out().print(Text("everything vbranch needs is in place", style="green"))
