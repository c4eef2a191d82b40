"""One coding session, as its own process: `python -m benchmarks.session STRATEGY REPO DIR PLAN INDEX START`.

The parent drives all sessions through the same phases at once: it writes a
phase name (setup, edit, commit) on each session's stdin and reads one JSON
line back per phase. A session's tools act the way Claude Code's do: Write
replaces a file, Edit replaces the first occurrence of old_string, Bash runs a
shell command (`bash -c COMMAND`). In the vbranch strategy every tool call is
wrapped in the PreToolUse/PostToolUse hooks, each the command `vbranch install`
writes (`hook_command() hook`: the small client, answered by the
watcher's hook server; VBRANCH_HOOK_SERVER=only makes a missing server a hook
failure instead of a silent fall-back to the full hook) with a payload shaped
like the real CLI's (the captured ones in tests/payloads), and every Bash
command runs under the installed shell prefix, the command tracer
(`tracer_command() COMMAND`, with CLAUDE_CODE_SESSION_ID set) —
exactly what Claude Code runs; in the worktree strategy the session works in
its own `git worktree` and commits there.
"""
from __future__ import annotations

import json
import random
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from vbranch.agents.claude_code import tracer_command
from vbranch.agents.settings import hook_command

from .measure import ROOT, GitFailed, clean_env, git

PAYLOADS = ROOT / "tests" / "payloads"
BUSY_RETRIES = 3
CAPTURED_ROOT = "/home/dev/project"
# What a Stop hook says when the session's branch was committed without some of its lines
# (contested ones held out), and what it said before that when the whole commit was held back.
HELD_BACK = ("committed without its contested changes", "not committed")
UNTRACED = "without the command tracer"


class Tools:
    """A session's file and shell tools working in `root`; subclasses add the strategy."""

    def __init__(self, repo: Path, root: Path, plan: dict, start: float):
        self.repo, self.root, self.plan, self.start = repo, root, plan, start
        self.sid, self.branch = plan["id"], f"session-{plan['id']}"
        self.counters: dict = {}
        self.events: list = []  # notable moments: denials, failed tools, blocked commits
        self.command_seconds: list[float] = []  # each shell command's wall time

    def note(self, what: str, **fields) -> None:
        self.events.append({"what": what, "at": round(time.time() - self.start, 3), **fields})

    def run_op(self, k: int, op: dict) -> None:
        full = self.root / op["path"]
        if op["kind"] == "write":
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_text(op["content"])
        elif op["kind"] == "edit":
            text = full.read_text()
            if op["old"] not in text:  # Claude Code's Edit refuses this, and so do we
                self.note("edit failed: old_string not found", op=k, path=op["path"])
                return
            full.write_text(text.replace(op["old"], op["new"], 1))
        else:
            started = time.perf_counter()
            proc = subprocess.run(self.shell(op["command"]), cwd=self.root, env=self.shell_env(), capture_output=True)
            self.command_seconds.append(time.perf_counter() - started)
            if proc.returncode:
                self.note("command failed", op=k, stderr=proc.stderr.decode(errors="replace")[-500:])

    def shell(self, command: str) -> list[str]:
        """How the agent's shell runs a command string."""
        return ["bash", "-c", command]

    def shell_env(self) -> dict | None:
        return None

    def edit(self) -> dict:
        # A paced plan: the session waits before each tool call, as an agent's model turn keeps its
        # calls apart (seeded by the session: the same waits in every run).
        low, high = self.plan.get("think", (0.0, 0.0))
        pause = random.Random(self.plan["index"])
        for k, op in enumerate(self.plan["ops"]):
            if high:
                time.sleep(pause.uniform(low, high))
            self.run_op(k, op)
        return {"command_seconds": self.command_seconds}


class WorktreeSession(Tools):
    def setup(self) -> dict:
        """`git worktree add`; retried when it fails, as a person would (concurrent adds can race in git)."""
        for attempt in range(5):
            if attempt == 0:
                args = ["-b", self.branch, str(self.root), "main"]
            else:  # the failed add may have left its branch or its registration behind
                shutil.rmtree(self.root, ignore_errors=True)
                made = git(self.repo, "rev-parse", "-q", "--verify", f"refs/heads/{self.branch}", check=False).returncode == 0
                args = ["-f", str(self.root), self.branch] if made else ["-f", "-b", self.branch, str(self.root), "main"]
            proc = git(self.repo, "worktree", "add", "-q", *args, check=False, counters=self.counters)
            if proc.returncode == 0:
                return {}
            self.counters["git_failures"] = self.counters.get("git_failures", 0) + 1
            self.note("git worktree add failed; retried", stderr=proc.stderr.decode(errors="replace").strip()[-300:])
            time.sleep(0.1 * (attempt + 1))
        raise GitFailed(f"git worktree add failed 5 times: {proc.stderr.decode(errors='replace')}")

    def commit(self) -> dict:
        git(self.root, "add", "-A", counters=self.counters)
        git(self.root, "commit", "-q", "-m", f"{self.sid}: the session's work", counters=self.counters)
        return {}


