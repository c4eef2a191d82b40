"""`vbranch demo`: three sessions share one directory, and each gets its own branch.

The story is the one that started this tool: three agents edit their own files
and also the same skills index in different places. Unmanaged, the last
writer of that index silently drops another session's entry; here every line
lands on the branch of the session that wrote it, and the one line two
sessions both changed is shown as contested instead of being given away.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from vbranch.cli import ui

INDEX = """# Skills index

Updated: 2026-11-01

## Audio
- speech-to-text: transcribe microphone input

## Web
- seo-meta: emit OpenGraph and Twitter meta tags

## Research
- web-search: search and summarise pages
"""

META_PY = '''def render_meta(page):
    tags = [f'<meta property="og:title" content="{page.title}">']
    tags.append('<meta property="og:type" content="article">')
    if page.kind == "article":
        tags.append('<meta property="og:type" content="article">')
    return "\\n".join(tags)
'''

BUFFER_PY = '''class VoiceBuffer:
    """Keeps the last `seconds` of microphone audio for the transcriber."""

    def __init__(self, seconds=30, rate=16000):
        self.limit = seconds * rate
        self.samples = []

    def push(self, chunk):
        self.samples.extend(chunk)
        del self.samples[: max(0, len(self.samples) - self.limit)]
'''

TRACKER_PY = '''class CitationTracker:
    """Remembers which source supported which sentence of an answer."""

    def __init__(self):
        self.sources = {}

    def cite(self, sentence, url):
        self.sources.setdefault(sentence, []).append(url)
'''


def demo(directory: str | None) -> int:
    from vbranch.ops.branching import assign, branch_diff
    from vbranch.ops.committing import commit
    from vbranch.ops.lifecycle import init
    from vbranch.ops.status import collect
    from vbranch.record.recording import record, run
    from vbranch.state.clock import now

    top = Path(directory or tempfile.mkdtemp(prefix="vbranch-demo-"))
    top.mkdir(parents=True, exist_ok=True)
    _make_repo(top)
    ui.line(f"demo repository: {top}", style="bold")
    ws = init(top, None, now())

    def edit(session: str, path: str, old: str, new: str) -> None:
        file = top / path
        file.write_text(file.read_text().replace(old, new, 1))
        record(ws, session, [str(file)], now())

    def write(session: str, path: str, text: str) -> None:
        file = top / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        record(ws, session, [str(file)], now())

    ui.line("\n1. three sessions work at once in the same directory", style="bold")
    write("voice", "audio/voice_buffer.py", BUFFER_PY)
    edit("voice", "skills/INDEX.md", "- speech-to-text: transcribe microphone input\n",
         "- speech-to-text: transcribe microphone input\n- voice-buffer: keep the last 30 s of audio\n")
    edit("og-fix", "web/meta.py",
         "    if page.kind == \"article\":\n        tags.append('<meta property=\"og:type\" content=\"article\">')\n", "")
    edit("og-fix", "skills/INDEX.md", "- seo-meta: emit OpenGraph and Twitter meta tags\n",
         "- seo-meta: emit OpenGraph and Twitter meta tags (og:type once)\n")
    edit("og-fix", "skills/INDEX.md", "Updated: 2026-11-01", "Updated: 2026-11-20")
    write("citations", "research/citations.py", TRACKER_PY)
    # The citation session appends through a shell command, as an agent's Bash tool would.
    shell = "printf -- '- citation-tracker: link claims to sources\\n' >> skills/INDEX.md"
    run(ws, "citations", ["sh", "-c", f"cd {top} && {shell}"], now())
    edit("citations", "skills/INDEX.md", "Updated: 2026-11-20", "Updated: 2026-11-21")
    for session, what in [
        ("voice", "new audio/voice_buffer.py, one index entry"),
        ("og-fix", "og:type emitted once in web/meta.py, its index entry, the Updated: line"),
        ("citations", "new research/citations.py, an index entry by shell, the Updated: line again"),
    ]:
        ui.line(f"  {session:10} {what}")

    ui.line("\n2. vbranch status: every line has an owner; one line has two", style="bold")
    ui.show_status(collect(ws, now()))

    ui.line("\n3. vbranch commit --all: the contested line blocks only its two branches", style="bold")
    _show_commit(commit(ws, None, None, now()))

    ui.line("\n4. vbranch assign skills/INDEX.md:3 session-citations, then commit again", style="bold")
    assign(ws, str(top / "skills/INDEX.md") + ":3", "session-citations", now())
    _show_commit(commit(ws, None, None, now()))

    ui.line("\n5. each branch holds only its own lines", style="bold")
    for branch in ws.store.branches():
        ui.line(f"\n--- {branch.name} ---", style="bold cyan")
        ui.write_raw(_diff_of(ws, branch.name, branch_diff))
    ui.line("\n`git log --graph --all --oneline` in the demo repository shows the branches and the workspace commit.")
    ws.close()
    return 0


def _diff_of(ws, name: str, branch_diff) -> str:
    from vbranch.state.clock import now

    text = branch_diff(ws, name, now())
    return text if text.endswith("\n") else text + "\n"


def _show_commit(report) -> None:
    for name, oid, paths in report.committed:
        ui.line(f"  {name}: committed {oid[:10]} ({', '.join(paths)})")
    for name in report.unchanged:
        ui.line(f"  {name}: nothing new to commit")
    for name, found in report.held_back.items():
        for c in found:
            ui.line(f"  {name}: {c.path} line {c.lines[0] if c.lines else '?'} is contested, held back", style="red")


def _make_repo(top: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(top), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.name", "vbranch demo")
    git("config", "user.email", "demo@vbranch.invalid")
    (top / "skills").mkdir()
    (top / "skills/INDEX.md").write_text(INDEX)
    (top / "web").mkdir()
    (top / "web/meta.py").write_text(META_PY)
    (top / "README.md").write_text("A project three agents work on at once.\n")
    git("add", "-A")
    git("commit", "-q", "-m", "initial project")


if __name__ == "__main__":
    sys.exit(demo(None))
