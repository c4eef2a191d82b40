"""Line endings, BOMs, encodings and a missing final newline: hooks keep the file's exact bytes.

Claude Code's file tools work on an LF view of the file, and report that view as
`originalFile`, while the file on disk keeps its own bytes. `cli_edit` below does
what the real CLI (2.1.197) does, as read from its source and checked by driving
it (tests/e2e/test_endings_e2e.py does the same through the real CLI):
- decode as UTF-16LE after an FF FE mark, else as UTF-8 with U+FFFD for invalid
  bytes (a UTF-8 BOM stays, as U+FEFF);
- replace every CRLF with LF: that is the view the edit applies to and `originalFile`;
- write the whole result back in the same encoding, every line ending CRLF if the
  first 4096 characters held more CRLF than bare LF, else as LF.
"""
from __future__ import annotations

import uuid

import pytest

from tests.conftest import VB, git, write
from tests.hookdriver import Session, denied_reason
from vbranch.core import endings
from vbranch.hooks import contract as claude


def cli_view(data: bytes) -> tuple[str, str, str]:
    """(the text the CLI's tools see, its encoding, the ending style it writes)."""
    encoding = "utf-16-le" if data[:2] == b"\xff\xfe" else "utf-8"
    text = data.decode(encoding, "replace")
    head = text[:4096]
    crlf = head.count("\r\n")
    style = "CRLF" if crlf > head.count("\n") - crlf else "LF"
    return text.replace("\r\n", "\n"), encoding, style


def cli_edit(session: Session, path: str, old: str, new: str):
    """A Claude Code Edit: PreToolUse, the CLI's write (unless denied), PostToolUse."""
    full = session.repo / path
    tool_input = {"file_path": str(full), "old_string": old, "new_string": new, "replace_all": False}
    call = f"toolu_{uuid.uuid4().hex[:12]}"
    _, out = session.pre("Edit", tool_input, call)
    if denied_reason(out):
        return out
    view, encoding, style = cli_view(full.read_bytes())
    assert view.count(old) == 1, (view, old)
    updated = view.replace(old, new, 1)
    if style == "CRLF":
        updated = updated.replace("\n", "\r\n")
    full.write_bytes(updated.encode(encoding))
    response = {"filePath": str(full), "oldString": old, "newString": new, "originalFile": view,
                "structuredPatch": [], "userModified": False, "replaceAll": False}
    return session.post("Edit", tool_input, call, response)[1]


LATIN1 = "caf\u00e9 = 1\nb = 2\nc = 3\n".encode("latin-1")

# name: (file before, old_string, new_string, the file Claude Code leaves)
CASES = {
    "crlf-one-line": (b"a = 1\r\nb = 2\r\nc = 3\r\nd = 4\r\n", "b = 2", "b = 20",
                      b"a = 1\r\nb = 20\r\nc = 3\r\nd = 4\r\n"),
    "crlf-multi-line": (b"a = 1\r\nb = 2\r\nc = 3\r\nd = 4\r\n", "b = 2\nc = 3", "b = 20\nc = 30\nc2 = 31",
                        b"a = 1\r\nb = 20\r\nc = 30\r\nc2 = 31\r\nd = 4\r\n"),
    # more CRLF than LF: the CLI writes every line with CRLF
    "mixed-mostly-crlf": (b"a = 1\r\nb = 2\nc = 3\r\nd = 4\r\n", "c = 3", "c = 30",
                          b"a = 1\r\nb = 2\r\nc = 30\r\nd = 4\r\n"),
    # as many LF as CRLF: the CLI writes LF throughout
    "mixed-mostly-lf": (b"a = 1\r\nb = 2\nc = 3\r\nd = 4\n", "b = 2", "b = 20",
                        b"a = 1\nb = 20\nc = 3\nd = 4\n"),
    "no-final-newline": (b"a = 1\r\nb = 2\r\nc = 3", "c = 3", "c = 30", b"a = 1\r\nb = 2\r\nc = 30"),
    "no-final-newline-last-line-added": (b"a = 1\r\nb = 2", "b = 2", "b = 2\nc = 3", b"a = 1\r\nb = 2\r\nc = 3"),
    "utf8-bom": (b"\xef\xbb\xbfa = 1\r\nb = 2\r\nc = 3\r\n", "b = 2", "b = 20",
                 b"\xef\xbb\xbfa = 1\r\nb = 20\r\nc = 3\r\n"),
    # the CLI decodes latin-1 as UTF-8 and writes the replacement characters back
    "latin-1": (LATIN1, "b = 2", "b = 20", b"caf\xef\xbf\xbd = 1\nb = 20\nc = 3\n"),
    "latin-1-crlf": (LATIN1.replace(b"\n", b"\r\n"), "b = 2\nc = 3", "b = 20\nc = 30",
                     b"caf\xef\xbf\xbd = 1\r\nb = 20\r\nc = 30\r\n"),
}


