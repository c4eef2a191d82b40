"""A scripted stand-in for the Anthropic Messages API, for driving the real
Claude Code CLI offline.

Scripts map a name to a list of steps. A step is a tool call
``{"tool": "Write", "input": {...}}``, a list of tool calls (issued as
parallel tool_use blocks in one assistant message) or a str (the final text,
which ends the turn). The session picks its script with a prompt containing
``SCRIPT=<name>``; the next step is found by counting the tool_result blocks
the client has already sent back.
"""

import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRIPT_RE = re.compile(r"SCRIPT=([\w.-]+)")
DONE_TEXT = "All scripted steps done."
MODEL = "claude-fake-model"

_ids = itertools.count(1)
_ids_lock = threading.Lock()


def _new_id(prefix):
    with _ids_lock:
        return "%s_%024d" % (prefix, next(_ids))


def fill_placeholders(value, **values):
    """Replace ``{key}`` in every string of a nested script structure.

    Plain str.replace rather than str.format, so braces in file contents are
    left alone.
    """
    if isinstance(value, str):
        for key, sub in values.items():
            value = value.replace("{%s}" % key, str(sub))
        return value
    if isinstance(value, list):
        return [fill_placeholders(v, **values) for v in value]
    if isinstance(value, dict):
        return {k: fill_placeholders(v, **values) for k, v in value.items()}
    return value


def _blocks(message):
    """Content blocks of a message; a bare string counts as one text block."""
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content or []


def script_name(body):
    """The SCRIPT=<name> the prompt starts with: the earliest user text block that begins with one.

    Not any text that mentions one: newer releases (2.1.332) add context from the project's other
    sessions to the first user message, which may quote their prompts.
    """
    found = None
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        for block in _blocks(message):
            if block.get("type") == "text":
                text = block.get("text", "")
                match = SCRIPT_RE.match(text.lstrip())
                if match:
                    return match.group(1)
                found = found or SCRIPT_RE.search(text)
    return found.group(1) if found else None


def tool_results(body):
    """Every tool_result block in the request, content flattened to text."""
    results = []
    for message in body.get("messages", []):
        for block in _blocks(message):
            if block.get("type") == "tool_result":
                results.append({
                    "tool_use_id": block.get("tool_use_id"),
                    "content": _flatten(block.get("content")),
                    "is_error": bool(block.get("is_error", False)),
                })
    return results


def _flatten(content):
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
    return content if content is not None else ""


def _calls(step):
    """The tool calls of a step, as a list (empty for a text step)."""
    if isinstance(step, dict):
        return [step]
    if isinstance(step, list):
        return step
    return []


def next_step(steps, n_results):
    """The step whose tool calls have not been answered yet.

    One step may hold several parallel calls, so walk the steps summing how
    many tool_results each one accounts for.
    """
    answered = 0
    for step in steps:
        if answered >= n_results:
            return step
        answered += len(_calls(step))
    return DONE_TEXT


def reply_blocks(step):
    """Assistant content blocks and stop_reason for one step."""
    calls = _calls(step)
    if not calls:
        return [{"type": "text", "text": str(step)}], "end_turn"
    blocks = [{"type": "tool_use", "id": _new_id("toolu"), "name": c["tool"],
               "input": c.get("input", {})} for c in calls]
    return blocks, "tool_use"


def _event(name, data):
    return "event: %s\ndata: %s\n\n" % (name, json.dumps(data))


