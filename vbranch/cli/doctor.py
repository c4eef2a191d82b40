"""`vbranch doctor`: is this setup working, and if not, what fixes it.

Two halves, so that the judging can be tested without a broken machine:
- `gather(start)` does the I/O and returns plain facts: the repository and its vbranch
  state, every Claude Code settings file vbranch may be installed in, the watcher, the
  configuration, a probe of the command tracer, libseccomp, the Claude Code CLI.
- `checks(facts)` is pure: one dict per check, `{"name", "level", "ok", "detail", "fix"}`,
  level "ok", "warn" (works, but worth knowing) or "fail" (a problem; `fix` says what to run).

`run(start)` is both, plus the exit code: 0 when nothing failed (warnings allowed), 1 otherwise.
Plain data only (no pydantic): `--json` is json.dumps of `run`'s report.

The tracer probe runs one trivial command (`echo probe > probe.txt`) under the real
tracer (`python -S vbranch/tracer.py`, as Claude Code runs it) in a scratch directory
made to look like a set-up repository. So it tries seccomp user notification for real,
in this environment (kernel, container, libseccomp), costs ~50 ms, and never touches the
user's repository or its trace logs; the repository's cached filter is only read.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Mapping

PINNED_CLAUDE = "2.1.197"  # what .ci/run pins and the end-to-end tests drive
NEWEST_TESTED_CLAUDE = "2.1.332"  # the newest release the end-to-end tests ran against
TESTED_CLAUDE = (PINNED_CLAUDE, NEWEST_TESTED_CLAUDE)
BG_ISOLATION_SINCE = "2.1.169"  # background sessions blocked in the shared checkout unless worktree.bgIsolation is "none"
PROBE_SESSION = "vbranch-doctor-probe"
PROBE_FILE = "probe.txt"
PROBE_WAIT = 10.0
PRECEDENCE = ("local", "project", "user")  # Claude Code: .claude/settings.local.json wins over .claude/settings.json over ~/.claude

EXIT_OK = 0
EXIT_PROBLEM = 1


# --- gathering (I/O) ----------------------------------------------------------------------------


def gather(start: Path | str = ".", *, env: Mapping[str, str] | None = None, home: Path | None = None,
           probe: bool = True) -> dict:
    """Every fact the checks judge, as plain data."""
    from vbranch.agents import claude_code
    from vbranch.state.workspace import find_repo

    env = os.environ if env is None else env
    found = None if "GIT_DIR" in env else find_repo(start)
    if found is None and "GIT_DIR" in env:
        from vbranch.git import gitcli

        try:
            found = gitcli.discover(start)
        except Exception:  # noqa: BLE001 - not a repository: said by the check
            found = None
    facts: dict = {
        "repo": None if found is None else {"top": str(found[0]), "git_dir": str(found[1])},
        "setup": None,
        "expected": _expected(),
        "settings": [],
        "watcher": None,
        "config": None,
        "tracer_mode": None,
        "probe": None,
        "seccomp": _seccomp(),
        "claude": find_claude(env),
    }
    top = Path(found[0]) if found else None
    for scope in PRECEDENCE:
        if top is None and scope != "user":
            continue
        path = claude_code.settings_path(top or Path("."), scope, home)
        facts["settings"].append(read_settings(path, scope, facts["expected"]))
    state_dir = Path(found[1]) / "vbranch" if found else None
    if found is not None:
        facts["setup"] = _setup(Path(found[1]))
        facts["config"] = _config(state_dir)
        if facts["setup"]["state"]:
            facts.update(_workspace_facts(top))
    if probe:
        facts["probe"] = probe_tracer(state_dir if state_dir is not None and state_dir.is_dir() else None)
    return facts


def _expected() -> dict:
    from vbranch import native
    from vbranch.agents import claude_code, settings

    binary, why = native.hook_client()  # built now if it can be, as `vbranch install` would
    return {
        "hook": settings.hook_command() + " hook",
        "python_hook": settings.python_hook_command() + " hook",
        "client": {"native": binary, "why": why},
        "prefix": claude_code.tracer_command(),
        "events": sorted(claude_code.our_hooks("vbranch")["hooks"]),
    }


def _setup(git_dir: Path) -> dict:
    from vbranch.state.workspace import WORKSPACE_REF

    state = (git_dir / "vbranch" / "state.db").exists()
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        head = None
    active = False
    if state:
        from vbranch.state.store import Store

        store = Store(git_dir / "vbranch" / "state.db")
        try:
            active = store.get_meta("active") == "1"
        finally:
            store.close()
    return {
        "state": state,
        "active": active,
        "head": head[len("ref:"):].strip() if head and head.startswith("ref:") else head,
        "workspace_ref": WORKSPACE_REF,
    }


def _workspace_facts(top: Path) -> dict:
    from vbranch.errors import NotInitialized
    from vbranch.ops.status import tracer_mode
    from vbranch.state.workspace import open_workspace
    from vbranch.watch.dirtyset import watcher_status

    try:
        ws = open_workspace(top)
    except NotInitialized:
        return {}
    try:
        mode, why = tracer_mode(ws)
        return {"watcher": watcher_status(ws), "tracer_mode": {"mode": mode, "why": why}}
    finally:
        ws.close()


def _config(state_dir: Path) -> dict:
    from vbranch.state import config

    values, problems = config.load_checked(state_dir)
    return {"path": str(state_dir / config.FILENAME), "problems": problems, "watcher": values["watcher"]}


def read_settings(path: Path, scope: str, expected: dict | None = None) -> dict:
    """What one settings file holds of ours: hook commands per event, the shell prefix, bgIsolation.

    With `expected` (this installation's commands), also which of them run something else
    ("stale": another interpreter or another vbranch checkout), and which client each of the
    others starts ("clients": the native binary, whether it is there, or None for the Python client).
    """
    from vbranch.agents import claude_code, settings
    from vbranch.errors import VbranchError

    out = {"scope": scope, "path": str(path), "exists": path.exists(), "error": None,
           "hooks": {}, "prefix": None, "bg_isolation": None, "stale_hooks": [], "clients": [], "prefix_current": None}
    try:
        data = settings.load(path)[0]
    except VbranchError as error:
        out["error"] = error.message
        return out
    except OSError as error:
        out["error"] = f"{path} cannot be read ({error.strerror or error})"
        return out
    out["hooks"] = {event: [hook["command"] for hook in hooks] for event, hooks in settings.ours_by_event(data).items()}
    env = data.get("env")
    if isinstance(env, dict) and env.get(claude_code.PREFIX) is not None:
        out["prefix"] = str(env[claude_code.PREFIX])
    worktree = data.get("worktree")
    if isinstance(worktree, dict) and "bgIsolation" in worktree:
        out["bg_isolation"] = worktree["bgIsolation"]
    if expected is not None:
        commands = {c for cmds in out["hooks"].values() for c in cmds}
        binaries = set()
        for command in sorted(commands):
            native = settings.split_native(command)  # the native client's command: judged by the Python one it falls back to
            if not same_command(native[1] if native else command, expected["python_hook"]):
                out["stale_hooks"].append(command)
            else:
                binaries.add(native[0] if native else None)
        out["clients"] = [{"binary": b, "present": b is not None and os.access(b, os.X_OK)}
                          for b in sorted(binaries, key=lambda b: b or "")]
        if out["prefix"] is not None:
            out["prefix_current"] = same_command(out["prefix"], expected["prefix"])
    return out


def same_command(installed: str, expected: str) -> bool:
    """Whether an installed command runs what `expected` runs: the same words, except that an
    interpreter may be named by another link in the same directory (a venv's python and python3)
    and a script by another path to the same file."""
    import shlex

    if installed == expected:
        return True
    try:
        a, b = shlex.split(installed), shlex.split(expected)
    except ValueError:
        return False
    if len(a) != len(b):
        return False
    for i, (x, y) in enumerate(zip(a, b)):
        if x == y:
            continue
        if not (os.path.isabs(x) and os.path.isabs(y)) or os.path.realpath(x) != os.path.realpath(y):
            return False
        if i == 0 and os.path.dirname(x) != os.path.dirname(y):
            return False  # another venv (or the system's python) with the same interpreter binary
    return True


def _seccomp() -> dict:
    import ctypes.util
    import importlib.util

    return {
        "platform": sys.platform,
        "library": ctypes.util.find_library("seccomp") if sys.platform.startswith("linux") else None,
        "pyseccomp": importlib.util.find_spec("pyseccomp") is not None,
    }


def find_claude(env: Mapping[str, str] | None = None) -> dict:
    """The Claude Code CLI hooks will run under: $VBRANCH_CLAUDE_BIN, else `claude` on PATH; its version."""
    env = os.environ if env is None else env
    given = env.get("VBRANCH_CLAUDE_BIN")
    path = given or shutil.which("claude", path=env.get("PATH"))
    out = {"path": path, "source": "VBRANCH_CLAUDE_BIN" if given else "PATH", "version": None, "error": None}
    if not path:
        return out
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL, env=dict(env))
    except (OSError, subprocess.TimeoutExpired) as error:
        out["error"] = f"`{path} --version` failed: {error}"
        return out
    text = done.stdout.strip()
    if done.returncode != 0 or "Claude Code" not in text:
        out["error"] = f"`{path} --version` answered {text or done.stderr.strip()!r} (exit {done.returncode})"
        return out
    out["version"] = text.split()[0]
    return out


def probe_tracer(state_dir: Path | None, timeout: float = PROBE_WAIT) -> dict:
    """Run `echo probe > probe.txt` under the tracer in a scratch repository; did it see the write?

    Returns {"traced": bool, "reason": str}. The scratch directory has what tracer.py asks
    of a set-up repository (`.git/vbranch/state.db`, here an empty file) and the seccomp
    filter: the repository's cached one copied (read only), else built there with libseccomp.
    """
    from vbranch import tracefilter, tracer

    if os.environ.get(tracer.TRACED_MARK) and _seccomp_mode() == 2:
        # Run as an agent's Bash command, under the tracer: a second listener would get EBUSY,
        # and this very process is the proof that tracing works here.
        return {"traced": True, "reason": f"vbranch doctor itself runs as a traced command (session "
                                          f"{os.environ[tracer.TRACED_MARK]})"}
    scratch = Path(tempfile.mkdtemp(prefix="vbranch-doctor-"))
    try:
        sd = scratch / ".git" / "vbranch"
        sd.mkdir(parents=True)
        (sd / "state.db").touch()
        if state_dir is not None and tracer.read_filter(str(state_dir)) is not None:
            shutil.copyfile(Path(state_dir) / tracer.FILTER_FILE, sd / tracer.FILTER_FILE)
        elif tracefilter.ensure(sd) is None:
            return {"traced": False, "reason": "no seccomp filter could be built (libseccomp or pyseccomp missing)"}
        env = {k: v for k, v in os.environ.items()
               if k not in (tracer.TRACED_MARK, "VBRANCH_TRACE", *tracer.SESSION_VARIABLES)}
        env["VBRANCH_SESSION"] = PROBE_SESSION
        with tempfile.TemporaryFile() as errors:  # not a pipe: the supervisor may outlive the command
            try:
                done = subprocess.run(
                    [sys.executable, "-S", os.path.abspath(tracer.__file__), f"echo probe > {PROBE_FILE}"],
                    cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                    timeout=timeout,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                return {"traced": False, "reason": f"the tracer did not run the probe command ({error})"}
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip()
        if done.returncode != 0 or not (scratch / PROBE_FILE).exists():
            return {"traced": False, "reason": f"the probe command failed under the tracer (exit {done.returncode}){': ' + said if said else ''}"}
        log = _ended_log(sd / tracer.TRACE_DIR, timeout)
        if log is None:
            return {"traced": False, "reason": "the tracer wrote no complete trace log"}
        head = log[0].split("\t")
        traced, reason = (head[6] == "1", head[7]) if len(head) >= 8 else (False, "unreadable trace log")
        if not traced:
            return {"traced": False, "reason": reason or "not traced"}
        if not any(line.startswith("W\t") and line.endswith("\t" + PROBE_FILE) for line in log):
            return {"traced": False, "reason": "the tracer ran but did not report the probe's write"}
        loop = head[8] if len(head) >= 9 else "python"  # which supervisor loop answered (tracer.py's header)
        return {"traced": True, "reason": "a probe command's write was reported by seccomp user notification", "loop": loop}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _seccomp_mode() -> int | None:
    """This process's seccomp mode (/proc/self/status: 0 none, 2 filtered), None when unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Seccomp:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _ended_log(folder: Path, timeout: float) -> list[str] | None:
    """The lines of the one trace log in `folder`, once the supervisor wrote its end line."""
    deadline = time.monotonic() + timeout
    while True:
        for log in folder.glob("*.log") if folder.is_dir() else []:
            lines = log.read_text(errors="replace").split("\n")[:-1]
            if lines and lines[-1].startswith("E\t"):
                return lines
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


# --- judging (pure) -----------------------------------------------------------------------------


def check(name: str, level: str, detail: str, fix: str | None = None) -> dict:
    return {"name": name, "level": level, "ok": level != "fail", "detail": detail, "fix": fix}


def checks(facts: dict) -> list[dict]:
    """Every check, in the order a user fixes them."""
    out = [check_repository(facts)]
    if facts["repo"] is not None:
        out.append(check_setup(facts))
    out += [check_hooks(facts), check_prefix(facts), check_bg_isolation(facts)]
    if facts["repo"] is not None:
        if facts["watcher"] is not None:  # only once set up: else the setup check says it
            out.append(check_watcher(facts))
        out.append(check_config(facts))
    out += [check_attribution(facts), check_libseccomp(facts), check_claude(facts)]
    return out


def check_repository(facts: dict) -> dict:
    if facts["repo"] is None:
        return check("repository", "fail", "not inside a git repository",
                     "run vbranch doctor in the repository the sessions share (`git init` to make one)")
    return check("repository", "ok", f"git repository at {facts['repo']['top']}")


def check_setup(facts: dict) -> dict:
    setup = facts["setup"]
    if not setup["state"]:
        return check("vbranch set up", "fail", "vbranch is not set up here (no .git/vbranch/state.db)", "vbranch init")
    if not setup["active"]:
        return check("vbranch set up", "fail", "vbranch was torn down here", "vbranch init")
    if setup["head"] != setup["workspace_ref"]:
        return check("vbranch set up", "fail",
                     f"HEAD is on {setup['head'] or '(nothing)'}, not on the vbranch workspace: "
                     "commits and status go around vbranch",
                     f"git symbolic-ref HEAD {setup['workspace_ref']}  (keeps every working file; "
                     "or `vbranch teardown` to stop using vbranch)")
    return check("vbranch set up", "ok", f"state present, HEAD on {setup['workspace_ref']}")


def _install_fix(scope: str | None) -> str:
    return "vbranch install" if scope in (None, "local") else f"vbranch install --scope {scope}"


def check_hooks(facts: dict) -> dict:
    expected, events = facts["expected"]["hook"], facts["expected"]["events"]
    problems, fixes, where = [], [], []
    for s in facts["settings"]:
        if s["error"]:
            if s["hooks"] or s["scope"] != "user" or s["exists"]:
                problems.append(s["error"])
                fixes.append(f"fix {s['path']} by hand")
            continue
        if not s["hooks"]:
            continue
        where.append(f"{s['scope']} ({s['path']})")
        stale = s["stale_hooks"]
        missing = [e for e in events if e not in s["hooks"]]
        if stale:
            problems.append(f"{s['path']} runs {stale[0]!r}, not this installation ({expected!r})")
            fixes.append(_install_fix(s["scope"]))
        elif missing:
            problems.append(f"{s['path']} lacks the {', '.join(missing)} hook(s)")
            fixes.append(_install_fix(s["scope"]))
    if problems:
        return check("hooks", "fail", "; ".join(problems), " && ".join(dict.fromkeys(fixes)))
    if not where:
        names = ", ".join(s["path"] for s in facts["settings"])
        return check("hooks", "fail", f"vbranch's hooks are in no settings file ({names})", "vbranch install")
    return check_hook_client(facts, f"installed in {', '.join(where)}, pointing at this installation")


def check_hook_client(facts: dict, where: str) -> dict:
    """Which client the installed hooks start: the native one (hookclient.c), or the Python one, which
    costs every hook ~15 ms of CPU more (its interpreter's start). Either works: a warning at worst."""
    client = facts["expected"]["client"]
    slow, fixes = [], []
    for s in facts["settings"]:
        for c in s["clients"]:
            if c["binary"] is None and client["native"] is not None:
                slow.append(f"{s['path']} starts the Python client, not the native one (~15 ms of CPU more per hook)")
            elif c["binary"] is not None and not c["present"]:
                slow.append(f"{s['path']} starts the native client {c['binary']}, which is gone: the Python client answers")
            elif c["binary"] is not None and client["native"] is not None \
                    and os.path.basename(c["binary"]) != os.path.basename(client["native"]):
                slow.append(f"{s['path']} starts an earlier build of the native client ({c['binary']})")
            else:
                continue
            fixes.append(_install_fix(s["scope"]))
    if slow:
        return check("hooks", "warn", f"{where}; but " + "; ".join(slow), " && ".join(dict.fromkeys(fixes)))
    binaries = sorted({c["binary"] for s in facts["settings"] for c in s["clients"] if c["binary"]})
    if binaries:
        return check("hooks", "ok", f"{where}; hooks start the native client ({', '.join(binaries)})")
    from vbranch.native import HOOK_CLIENT_SWITCH

    said = f"{where}; hooks start the Python client: {client['why']}"
    if client["why"].startswith(HOOK_CLIENT_SWITCH):
        return check("hooks", "ok", said)
    if "no C compiler" in client["why"]:
        return check("hooks", "warn", said + " (~15 ms of CPU more per hook)", "install a C compiler (cc), then vbranch install")
    return check("hooks", "warn", said + " (~15 ms of CPU more per hook)")


def _effective(facts: dict, key: str) -> tuple[object, dict | None]:
    """The value Claude Code uses (the highest-precedence file that sets it) and that file."""
    for s in facts["settings"]:  # in PRECEDENCE order
        if s[key] is not None:
            return s[key], s
    return None, None


def check_prefix(facts: dict) -> dict:
    from vbranch.agents.claude_code import PREFIX, is_our_prefix

    expected = facts["expected"]["prefix"]
    value, s = _effective(facts, "prefix")
    if value is None:
        return check("shell prefix", "fail",
                     f"no {PREFIX} in any settings file: Bash commands are attributed by time windows, not by process",
                     "vbranch install")
    if not is_our_prefix(value):
        return check("shell prefix", "fail",
                     f"{PREFIX} in {s['path']} is someone else's ({value!r}): the command tracer is not used, "
                     "commands are attributed by time windows",
                     f"remove {PREFIX} from the env of {s['path']} (or chain it yourself), then {_install_fix(s['scope'])}")
    if not s["prefix_current"] and value == expected.replace("trace_command.py", "tracer.py"):
        return check("shell prefix", "warn",  # as installs before trace_command.py wrote it: it works, slower
                     f"{PREFIX} in {s['path']} runs this installation's tracer in its earlier form, compiled anew "
                     "at every command (~11 ms each)", _install_fix(s["scope"]))
    if not s["prefix_current"]:
        return check("shell prefix", "fail",
                     f"{PREFIX} in {s['path']} is {value!r}, not this installation's tracer ({expected!r})",
                     _install_fix(s["scope"]))
    return check("shell prefix", "ok", f"{PREFIX} runs this installation's command tracer ({s['scope']} settings)")


def check_bg_isolation(facts: dict) -> dict:
    value, s = _effective(facts, "bg_isolation")
    if value == "none":
        return check("worktree.bgIsolation", "ok", f'"none" ({s["scope"]} settings): background sessions may work in the shared directory')
    said = "not set" if value is None else f"{value!r} in {s['path']}"
    return check("worktree.bgIsolation", "fail",
                 f'{said}: Claude Code (since {BG_ISOLATION_SINCE}) tells background sessions the shared checkout '
                 'is blocked until they enter a worktree; it must be "none"',
                 _install_fix(s["scope"] if s else None))


def check_watcher(facts: dict) -> dict:
    info = facts["watcher"]
    if info["state"] == "trusted":
        return check("watcher", "ok", f"live (pid {info['pid']}), dirty set trusted, hooks served on {info['socket']}"
                     + ("" if info["socket_present"] else " (socket absent!)"))
    if info["state"] == "recovering":
        return check("watcher", "warn", f"live (pid {info['pid']}) but recovering (starting, or rescanning after "
                     "lost events): readers ask git meanwhile", None)
    if info["state"] == "not responding":
        return check("watcher", "fail", f"pid {info['pid']} holds the watch lock but sends no heartbeat (hung)",
                     "vbranch watch --stop && vbranch watch --background")
    off = (facts["config"] or {}).get("watcher") == "off"
    return check("watcher", "fail",
                 "not running: every hook starts Python and runs the full hook (~100 ms), and commands are compared "
                 "with git status" + (' (config watcher is "off": hooks will not start one)' if off
                                      else "; the next hook starts one (config watcher is \"auto\")"),
                 "vbranch watch --background")


def check_config(facts: dict) -> dict:
    cfg = facts["config"]
    if cfg["problems"]:
        return check("config", "fail", "; ".join(cfg["problems"]),
                     f"edit {cfg['path']}: fix or remove what is named (the defaults apply meanwhile)")
    return check("config", "ok", f"{cfg['path']} valid")


def check_attribution(facts: dict) -> dict:
    probe, mode = facts["probe"], facts["tracer_mode"]
    ran = mode is not None and not mode["why"].startswith("no command has run")
    now = f"; the last command was attributed by {mode['mode']} ({mode['why']})" if ran else ""
    if probe is None:
        return check("command tracer", "warn", "not probed" + now)
    if probe["traced"]:
        if ran and mode["mode"] != "process":
            return check("command tracer", "warn", f"works here ({probe['reason']}), but the last command ran without it: "
                         f"{mode['why']}", "check the shell prefix above; commands started before `vbranch install` run untraced")
        loop = probe.get("loop", "native")
        if loop != "native":  # still exact, but each write a command makes costs ~3x as much (benchmarks/bench_tracer.py)
            return check("command tracer", "warn", f"works here ({probe['reason']}), through its slower Python loop: "
                         f"{loop.partition(': ')[2] or loop}{now}", "install a C compiler (cc), then run `vbranch init` again")
        return check("command tracer", "ok", f"works here: {probe['reason']}, native loop{now}")
    platform = facts["seccomp"]["platform"]
    if not platform.startswith("linux"):
        fix = None  # nothing to install: seccomp is Linux's
    elif "busy" in probe["reason"].lower():
        fix = ("run vbranch doctor outside the sandbox or supervisor this shell runs under (it already holds "
               "seccomp's one listener), to see whether the tracer works there")
    elif "libseccomp" in probe["reason"] or "filter" in probe["reason"]:
        fix = "install libseccomp (Debian/Ubuntu: sudo apt-get install libseccomp2) and pyseccomp (pip install pyseccomp)"
    else:
        fix = ("none on this machine: seccomp user notification needs Linux >= 5.5 and no container profile "
               "blocking seccomp(); until then commands are attributed by time windows")
    return check("command tracer", "fail", f"does not work here: {probe['reason']}{now}", fix)


def check_libseccomp(facts: dict) -> dict:
    sc = facts["seccomp"]
    if not sc["platform"].startswith("linux"):
        return check("libseccomp", "warn", f"{sc['platform']}: no seccomp, commands are attributed by time windows")
    missing = [what for what, there in (("libseccomp", sc["library"]), ("pyseccomp", sc["pyseccomp"])) if not there]
    if missing:
        return check("libseccomp", "fail", f"{' and '.join(missing)} not found: the tracer's filter cannot be built",
                     "sudo apt-get install libseccomp2 (or your system's libseccomp package); pip install pyseccomp")
    return check("libseccomp", "ok", f"{sc['library']} and pyseccomp present")


def _version(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in text.split("-")[0].split("."))
    except ValueError:
        return None


def check_claude(facts: dict) -> dict:
    c = facts["claude"]
    install_fix = f"npm install -g @anthropic-ai/claude-code@{NEWEST_TESTED_CLAUDE} (or set VBRANCH_CLAUDE_BIN)"
    if not c["path"]:
        return check("Claude Code", "fail", "no `claude` on PATH (nor VBRANCH_CLAUDE_BIN)", install_fix)
    if c["error"]:
        return check("Claude Code", "fail", c["error"], install_fix)
    tested = f"tested: {PINNED_CLAUDE} (pinned) and {NEWEST_TESTED_CLAUDE} (newest)"
    where = f"{c['path']} ({c['source']})"
    if c["version"] in TESTED_CLAUDE:
        return check("Claude Code", "ok", f"{c['version']} at {where}; {tested}")
    have, low, high = _version(c["version"]), _version(PINNED_CLAUDE), _version(NEWEST_TESTED_CLAUDE)
    if have is not None and have < low:
        return check("Claude Code", "warn", f"{c['version']} at {where} is older than any tested release ({tested})",
                     install_fix)
    if have is not None and have > high:
        return check("Claude Code", "warn", f"{c['version']} at {where} is newer than any tested release ({tested})")
    return check("Claude Code", "ok", f"{c['version']} at {where}, between the tested releases ({tested})")


# --- both -------------------------------------------------------------------------------------


def run(start: Path | str = ".", **kwargs) -> dict:
    """{"ok", "exit_code", "checks"}: the report `vbranch doctor` prints (`--json`: as is)."""
    found = checks(gather(start, **kwargs))
    ok = all(c["ok"] for c in found)
    return {"ok": ok, "exit_code": EXIT_OK if ok else EXIT_PROBLEM, "checks": found}