@pytest.fixture
def make(make_repo):
    def start(content: bytes):
        repo = make_repo({"f.txt": content, "other.txt": "x\n"})
        git(repo, "config", "core.autocrlf", "false")
        VB(repo).init()
        return repo

    return start


def owned(status, session: str) -> list:
    branch = next(b for b in status.branches if session in [s.id for s in b.sessions])
    return [(f.path, [tuple(r) for r in f.lines], [tuple(r) for r in f.deleted], f.whole) for f in branch.files]


@pytest.mark.parametrize("busy", [False, True], ids=["alone", "another-command-running"])
@pytest.mark.parametrize("case", list(CASES))
def test_an_edit_commits_exactly_the_working_files_bytes(make, case, busy):
    before, old, new, after = CASES[case]
    repo = make(before)
    a, b = Session(repo, "end-a"), Session(repo, "end-b")
    a.start(), b.start()
    if busy:  # b's command is running (and changes nothing): a's edit must still be a's alone
        b.pre("Bash", {"command": "sleep 5"}, "tb")
    assert denied_reason(cli_edit(a, "f.txt", old, new)) is None
    assert (repo / "f.txt").read_bytes() == after  # what the real CLI leaves
    a.stop()
    if busy:
        b.post("Bash", {"command": "sleep 5"}, "tb")
    files = VB(repo).files_of("end-a")
    assert files["f.txt"] == after, files["f.txt"]  # every line once, its bytes as on disk
    status = VB(repo).status()
    assert status.unattributed == [] and status.contested == [], status
    assert [p for p, *_ in owned(status, "end-a")] == ["f.txt"]
    assert git(repo, "diff", "--stat", "HEAD") == ""  # the workspace commit holds the file as it is


def test_a_crlf_edit_owns_only_its_lines(make):
    repo = make(CASES["crlf-multi-line"][0])
    a = Session(repo, "own-a")
    a.start()
    cli_edit(a, "f.txt", "b = 2\nc = 3", "b = 20\nc = 30\nc2 = 31")
    assert owned(VB(repo).status(), "own-a") == [("f.txt", [(2, 4)], [(2, 3)], False)]


def test_a_crlf_edit_during_another_sessions_command_that_changes_the_file(make):
    """The other command's change (made after the tool wrote) stays that command's."""
    repo = make(b"a = 1\r\nb = 2\r\nc = 3\r\nd = 4\r\n")
    a, b = Session(repo, "mix-a"), Session(repo, "mix-b")
    a.start(), b.start()
    b.pre("Bash", {"command": "long"}, "tb")
    tool_input = {"file_path": str(repo / "f.txt"), "old_string": "a = 1\nb = 2", "new_string": "a = 10\nb = 20"}
    a.pre("Edit", tool_input, "ta")
    view = (repo / "f.txt").read_bytes().decode().replace("\r\n", "\n")
    write(repo, "f.txt", b"a = 10\r\nb = 20\r\nc = 3\r\nd = 4\r\n")  # the tool's write
    write(repo, "f.txt", b"a = 10\r\nb = 20\r\nc = 3\r\nd = 40\r\n")  # b's command, meanwhile
    a.post("Edit", tool_input, "ta", {"originalFile": view})
    b.post("Bash", {"command": "long"}, "tb")
    VB(repo).commit()
    assert VB(repo).files_of("mix-a")["f.txt"] == b"a = 10\r\nb = 20\r\nc = 3\r\nd = 4\r\n"
    assert VB(repo).files_of("mix-b")["f.txt"] == b"a = 1\r\nb = 2\r\nc = 3\r\nd = 40\r\n"
    assert VB(repo).status().contested == []


