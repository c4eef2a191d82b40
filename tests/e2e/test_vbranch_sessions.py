"""vbranch end to end: the real Claude Code CLI, several sessions sharing one
working directory, vbranch's hooks installed with `install(top, "local")`.

The model is the scripted fake API of fake_api.py, extended here into a
*conductor* (`Conductor`) that decides not only what each session does but
when: a step can wait for a barrier (two sessions issue an Edit at the same
instant), a mutex (no two sessions inside a Bash call at once), or an event
the test sets (a session is held, still live, while another one runs). A
session's tool phase lasts from the reply carrying its tool_use until its next
request arrives; the CLI sends that request only after the tool's PostToolUse
hooks returned, so a step guarded by a mutex covers the whole command window
vbranch opens at PreToolUse and closes at PostToolUse.

The four-session test here keeps Bash windows from overlapping each other (a
mutex), as it did before vbranch traced commands; test_traced_sessions.py runs
four sessions whose commands overlap on purpose, and
`test_overlapping_bash_appends_are_attributed_by_process` two that append to one file.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from vbranch.agents.claude_code import install

from . import claude_cli
from .fake_api import DONE_TEXT, FakeAnthropic, reply_blocks, script_name, tool_results

SESSION_TIMEOUT = 120  # one CLI session, hooks included
GATE_TIMEOUT = 60  # longest a scripted step waits for a barrier, mutex or event
CMD_TIMEOUT = 60  # git and vbranch commands run by the test
WORKSPACE_REF = "refs/heads/vbranch/workspace"


# --------------------------------------------------------------- the conductor


def _calls(step):
    """Tool calls of a step: a call dict, a list of them, or none (text)."""
    if isinstance(step, dict) and "tool" in step:
        return [step]
    if isinstance(step, list):
        return step
    return []


def _text(step):
    return step["text"] if isinstance(step, dict) else str(step)


def resolve_step(steps, results):
    """The step to issue after `results` (the tool_results so far, in order).

    A single-call step with ``"retry": N`` whose result was an error is
    repeated, up to N times, after a Read of its file_path: what a model does
    when the CLI says the file changed since it was read.
    """
    i = 0
    for step in steps:
        calls = _calls(step)
        if not calls:
            return step
        attempts = 0
        while True:
            if i >= len(results):
                return step
            got = results[i:i + len(calls)]
            i += len(calls)
            if len(calls) == 1 and got[0]["is_error"] and attempts < calls[0].get("retry", 0):
                attempts += 1
                if i >= len(results):
                    return {"tool": "Read", "input": {"file_path": calls[0]["input"]["file_path"]}}
                i += 1  # the Read's result
                continue
            break
    return DONE_TEXT


class Conductor(FakeAnthropic):
    """The scripted API, with steps that wait their turn.

    Annotations on a step (a tool call dict, the first call of a parallel
    list, or a ``{"text": ...}`` final step); reply_blocks ignores them:

    - ``"arrive": EVENT``: set EVENT when the request for this step arrives;
    - ``"after": EVENT``: issue the step only once EVENT is set;
    - ``"barrier": NAME``: issue it only once every script with a step on
      that barrier has asked for it (sizes given to the constructor);
    - ``"mutex": NAME``: no two scripts inside a step holding NAME at once.
    """

    def __init__(self, scripts, barriers=None):
        super().__init__(scripts)
        self.barrier_size = dict(barriers or {})
        self.barrier_seen = defaultdict(set)
        self._events = {}
        self.holding = {}  # script -> the mutex its current tool step holds
        self.cond = threading.Condition()
        self.timeline = []  # (seconds, script, what): for failure messages
        self.t0 = time.monotonic()

    def event(self, name):
        """The threading.Event called `name` (created on first use, by either side)."""
        with self._lock:
            return self._events.setdefault(name, threading.Event())

    def note(self, name, what):
        with self._lock:
            self.timeline.append((round(time.monotonic() - self.t0, 3), name, what))

    def describe(self):
        return "timeline:\n" + "\n".join("  %7.3f %-10s %s" % t for t in self.timeline) + \
            "\nerrors: %s" % self.errors

    def _wait(self, ready, what):
        """Wait on self.cond (held) until ready(); an error after GATE_TIMEOUT."""
        if not self.cond.wait_for(ready, GATE_TIMEOUT):
            with self._lock:
                self.errors.append("timed out waiting for " + what)

    def answer(self, path, body):
        name = script_name(body)
        if not body.get("tools") or name not in self.scripts:
            return super().answer(path, body)
        results = tool_results(body)
        step = resolve_step(self.scripts[name], results)
        calls = _calls(step)
        ann = calls[0] if calls else (step if isinstance(step, dict) else {})
        with self.cond:
            self.holding.pop(name, None)  # its previous tool step is over
            self.cond.notify_all()
        self.note(name, "asks, %d results" % len(results))
        if "arrive" in ann:
            self.event(ann["arrive"]).set()
        if "after" in ann and not self.event(ann["after"]).wait(GATE_TIMEOUT):
            with self._lock:
                self.errors.append("timed out waiting for event " + ann["after"])
        with self.cond:
            if "barrier" in ann:
                barrier = ann["barrier"]
                self.barrier_seen[barrier].add(name)
                self.cond.notify_all()
                self._wait(lambda: len(self.barrier_seen[barrier]) >= self.barrier_size[barrier],
                           "barrier %s (%s)" % (barrier, name))
            if "mutex" in ann and calls:
                mutex = ann["mutex"]
                self._wait(lambda: mutex not in self.holding.values(), "mutex %s (%s)" % (mutex, name))
                self.holding[name] = mutex
        self.note(name, "gets %s" % ([c["tool"] for c in calls] or "final text"))
        blocks, stop_reason = reply_blocks(_text(step) if not calls else step)
        self.record({"method": "POST", "path": path, "body": body, "script": name,
                     "side": False, "reply": blocks})
        return blocks, stop_reason


# ----------------------------------------------------------------- the repository


def git(repo, *args, check=True):
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError("git %s failed: %s" % (" ".join(args), proc.stderr))
    return proc.stdout


def vbranch(repo, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "vbranch", "-C", str(repo), *args],
                          capture_output=True, text=True, timeout=CMD_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError("vbranch %s failed (%d): %s%s" % (
            " ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


def vb_status(repo):
    return json.loads(vbranch(repo, "status", "--json"))


def make_repo(root, files):
    """A git repository with `files` committed on main, vbranch set up, hooks installed."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "e2e@example.com")
    git(repo, "config", "user.name", "e2e")
    for path, text in files.items():
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    vbranch(repo, "init")
    install(repo, "local")  # also keeps the local settings file out of the shared work
    return repo