def _chunks(text, size=40):
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def sse_body(blocks, stop_reason):
    """The full SSE stream of one assistant message."""
    message = {"id": _new_id("msg"), "type": "message", "role": "assistant",
               "model": MODEL, "content": [], "stop_reason": None,
               "stop_sequence": None,
               "usage": {"input_tokens": 10, "output_tokens": 1}}
    out = [_event("message_start", {"type": "message_start", "message": message})]
    for index, block in enumerate(blocks):
        if block["type"] == "tool_use":
            start = dict(block, input={})
            # The client rebuilds the input from partial_json pieces.
            deltas = [{"type": "input_json_delta", "partial_json": part}
                      for part in _chunks(json.dumps(block["input"]))]
        else:
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part}
                      for part in _chunks(block["text"])]
        out.append(_event("content_block_start", {
            "type": "content_block_start", "index": index, "content_block": start}))
        for delta in deltas:
            out.append(_event("content_block_delta", {
                "type": "content_block_delta", "index": index, "delta": delta}))
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(_event("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": 10}}))
    out.append(_event("message_stop", {"type": "message_stop"}))
    return "".join(out)


def json_body(blocks, stop_reason):
    """The same message for a non-streaming request."""
    return json.dumps({
        "id": _new_id("msg"), "type": "message", "role": "assistant",
        "model": MODEL, "content": blocks, "stop_reason": stop_reason,
        "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 10}})


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with Content-Length so the client can keep its connection.
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass  # keep pytest output clean

    def _send(self, status, body=b"", content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self._send(200)

    def do_GET(self):
        self.server.fake.record({"method": "GET", "path": self.path})
        self._send(404, b'{"type":"error","error":{"type":"not_found_error","message":"fake"}}')

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        path = self.path.split("?", 1)[0]
        if path != "/v1/messages":
            self.server.fake.record({"method": "POST", "path": self.path, "body": body})
            self._send(404, b'{"type":"error","error":{"type":"not_found_error","message":"fake"}}')
            return
        blocks, stop_reason = self.server.fake.answer(self.path, body)
        if body.get("stream"):
            self._send(200, sse_body(blocks, stop_reason).encode(), "text/event-stream")
        else:
            self._send(200, json_body(blocks, stop_reason).encode())


class FakeAnthropic:
    """Context manager running the scripted API on 127.0.0.1 (a free port).

    ``url`` goes into ANTHROPIC_BASE_URL; ``requests`` records every request
    as a dict with method, path, body, script, side (True for a request without
    tools) and, for scripted ones, the reply blocks.
    """

    def __init__(self, scripts):
        self.scripts = scripts
        self.requests = []
        self.errors = []
        self._lock = threading.Lock()
        self._server = None
        self._thread = None
        self.url = None

    def __enter__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self
        self.url = "http://127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def record(self, entry):
        with self._lock:
            self.requests.append(entry)

    def answer(self, path, body):
        """Pick the reply for one /v1/messages request and record both."""
        name = script_name(body)
        entry = {"method": "POST", "path": path, "body": body, "script": name,
                 "side": not body.get("tools")}
        if entry["side"]:
            # Titles, summaries and the like: any plain text will do.
            blocks, stop_reason = [{"type": "text", "text": "ok"}], "end_turn"
        elif name not in self.scripts:
            with self._lock:
                self.errors.append("unknown script %r" % name)
            blocks, stop_reason = reply_blocks("fake_api: unknown script %r" % name)
        else:
            step = next_step(self.scripts[name], len(tool_results(body)))
            blocks, stop_reason = reply_blocks(step)
        entry["reply"] = blocks
        self.record(entry)
        return blocks, stop_reason

    def script_requests(self, name):
        """The main-loop (non-side) requests of one script, in arrival order."""
        with self._lock:
            return [r for r in self.requests
                    if r.get("script") == name and not r.get("side")]

    def tool_results(self, name):
        """Every tool_result one script's session sent back, deduplicated.

        Each request repeats the whole conversation, so a result shows up in
        every later request; keep the first sighting of each tool_use_id.
        """
        seen = {}
        for request in self.script_requests(name):
            for result in tool_results(request["body"]):
                seen.setdefault(result["tool_use_id"], result)
        return list(seen.values())

    def tool_calls(self, name):
        """Every tool_use block the server issued for one script, in order."""
        return [b for r in self.script_requests(name) for b in r["reply"]
                if b["type"] == "tool_use"]