def test_a_crlf_change_between_the_check_and_the_tools_read_stays_the_other_commands(make):
    """originalFile (LF) already holds another command's change the store had not seen."""
    repo = make(b"a = 1\r\nb = 2\r\nc = 3\r\nd = 4\r\n")
    a, b = Session(repo, "read-a"), Session(repo, "read-b")
    a.start(), b.start()
    b.pre("Bash", {"command": "long"}, "tb")
    tool_input = {"file_path": str(repo / "f.txt"), "old_string": "a = 1", "new_string": "a = 10"}
    a.pre("Edit", tool_input, "ta")
    write(repo, "f.txt", b"a = 1\r\nb = 2\r\nc = 3\r\nd = 40\r\n")  # b's command, before the tool reads
    view = (repo / "f.txt").read_bytes().decode().replace("\r\n", "\n")
    write(repo, "f.txt", b"a = 10\r\nb = 2\r\nc = 3\r\nd = 40\r\n")  # the tool's write
    a.post("Edit", tool_input, "ta", {"originalFile": view})
    b.post("Bash", {"command": "long"}, "tb")
    VB(repo).commit()
    assert VB(repo).files_of("read-a")["f.txt"] == b"a = 10\r\nb = 2\r\nc = 3\r\nd = 4\r\n"
    assert VB(repo).files_of("read-b")["f.txt"] == b"a = 1\r\nb = 2\r\nc = 3\r\nd = 40\r\n"
    assert VB(repo).status().contested == []


def test_a_multi_line_crlf_edit_of_another_live_sessions_lines_is_denied(make):
    repo = make(b"a = 1\r\nb = 2\r\nc = 3\r\nd = 4\r\n")
    a, b = Session(repo, "crlf-a"), Session(repo, "crlf-b")
    a.start(), b.start()
    cli_edit(a, "f.txt", "b = 2", "b = 20")
    reason = denied_reason(cli_edit(b, "f.txt", "b = 20\nc = 3", "b = 200\nc = 30"))
    assert reason and "f.txt lines 2-2" in reason and "session crlf-a" in reason, reason
    assert (repo / "f.txt").read_bytes() == b"a = 1\r\nb = 20\r\nc = 3\r\nd = 4\r\n"
    assert denied_reason(cli_edit(b, "f.txt", "c = 3\nd = 4", "c = 30\nd = 40")) is None  # its own lines are free


def test_an_edit_of_another_sessions_lines_in_a_latin1_file_is_denied(make):
    repo = make(LATIN1 + b"d = 4\n")
    a, b = Session(repo, "lat-a"), Session(repo, "lat-b")
    a.start(), b.start()
    # a changes line 2 with a command that keeps the file latin-1
    a.bash("sed -i s/b = 2/b = \xe9/ f.txt", lambda: write(repo, "f.txt", LATIN1.replace(b"b = 2", b"b = \xe9") + b"d = 4\n"))
    reason = denied_reason(cli_edit(b, "f.txt", "b = \ufffd", "b = 3"))
    assert reason and "f.txt lines 2-2" in reason and "session lat-a" in reason, reason
    # Claude Code would also rewrite a's non-UTF-8 line 2 as U+FFFD when editing line 4: denied, and why
    reason = denied_reason(cli_edit(b, "f.txt", "d = 4", "d = 40"))
    assert reason and "f.txt lines 2-2" in reason and "UTF-8" in reason, reason
    assert (repo / "f.txt").read_bytes() == LATIN1.replace(b"b = 2", b"b = \xe9") + b"d = 4\n"


def test_a_latin1_edit_that_leaves_others_lines_alone_goes_through(make):
    repo = make(LATIN1 + b"d = 4\n")
    a, b = Session(repo, "lat2-a"), Session(repo, "lat2-b")
    a.start(), b.start()
    a.bash("sed", lambda: write(repo, "f.txt", LATIN1.replace(b"b = 2", b"b = 22") + b"d = 4\n"))
    assert denied_reason(cli_edit(b, "f.txt", "d = 4", "d = 40")) is None  # line 1 is nobody's
    assert (repo / "f.txt").read_bytes() == b"caf\xef\xbf\xbd = 1\nb = 22\nc = 3\nd = 40\n"


def test_a_mixed_ending_edit_that_would_rewrite_others_line_endings_is_denied(make):
    repo = make(b"a = 1\r\nb = 2\r\nc = 3\r\nd = 4\n")
    a, b = Session(repo, "mix2-a"), Session(repo, "mix2-b")
    a.start(), b.start()
    a.bash("append", lambda: write(repo, "f.txt", b"a = 1\r\nb = 2\r\nc = 3\r\nd = 4\ne = 5\n"))  # LF, like line 4
    # 3 CRLF against 2 LF: Claude Code would write every line, a's line 5 too, with CRLF
    reason = denied_reason(cli_edit(b, "f.txt", "a = 1", "a = 10"))
    assert reason and "f.txt lines 5-5" in reason and "line endings" in reason, reason