def tree_files(repo, rev):
    """path -> text of every file in commit `rev`."""
    names = git(repo, "ls-tree", "-r", "--name-only", "-z", rev).split("\0")
    return {n: git(repo, "show", "%s:%s" % (rev, n)) for n in names if n}


def work_files(repo):
    out = {}
    for path in Path(repo).rglob("*"):
        rel = path.relative_to(repo).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".claude/")):
            out[rel] = path.read_text()
    return out


def replace_line(text, number, new):
    lines = text.splitlines(keepends=True)
    lines[number - 1] = new + "\n"
    return "".join(lines)


def branch_of(status, session_id):
    found = [b for b in status["branches"] if session_id in [s["id"] for s in b["sessions"]]]
    assert len(found) == 1, "session %s on %d branches: %s" % (session_id, len(found), status)
    return found[0]


def hook_log(repo):
    """vbranch's log of hook failures (a hook that fails lets the tool run)."""
    log = repo / ".git" / "vbranch" / "hook.log"
    return log.read_text() if log.exists() else ""


def describe(api, runs, repo=None):
    parts = [api.describe()]
    for name, run in runs.items():
        parts.append("--- %s: %s" % (name, run.describe()))
    if repo is not None:
        parts.append("--- hook.log:\n" + hook_log(repo))
    return "\n".join(parts)