class VbranchSession(Tools):
    """Every tool call wrapped in the hooks, as Claude Code runs them."""

    def __init__(self, *args):
        super().__init__(*args)
        # VBRANCH_HOOK_SERVER=only: the watcher's hook server must answer every call (no silent fall-back).
        self.env = clean_env({"CLAUDE_PROJECT_DIR": str(self.repo), "VBRANCH_HOOK_SERVER": "only"})
        self.hook = shlex.split(hook_command()) + ["hook"]  # what `vbranch install` writes
        self.prefix = shlex.split(tracer_command())  # CLAUDE_CODE_SHELL_PREFIX as `vbranch install` writes it
        self.hook_seconds: list[float] = []    # every hook call
        self.hook_names: list[str] = []        # and which payload it was
        self.change_seconds: list[float] = []  # PreToolUse + PostToolUse of one tool call
        self.change_paths: list[str] = []      # and the file it wrote

    def fire(self, name: str, **fields) -> dict | None:
        data = json.loads((PAYLOADS / f"{name}.json").read_text().replace(CAPTURED_ROOT, str(self.repo)))
        data.update(session_id=self.sid, **fields)
        started = time.perf_counter()
        proc = subprocess.run(self.hook, input=json.dumps(data).encode(), cwd=self.repo, env=self.env, capture_output=True)
        self.hook_seconds.append(time.perf_counter() - started)
        self.hook_names.append(name)
        output = json.loads(proc.stdout) if proc.stdout.strip() else None
        message = (output or {}).get("systemMessage", "")
        if proc.returncode or "hook failed" in message:
            self.counters["hook_failures"] = self.counters.get("hook_failures", 0) + 1
            self.note("hook failed", hook=data["hook_event_name"], rc=proc.returncode,
                      detail=(message or proc.stderr.decode(errors="replace"))[-500:])
        if UNTRACED in message:
            self.counters["untraced_commands"] = self.counters.get("untraced_commands", 0) + 1
            self.note("command ran untraced", detail=message[-500:])
        return output

    def shell(self, command: str) -> list[str]:
        """Claude Code runs a Bash command as `$CLAUDE_CODE_SHELL_PREFIX '<command>'`: the tracer."""
        return [*self.prefix, command]

    def shell_env(self) -> dict:
        # Claude Code's Bash subprocesses carry the session id: the tracer attributes by it.
        return clean_env({"CLAUDE_CODE_SESSION_ID": self.sid, "CLAUDE_PROJECT_DIR": str(self.repo)})

    def setup(self) -> dict:
        self.fire("SessionStart")
        self.fire("UserPromptSubmit", prompt=f"benchmark task of {self.sid}")
        return {}

    def run_op(self, k: int, op: dict) -> None:
        tool = {"write": "Write", "edit": "Edit", "bash": "Bash"}[op["kind"]]
        full = self.repo / op["path"]
        if tool == "Write":
            tool_input = {"file_path": str(full), "content": op["content"]}
        elif tool == "Edit":
            tool_input = {"file_path": str(full), "old_string": op["old"], "new_string": op["new"], "replace_all": False}
        else:
            tool_input = {"command": op["command"], "description": "generate a file"}
        call = f"toolu_{uuid.uuid4().hex[:24]}"
        before = len(self.hook_seconds)
        for attempt in range(BUSY_RETRIES + 1):
            out = self.fire(f"PreToolUse_{tool}", tool_name=tool, tool_input=tool_input, tool_use_id=call)
            decision = (out or {}).get("hookSpecificOutput", {})
            if decision.get("permissionDecision") != "deny":
                break
            reason = decision.get("permissionDecisionReason", "")
            # "being written right now by another session ... Retry": the agent retries, as told.
            if "being written right now" in reason and attempt < BUSY_RETRIES:
                self.counters["busy_retries"] = self.counters.get("busy_retries", 0) + 1
                self.note("denied while another session wrote the file; retried", op=k, path=op["path"])
                continue
            self.note("denied", op=k, path=op["path"], reason=reason[:300])
            self._took(op, before)
            return
        original = full.read_text() if tool != "Bash" and full.exists() else None
        super().run_op(k, op)
        if tool == "Write":
            response = {"type": "update" if original is not None else "create", "filePath": str(full),
                        "content": op["content"], "structuredPatch": [], "originalFile": original}
        elif tool == "Edit":
            response = {"filePath": str(full), "oldString": op["old"], "newString": op["new"], "originalFile": original,
                        "structuredPatch": [], "userModified": False, "replaceAll": False}
        else:
            response = {"stdout": "", "stderr": "", "interrupted": False, "isImage": False}
        self.fire(f"PostToolUse_{tool}", tool_name=tool, tool_input=tool_input, tool_use_id=call, tool_response=response)
        self._took(op, before)

    def _took(self, op: dict, before: int) -> None:
        self.change_seconds.append(sum(self.hook_seconds[before:]))
        self.change_paths.append(op["path"])

    def edit(self) -> dict:
        return {**super().edit(), "hook_seconds": self.hook_seconds, "hook_names": self.hook_names,
                "change_seconds": self.change_seconds, "change_paths": self.change_paths}

    def commit(self) -> dict:
        """Claude Code's Stop hook: vbranch commits the session's branch at the end of the turn."""
        started = time.perf_counter()
        out = self.fire("Stop")
        message = (out or {}).get("systemMessage", "")
        held = any(sign in message for sign in HELD_BACK)
        if held:
            self.note("commit blocked", detail=message[:500])
        return {"stop_seconds": time.perf_counter() - started, "blocked": held}


def main(argv: list[str]) -> int:
    strategy, repo, root, plan_file, index, start = argv
    plan = json.loads(Path(plan_file).read_text())["sessions"][int(index)]
    cls = WorktreeSession if strategy == "worktrees" else VbranchSession
    session = cls(Path(repo), Path(root), plan, float(start))
    for line in sys.stdin:
        phase = line.strip()
        if not phase:
            continue
        started = time.perf_counter()
        try:
            result = getattr(session, phase)()
            ok, error = True, None
        except (GitFailed, OSError) as exc:
            result, ok, error = {}, False, str(exc)
        reply = {"phase": phase, "ok": ok, "error": error, "seconds": time.perf_counter() - started,
                 "counters": session.counters, "events": session.events, **result}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
