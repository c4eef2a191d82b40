"""Locate, install and run the real Claude Code CLI against a fake API."""

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "@anthropic-ai/claude-code"
INSTALL_TIMEOUT = 600
DEFAULT_TIMEOUT = 120

# Variables of an outer Claude Code or API client that must not leak into
# the CLI under test (they would change its behaviour or its endpoint).
_LEAKY_PREFIXES = ("ANTHROPIC_", "CLAUDE", "OTEL_")


def _works(path):
    """True when path is an executable CLI that answers --version."""
    if not path or not os.access(path, os.X_OK):
        return False
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "Claude Code" in done.stdout


def install_dir(repo_root=REPO_ROOT):
    return Path(repo_root) / ".cache" / "claude"


def find_claude(repo_root=REPO_ROOT, install=True):
    """Path of a working claude binary, or None.

    Order: $VBRANCH_CLAUDE_BIN, then <repo>/.cache/claude, installing it
    there with npm when missing and allowed.
    """
    env_bin = os.environ.get("VBRANCH_CLAUDE_BIN")
    if env_bin:
        return env_bin if _works(env_bin) else None
    local = install_dir(repo_root) / "node_modules" / ".bin" / "claude"
    if _works(local):
        return str(local)
    if install and shutil.which("npm"):
        try:
            subprocess.run(["npm", "install", "--no-audit", "--no-fund",
                            "--prefix", str(install_dir(repo_root)), PACKAGE],
                           capture_output=True, timeout=INSTALL_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if _works(local):
            return str(local)
    return None


def claude_version(bin_path):
    done = subprocess.run([bin_path, "--version"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    return done.stdout.strip()


def claude_env(api_url, home, extra_env=None):
    """Environment for an offline, scratch-home CLI run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_LEAKY_PREFIXES)}
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    env.update({
        "ANTHROPIC_BASE_URL": api_url,
        "ANTHROPIC_API_KEY": "sk-fake-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        # The API is local: a retry never helps, and the default backoff turns
        # an unreachable or broken server into a long hang instead of an error.
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        # bypassPermissions refuses to run as root unless sandboxed.
        "IS_SANDBOX": "1",
    })
    env.update(extra_env or {})
    return env


def claude_args(bin_path, prompt, settings_path, session_id=None, extra_args=()):
    args = [bin_path, "-p", prompt,
            "--permission-mode", "bypassPermissions",
            "--settings", str(settings_path),
            "--output-format", "json"]
    if session_id:
        args += ["--session-id", session_id]
    return args + list(extra_args)


def start_claude(bin_path, cwd, prompt, settings_path, api_url, home,
                 session_id=None, extra_args=(), extra_env=None):
    """Start one CLI session without waiting; finish it with finish_claude.

    It gets its own process group so a timeout can kill its hooks too.
    """
    proc = subprocess.Popen(
        claude_args(bin_path, prompt, settings_path, session_id, extra_args),
        cwd=str(cwd), env=claude_env(api_url, home, extra_env),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    proc.started_at = time.monotonic()
    return proc


@dataclass
class ClaudeRun:
    returncode: int
    stdout: str
    stderr: str
    output: dict  # the parsed --output-format json result, or None
    seconds: float
    timed_out: bool = False

    def describe(self):
        """A short text for assertion messages."""
        return "rc=%s timed_out=%s\nstdout=%s\nstderr=%s" % (
            self.returncode, self.timed_out, self.stdout[-3000:], self.stderr[-3000:])


def _parse_output(stdout):
    """The JSON result; the last line that parses, in case of stray output."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def finish_claude(proc, timeout=DEFAULT_TIMEOUT):
    """Wait for a started session; kill its whole group on timeout."""
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate(timeout=30)
    return ClaudeRun(proc.returncode, stdout, stderr, _parse_output(stdout),
                     time.monotonic() - proc.started_at, timed_out)


def run_claude(bin_path, cwd, prompt, settings_path, api_url, home,
               session_id=None, timeout=DEFAULT_TIMEOUT, extra_args=(),
               extra_env=None):
    """Run one CLI session to completion."""
    proc = start_claude(bin_path, cwd, prompt, settings_path, api_url, home,
                        session_id, extra_args, extra_env)
    return finish_claude(proc, timeout)


def hook_settings(command, events=None, matcher="Write|Edit|MultiEdit|NotebookEdit|Bash",
                  timeout=30):
    """Settings dict running one command for the given hook events.

    Tool events get the matcher; the others take none.
    """
    tool_events = {"PreToolUse", "PostToolUse", "PostToolUseFailure"}
    events = events or ["SessionStart", "UserPromptSubmit", "PreToolUse",
                        "PostToolUse", "Stop", "SessionEnd"]
    hooks = {}
    for event in events:
        entry = {"hooks": [{"type": "command", "command": command, "timeout": timeout}]}
        if event in tool_events:
            entry["matcher"] = matcher
        hooks[event] = [entry]
    return {"hooks": hooks}


def write_settings(path, settings):
    Path(path).write_text(json.dumps(settings, indent=2))
    return Path(path)
