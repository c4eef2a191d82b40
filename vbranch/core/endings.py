"""A file as Claude Code's tools see and write it: encodings and line endings. Pure, bytes in and out.

What the real CLI does (2.1.197, read in its bundled source and checked by driving it):
- it decodes a file as UTF-16LE when it starts with FF FE, else as UTF-8, invalid
  bytes becoming U+FFFD; a BOM stays in the text as U+FEFF;
- its tools work on, and report as `originalFile`, that text with every CRLF
  replaced by LF (one pass; a lone CR stays): the *view*;
- an Edit writes the whole new text back in the encoding it decoded with, every
  line ending CRLF if the file's first 4096 characters held more CRLF than bare
  LF, else every one LF. So a mixed-ending file comes out in one style, and a
  non-UTF-8 (latin-1, ...) file's other bytes come out as EF BF BD;
- a Write writes its content as given (no ending conversion), in that encoding.
2.1.332 does the same (checked by driving it), except that it refuses to Edit or
Write over a file that is not valid UTF-8 (nor UTF-16LE behind FF FE).

Rule: compare what a tool reports with what is on disk as views, never as
bytes; state a tool's text as bytes with `onto` (the disk's bytes for every
line the disk has) or `write_like_tool` (what the tool itself writes).
"""
from __future__ import annotations

from vbranch.core.ownership import diff_opcodes

UTF16_MARK = b"\xff\xfe"
STYLE_WINDOW = 4096  # JS string units (UTF-16 code units) the CLI looks at for the style


def encoding(data: bytes | None) -> str:
    return "utf-16-le" if data and data.startswith(UTF16_MARK) else "utf-8"


def decode(data: bytes) -> str:
    """The file's text as the CLI decodes it (BOM kept as U+FEFF)."""
    return data.decode(encoding(data), "replace")


def to_lf(text: str) -> str:
    return text.replace("\r\n", "\n") if "\r" in text else text  # (the search alone is ~10x faster than replace's)


def view(data: bytes) -> str:
    """The text a tool works on and reports: decoded, every CRLF made LF."""
    return to_lf(decode(data))


def style(data: bytes | None) -> str:
    """"CRLF" or "LF": how the CLI's Edit ends every line it writes into this file."""
    if not data:
        return "LF"
    head_text = decode(data[: 4 * STYLE_WINDOW])[:STYLE_WINDOW]
    if not head_text.isascii() and any(ord(char) > 0xFFFF for char in head_text):  # two units each in JS
        head, units = [], 0
        for char in head_text:
            units += 2 if ord(char) > 0xFFFF else 1
            if units > STYLE_WINDOW:
                break
            head.append(char)
        head_text = "".join(head)
    crlf = head_text.count("\r\n")
    return "CRLF" if crlf > head_text.count("\n") - crlf else "LF"


def encode(text: str, like: bytes | None) -> bytes:
    """`text` in the encoding of the file `like`; a lone surrogate becomes U+FFFD, as JS writes it."""
    try:
        return text.encode(encoding(like))  # both codecs refuse a lone surrogate: looked for only then
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
        return text.encode(encoding(like))


def write_like_tool(text: str, like: bytes | None, convert: bool = True) -> bytes:
    """What an Edit (`convert`) or a Write (not) of `text` leaves in a file that held `like`."""
    if convert and style(like) == "CRLF":
        text = to_lf(text).replace("\n", "\r\n")
    return encode(text, like)


def onto(text: str, disks: list[bytes | None]) -> bytes:
    """A view stated in disk bytes: each line as one of `disks` holds it, where one does.

    Lines are aligned with the first file; a line it lacks is looked up in the
    others; a line none has is written as an Edit of the first file would write it.
    """
    first = next((d for d in disks if d is not None), None)
    if first is None or encoding(first) != "utf-8":  # UTF-16: no byte lines to keep
        return write_like_tool(text, first)
    lines = _lf_lines(text)
    ending = "\r\n" if style(first) == "CRLF" else "\n"
    found: dict[str, bytes] = {}
    for disk in disks[1:]:
        if disk is not None and encoding(disk) == "utf-8":
            for raw in reversed(_byte_lines(disk)):
                found[view(raw)] = raw
    disk_lines = _byte_lines(first)
    key = lambda line: line.encode("utf-8", "surrogatepass")  # noqa: E731
    out: list[bytes] = []
    done = 0
    changed = diff_opcodes([key(view(raw)) for raw in disk_lines], [key(line) for line in lines])
    for _tag, i1, i2, j1, j2 in changed + [("equal", len(disk_lines), len(disk_lines), len(lines), len(lines))]:
        out.extend(disk_lines[i1 - (j1 - done):i1])  # the equal run before this change
        for line in lines[j1:j2]:
            raw = found.get(line)
            if raw is None:
                raw = encode(line[:-1] + ending if line.endswith("\n") else line, first)
            out.append(raw)
        done = j2
    return b"".join(out)


def _lf_lines(text: str) -> list[str]:
    """Lines ended by LF only (a CR is data), endings kept."""
    parts = text.split("\n")
    last = parts.pop()
    return [p + "\n" for p in parts] + ([last] if last else [])


def _byte_lines(data: bytes) -> list[bytes]:
    parts = data.split(b"\n")
    last = parts.pop()
    return [p + b"\n" for p in parts] + ([last] if last else [])


def rewritten(data: bytes | None) -> str | None:
    """Why an Edit of this file rewrites lines beyond its own, or None when it does not."""
    if not data or encoding(data) != "utf-8":
        return None
    try:
        data.decode()
    except UnicodeDecodeError:
        return ("the file is not UTF-8, and Claude Code writes every byte it cannot decode as U+FFFD "
                "(2.1.197 does; 2.1.332 refuses the edit instead)")
    text = decode(data)
    crlf = text.count("\r\n")
    if crlf and text.count("\n") > crlf:
        return f"its line endings are mixed, and Claude Code writes every line with {style(data)}"
    return None