class Sessions:
    """Start and finish scripted CLI sessions in one repository.

    `start`/`finish`: one prompt in -p mode; the CLI ends the session (Stop,
    then SessionEnd) when the turn is over. `open_turn`/`close`: stream-json
    input, so the session stays live after its turn (Stop has run, SessionEnd
    not) until its stdin closes, like an interactive session between prompts.
    """

    def __init__(self, claude_bin, repo, root, api):
        self.bin, self.repo, self.root, self.api = claude_bin, repo, root, api
        # Hooks come from the repository's .claude/settings.local.json; --settings adds nothing.
        self.settings = claude_cli.write_settings(root / "no-extra-settings.json", {})
        self.ids = {}
        self.procs = {}
        self.streams = {}  # name -> (proc, queue of stdout lines, result of its turn)

    def _prompt(self, name, prompt):
        self.ids[name] = str(uuid.uuid4())
        return "SCRIPT=%s %s" % (name, prompt)

    def start(self, name, prompt):
        self.procs[name] = claude_cli.start_claude(
            self.bin, self.repo, self._prompt(name, prompt), self.settings, self.api.url,
            self.root / "home", session_id=self.ids.get(name) or None)

    def finish(self, name):
        return claude_cli.finish_claude(self.procs.pop(name), SESSION_TIMEOUT)

    def open_turn(self, name, prompt):
        """Run one turn of a stream-json session; returns its result, the session stays open."""
        text = self._prompt(name, prompt)
        args = [self.bin, "-p", "--input-format", "stream-json", "--output-format", "stream-json",
                "--verbose", "--permission-mode", "bypassPermissions",
                "--settings", str(self.settings), "--session-id", self.ids[name]]
        stderr = open(self.root / ("%s.stderr" % name), "w")
        proc = subprocess.Popen(args, cwd=str(self.repo),
                                env=claude_cli.claude_env(self.api.url, self.root / "home"),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                text=True, start_new_session=True)
        stderr.close()
        proc.started_at = time.monotonic()
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)],
                         daemon=True).start()
        self.streams[name] = [proc, lines, None, []]
        proc.stdin.write(json.dumps({"type": "user",
                                     "message": {"role": "user", "content": text}}) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + SESSION_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError("%s: no result from its turn: %s" % (
                    name, "".join(self.streams[name][3])[-3000:]))
            self.streams[name][3].append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") == "result":
                self.streams[name][2] = event
                return event

    def close(self, name, timeout=SESSION_TIMEOUT):
        """End a stream-json session (SessionEnd runs) as a ClaudeRun of its turn."""
        proc, lines, result, seen = self.streams.pop(name)
        proc.stdin.close()
        timed_out = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        stderr = (self.root / ("%s.stderr" % name)).read_text()
        return claude_cli.ClaudeRun(proc.returncode, "".join(seen), stderr, result,
                                    time.monotonic() - proc.started_at, timed_out)

    def kill_all(self):
        for proc in self.procs.values():
            claude_cli.finish_claude(proc, timeout=1)
        for name in list(self.streams):
            self.close(name, timeout=1)


def run_scripts(claude_bin, repo, tmp_path, scripts, prompt, barriers=None):
    """Run every script as its own CLI session, all at once; each must end cleanly with "NAME done",
    nothing the conductor waited for timed out, and no hook failed. Returns (api, sessions, runs)."""
    runs = {}
    with Conductor(scripts, barriers=barriers) as api:
        sessions = Sessions(claude_bin, repo, tmp_path, api)
        try:
            for name in scripts:
                sessions.start(name, prompt % name)
            runs = {name: sessions.finish(name) for name in scripts}
        finally:
            sessions.kill_all()
    for name in scripts:
        assert_clean_run(runs[name], "%s done" % name, api, runs, repo)
    assert not api.errors and hook_log(repo) == "", describe(api, runs, repo)
    return api, sessions, runs


def assert_clean_run(run, text, api, runs, repo):
    assert run.returncode == 0 and run.output is not None, describe(api, runs, repo)
    assert run.output["result"] == text, describe(api, runs, repo)
    assert run.output["permission_denials"] == [], describe(api, runs, repo)


# ----------------------------------------------------------------------- tests


SHARED = "".join("shared %d\n" % i for i in range(1, 9))
NOTES = "# notes\n" + "".join("note %d\n" % i for i in range(1, 7))
LOG = "log start\n"
BASE = {"shared.txt": SHARED, "notes.md": NOTES, "shared.log": LOG, "README": "readme\n"}


def four_scripts(repo):
    def read(path):
        return {"tool": "Read", "input": {"file_path": "%s/%s" % (repo, path)}}

    def edit(path, old, new, **ann):
        return dict({"tool": "Edit", "input": {"file_path": "%s/%s" % (repo, path),
                                               "old_string": old, "new_string": new},
                     "retry": 3}, **ann)

    def write(path, content):
        return {"tool": "Write", "input": {"file_path": "%s/%s" % (repo, path), "content": content}}

    def bash(command):
        return {"tool": "Bash", "input": {"command": command, "description": "append"},
                "mutex": "bash"}

    return {
        # alpha and beta: Edits of one file, different lines, issued at the same instant.
        "alpha": [read("shared.txt"),
                  edit("shared.txt", "shared 2\n", "shared 2 alpha\n", barrier="same-file"),
                  write("alpha_new.txt", "alpha new\n"),
                  bash("echo alpha bash >> alpha_new.txt"),
                  "alpha done"],
        "beta": [read("shared.txt"),
                 edit("shared.txt", "shared 6\n", "shared 6 beta\n", barrier="same-file"),
                 write("beta_new.txt", "beta new\n"),
                 bash("echo beta bash >> beta_new.txt"),
                 "beta done"],
        # gamma and delta: both append to shared.log through Bash (first and last step),
        # and edit different lines of notes.md whenever their scripts get there.
        "gamma": [bash("echo gamma >> shared.log"),
                  write("gamma_new.txt", "gamma new\n"),
                  read("notes.md"),
                  edit("notes.md", "note 2\n", "note 2 gamma\n"),
                  "gamma done"],
        "delta": [write("delta_new.txt", "delta new\n"),
                  read("notes.md"),
                  edit("notes.md", "note 5\n", "note 5 delta\n"),
                  bash("echo delta >> shared.log"),
                  "delta done"],
    }


def four_expected():
    """Each branch's whole tree: the base plus that session's changes only."""
    return {
        "alpha": dict(BASE, **{"shared.txt": replace_line(SHARED, 2, "shared 2 alpha"),
                               "alpha_new.txt": "alpha new\nalpha bash\n"}),
        "beta": dict(BASE, **{"shared.txt": replace_line(SHARED, 6, "shared 6 beta"),
                              "beta_new.txt": "beta new\nbeta bash\n"}),
        "gamma": dict(BASE, **{"notes.md": replace_line(NOTES, 3, "note 2 gamma"),
                               "shared.log": LOG + "gamma\n", "gamma_new.txt": "gamma new\n"}),
        "delta": dict(BASE, **{"notes.md": replace_line(NOTES, 6, "note 5 delta"),
                               "shared.log": LOG + "delta\n", "delta_new.txt": "delta new\n"}),
    }


def test_four_sessions_each_branch_gets_exactly_its_changes(claude_bin, tmp_path):
    repo = make_repo(tmp_path, BASE)
    base = git(repo, "rev-parse", "main").strip()
    scripts = four_scripts(repo)
    names = list(scripts)
    api, sessions, runs = run_scripts(claude_bin, repo, tmp_path, scripts, "work on the %s task", {"same-file": 2})

    # The two same-instant Edits of shared.txt: vbranch's lease lets one write
    # at a time. The CLI's own check then refuses the later one ("changed since
    # it was last read"), never overwriting; the script re-reads and retries.
    # Whatever failed did so through the CLI, not a vbranch denial.
    for name in names:
        for result in api.tool_results(name):
            if result["is_error"]:
                assert "read" in result["content"].lower(), describe(api, runs, repo)
                assert "vbranch" not in result["content"], describe(api, runs, repo)

    # Every working file holds every session's changes.
    expected = four_expected()
    work = work_files(repo)
    log_lines = work["shared.log"].splitlines()
    assert log_lines[0] == "log start" and sorted(log_lines[1:]) == ["delta", "gamma"], work
    want = {
        "README": BASE["README"],
        "shared.txt": replace_line(replace_line(SHARED, 2, "shared 2 alpha"), 6, "shared 6 beta"),
        "notes.md": replace_line(replace_line(NOTES, 3, "note 2 gamma"), 6, "note 5 delta"),
        "shared.log": work["shared.log"],
    }
    want.update({"%s_new.txt" % n: expected[n]["%s_new.txt" % n] for n in names})
    assert work == want

    # vbranch: one branch per session, nothing unattributed, nothing contested.
    status = vb_status(repo)
    assert status["unattributed"] == [], status
    assert status["contested"] == [], status
    assert sorted(s["id"] for b in status["branches"] for s in b["sessions"]) == \
        sorted(sessions.ids.values())
    for name in names:
        branch = branch_of(status, sessions.ids[name])
        assert [s["ended"] for s in branch["sessions"]] == [True]
        changed = sorted(p for p, t in expected[name].items() if t != BASE.get(p))
        assert sorted(f["path"] for f in branch["files"]) == changed, (name, branch)
        # The Stop hook committed it: the real branch holds exactly its session's changes.
        assert branch["ref"] == "refs/heads/" + branch["name"]
        assert branch["head"] and branch["head"] != base, (name, branch)
        assert git(repo, "rev-parse", branch["ref"]).strip() == branch["head"]
        git(repo, "merge-base", "--is-ancestor", base, branch["ref"])  # fails unless based on main
        assert tree_files(repo, branch["ref"]) == expected[name], name
    # HEAD stayed on the shared workspace; main did not move.
    assert git(repo, "symbolic-ref", "HEAD").strip() == WORKSPACE_REF
    assert git(repo, "rev-parse", "main").strip() == base


@pytest.mark.parametrize("owner_state", ["mid-turn", "between-turns"])
def test_edit_of_a_live_sessions_lines_is_denied(claude_bin, tmp_path, owner_state):
    """The owner changed line 2 and is live when the intruder tries to change it.

    mid-turn: the owner's last model request is held, so its turn has not
    ended (no Stop, no SessionEnd) and line 2 is uncommitted. between-turns:
    a stream-json session whose turn is over: Stop committed line 2 to its
    branch, but the session is open (no SessionEnd) and nothing has landed.
    """
    text = "".join("line %d\n" % i for i in range(1, 9))
    repo = make_repo(tmp_path, {"f.txt": text})
    base = git(repo, "rev-parse", "main").strip()
    path = "%s/f.txt" % repo
    held = owner_state == "mid-turn"
    scripts = {
        "owner": [
            {"tool": "Read", "input": {"file_path": path}},
            {"tool": "Edit", "input": {"file_path": path, "old_string": "line 2\n",
                                       "new_string": "line 2 owner\n"}},
            {"text": "owner done", "arrive": "owner-waiting", "after": "intruder-finished"}
            if held else "owner done",
        ],
        "intruder": [
            {"tool": "Read", "input": {"file_path": path}},
            {"tool": "Edit", "input": {"file_path": path, "old_string": "line 2 owner\n",
                                       "new_string": "line 2 intruder\n"}},
            {"tool": "Edit", "input": {"file_path": path, "old_string": "line 7\n",
                                       "new_string": "line 7 intruder\n"}},
            # would throw away the owner's line 2 along with its own line 7
            {"tool": "Bash", "input": {"command": "git checkout -- f.txt", "description": "undo"}},
            "intruder done",
        ],
    }
    owner_only = replace_line(text, 2, "line 2 owner")
    runs = {}
    with Conductor(scripts) as api:
        sessions = Sessions(claude_bin, repo, tmp_path, api)
        try:
            if held:
                sessions.start("owner", "change line two")
                assert api.event("owner-waiting").wait(GATE_TIMEOUT), describe(api, runs, repo)
            else:
                sessions.open_turn("owner", "change line two")
            live = branch_of(vb_status(repo), sessions.ids["owner"])
            assert live["sessions"][0]["ended"] is False, live
            if held:
                assert live["head"] == base, live  # line 2 not committed yet
            else:
                assert tree_files(repo, live["ref"]) == {"f.txt": owner_only}  # committed by Stop
            sessions.start("intruder", "change lines two and seven")
            runs["intruder"] = sessions.finish("intruder")
            api.event("intruder-finished").set()
            runs["owner"] = sessions.finish("owner") if held else sessions.close("owner")
        finally:
            api.event("intruder-finished").set()
            sessions.kill_all()
    assert_clean_run(runs["owner"], "owner done", api, runs, repo)
    intruder = runs["intruder"]
    assert intruder.returncode == 0 and intruder.output["result"] == "intruder done", \
        describe(api, runs, repo)
    assert not api.errors and hook_log(repo) == "", describe(api, runs, repo)

    # The CLI reports the denial, and the model was told why.
    denials = intruder.output["permission_denials"]
    assert [(d["tool_name"], d["tool_input"].get("file_path"), d["tool_input"].get("old_string"))
            for d in denials[:1]] == [("Edit", path, "line 2 owner\n")], denials
    assert [(d["tool_name"], d["tool_input"]["command"]) for d in denials[1:]] == \
        [("Bash", "git checkout -- f.txt")], denials
    read, denied, allowed, checkout = api.tool_results("intruder")
    assert denied["is_error"] is True
    assert "vbranch" in denied["content"] and "f.txt lines 2-2" in denied["content"], denied
    assert sessions.ids["owner"] in denied["content"], denied
    assert read["is_error"] is False and allowed["is_error"] is False, allowed
    assert checkout["is_error"] is True and "vbranch" in checkout["content"], checkout

    # The owner's line is intact; the intruder's own edit went through.
    want = replace_line(replace_line(text, 2, "line 2 owner"), 7, "line 7 intruder")
    assert (repo / "f.txt").read_text() == want
    status = vb_status(repo)
    assert status["unattributed"] == [] and status["contested"] == [], status
    owner = branch_of(status, sessions.ids["owner"])
    other = branch_of(status, sessions.ids["intruder"])
    assert owner["sessions"][0]["ended"] is True  # SessionEnd came after the intruder
    assert [(f["path"], f["lines"]) for f in owner["files"]] == [("f.txt", [[2, 2]])]
    assert [(f["path"], f["lines"]) for f in other["files"]] == [("f.txt", [[7, 7]])]
    assert tree_files(repo, owner["ref"]) == {"f.txt": owner_only}
    assert tree_files(repo, other["ref"]) == {"f.txt": replace_line(text, 7, "line 7 intruder")}


# Each would hide, discard or commit shared uncommitted work whoever made it.
# (`git checkout -- FILE` is refused only over other live sessions' lines: see
# test_edit_of_a_live_sessions_lines_is_denied.)
DESTRUCTIVE = ["git stash", "git stash push -u -m wip", "git reset --hard",
               "git commit -qam wip", "git switch -c elsewhere"]


def test_git_stash_and_other_destructive_commands_are_denied(claude_bin, tmp_path):
    text = "".join("line %d\n" % i for i in range(1, 6))
    repo = make_repo(tmp_path, {"f.txt": text})
    base = git(repo, "rev-parse", "main").strip()
    path = "%s/f.txt" % repo
    script = [
        {"tool": "Write", "input": {"file_path": "%s/new.txt" % repo, "content": "new\n"}},
        {"tool": "Read", "input": {"file_path": path}},
        {"tool": "Edit", "input": {"file_path": path, "old_string": "line 3\n",
                                   "new_string": "line 3 edited\n"}},
    ] + [{"tool": "Bash", "input": {"command": c, "description": "git"}} for c in DESTRUCTIVE] + [
        {"tool": "Bash", "input": {"command": "git stash list", "description": "list"}},
        "stasher done",
    ]
    with Conductor({"stasher": script}) as api:
        sessions = Sessions(claude_bin, repo, tmp_path, api)
        try:
            sessions.start("stasher", "tidy up the work")
            runs = {"stasher": sessions.finish("stasher")}
        finally:
            sessions.kill_all()
    run = runs["stasher"]
    assert run.returncode == 0 and run.output["result"] == "stasher done", describe(api, runs, repo)
    assert not api.errors and hook_log(repo) == "", describe(api, runs, repo)

    denials = run.output["permission_denials"]
    assert [(d["tool_name"], d["tool_input"]["command"]) for d in denials] == \
        [("Bash", c) for c in DESTRUCTIVE], describe(api, runs, repo)
    results = api.tool_results("stasher")
    assert [r["is_error"] for r in results] == [False] * 3 + [True] * len(DESTRUCTIVE) + [False]
    for result in results[3:-1]:  # 2.1.332 puts "PreToolUse:Bash hook error: " before the reason
        assert result["content"].split("hook error: ")[-1].startswith("vbranch: `git "), result

    # Nothing was stashed, reset, committed or switched; every change is still there.
    assert git(repo, "stash", "list") == ""
    assert git(repo, "symbolic-ref", "HEAD").strip() == WORKSPACE_REF
    assert git(repo, "rev-parse", "main").strip() == base
    assert "wip" not in git(repo, "log", "--all", "--format=%s")  # (HEAD moves: vbranch's workspace commit)
    assert git(repo, "branch", "--list", "elsewhere") == ""
    assert work_files(repo) == {"f.txt": replace_line(text, 3, "line 3 edited"), "new.txt": "new\n"}
    status = vb_status(repo)
    assert status["unattributed"] == [] and status["contested"] == [], status
    branch = branch_of(status, sessions.ids["stasher"])
    assert tree_files(repo, branch["ref"]) == work_files(repo)


def test_overlapping_bash_appends_are_attributed_by_process(claude_bin, tmp_path):
    """Two sessions' commands run at once and both append to shared.log.

    Both commands are running (both windows open) before either appends, and
    neither exits before both have appended: by time window both lines would be
    contested. The command tracer knows which process wrote what: each line goes
    to the session whose command appended it, and both Stop commits hold it.
    """
    repo = make_repo(tmp_path, {"shared.log": LOG})
    sync = tmp_path / "sync"  # rendezvous files, outside the repository
    sync.mkdir()
    wait = "for i in $(seq 400); do [ -e %s ] && break; sleep 0.05; done"

    def command(me, other, first):
        steps = ["touch %s/%s.in" % (sync, me), wait % ("%s/%s.in" % (sync, other))]
        if not first:  # one after the other, so that each append is one process's alone
            steps.append(wait % ("%s/%s.appended" % (sync, other)))
        steps += ["echo %s >> shared.log" % me, "touch %s/%s.appended" % (sync, me),
                  "touch %s/%s.out" % (sync, me), wait % ("%s/%s.out" % (sync, other))]
        return "; ".join(steps)

    scripts = {me: [{"tool": "Bash", "input": {"command": command(me, other, me == "gamma"),
                                               "description": "append"}},
                    "%s done" % me]
               for me, other in (("gamma", "delta"), ("delta", "gamma"))}
    api, sessions, runs = run_scripts(claude_bin, repo, tmp_path, scripts, "log the %s step")
    assert {(sync / (n + s)).exists() for n in scripts for s in (".in", ".out")} == {True}

    assert (repo / "shared.log").read_text() == LOG + "gamma\ndelta\n"
    status = vb_status(repo)
    assert status["unattributed"] == [] and status["contested"] == [], status
    for name, line in (("gamma", 2), ("delta", 3)):
        branch = branch_of(status, sessions.ids[name])
        assert [(f["path"], f["lines"]) for f in branch["files"]] == [("shared.log", [[line, line]])], branch
        assert tree_files(repo, branch["ref"]) == {"shared.log": LOG + name + "\n"}, name  # Stop committed it