# --- endings.py, pure ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_the_view_and_the_write_are_claude_codes(case):
    before, old, new, after = CASES[case]
    view, _, _ = cli_view(before)
    assert endings.view(before) == view
    assert endings.view(after) == view.replace(old, new, 1)
    assert endings.write_like_tool(view.replace(old, new, 1), before) == after


def test_style_counts_the_first_4096_characters():
    assert endings.style(b"a\r\nb\r\nc\n") == "CRLF"
    assert endings.style(b"a\r\nb\nc\r\nd\n") == "LF"  # a tie is LF
    assert endings.style(b"x" * 5000 + b"\r\n") == "LF"  # past the first 4096 characters
    assert endings.style(("\u00e9" * 4094 + "\r\n\r\n").encode()) == "CRLF"  # characters, not bytes
    assert endings.style(("\U0001f600" * 2048 + "\r\n\r\n").encode()) == "LF"  # UTF-16 code units, as in JS
    assert endings.style(b"") == "LF"


def test_decoding_as_the_cli_does():
    assert endings.decode(b"\xff\xfea\x00\r\x00\n\x00") == "\ufeffa\r\n"
    assert endings.decode(b"\xef\xbb\xbfa") == "\ufeffa"
    assert endings.decode(b"caf\xe9 \xe2\x82x") == "caf\ufffd \ufffdx"
    assert endings.encode("\ufeffb\n", b"\xff\xfea\x00") == b"\xff\xfeb\x00\n\x00"
    assert endings.encode("a\ud800b", None) == b"a\xef\xbf\xbdb"  # a lone surrogate, as JS writes it
    assert endings.encode("a\udfffb\U0001f600", b"\xff\xfe") == "a\ufffdb\U0001f600".encode("utf-16-le")  # in UTF-16 too
    assert endings.view(b"a\r\r\nb\rc\r\n") == "a\r\nb\rc\n"  # one pass, like replaceAll; a lone CR stays


def test_onto_keeps_the_disk_bytes_of_every_line_it_can_find():
    disk = b"\xef\xbb\xbfa\r\nb\nc\xe9\r\nd"
    assert endings.onto(endings.view(disk), [disk]) == disk
    assert endings.onto("\ufeffa\nB\nc\ufffd\nd", [disk]) == b"\xef\xbb\xbfa\r\nB\r\nc\xe9\r\nd"
    assert endings.onto("\ufeffa\nc\ufffd\nd\n", [disk]) == b"\xef\xbb\xbfa\r\nc\xe9\r\nd\r\n"
    # a line missing from the first reference is taken from the next one
    assert endings.onto("x\ny\n", [b"x\r\n", b"q\ny\r\n"]) == b"x\r\ny\r\n"
    assert endings.onto("x\ny\n", [b"x\n", b"q\ny\r\n"]) == b"x\ny\r\n"
    assert endings.onto("x\n", [None]) == b"x\n"


def test_why_a_tool_rewrites_more_than_its_edit():
    assert endings.rewritten(b"a\r\nb\r\n") is None
    assert "UTF-8" in endings.rewritten(b"caf\xe9\n")
    assert "line endings" in endings.rewritten(b"a\r\nb\n")
    assert endings.rewritten(b"\xff\xfea\x00") is None


def test_proposed_content_is_what_the_tool_writes():
    crlf = b"a\r\nb\r\nc\r\n"
    edit = lambda old, new, data=crlf: claude.proposed_content("Edit", {"old_string": old, "new_string": new}, data)  # noqa: E731
    assert edit("a\nb", "A\nB") == b"A\r\nB\r\nc\r\n"
    assert edit("b", "") == b"a\r\nc\r\n"  # deleting a line's text deletes the line (2.1.197 and 2.1.332)
    assert edit("a\r\nb", "x") is None  # the tool matches LF text only
    assert edit("b", "B", b"a\r\nb\nc\r\n") == b"a\r\nB\r\nc\r\n"
    assert edit("b", "B", b"caf\xe9\nb\n") == b"caf\xef\xbf\xbd\nB\n"
    assert claude.proposed_content("Write", {"content": "x\ny\n"}, crlf) == b"x\ny\n"  # a Write converts nothing
    multi = {"edits": [{"old_string": "a\nb", "new_string": "ab"}, {"old_string": "ab\nc", "new_string": "abc"}]}
    assert claude.proposed_content("MultiEdit", multi, crlf) == b"abc\r\n"
