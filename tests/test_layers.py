"""The architecture as tests: the import contracts in pyproject.toml, no import cycle, and what a
hook loads.

`lint-imports` checks the layers (nothing imports a package above it), the pure core, pygit2 only
in git/, rich only in the UI, and the installed entry points standard library only. The cycle check
counts every import, in-function ones included (grimp reads them all). The hook test runs each
hook event as the fallback command does (`python -m vbranch hook`, when no watcher answers) and
looks at what the process loaded.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import grimp
import pytest

from tests.conftest import ROOT
from tests.hookdriver import CAPTURED_ROOT, PAYLOADS, payload

# What no hook may load: the UI, validation, argument parsing, the watcher's inotify layer, the
# typing module. pygit2 builds commits: only a Stop that commits the turn may load it.
HEAVY = ("rich", "pydantic", "argparse", "typing", "watchdog", "pygit2")


def test_the_import_contracts_hold():
    lint = Path(sysconfig.get_path("scripts")) / "lint-imports"
    proc = subprocess.run([str(lint) if lint.exists() else "lint-imports"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def cycles(graph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), in-function imports included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle():
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    assert cycles(grimp.build_graph("vbranch")) == []


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The check itself: two modules importing each other inside functions are found."""
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from cyclepkg import b\n")
    (pkg / "b.py").write_text("def g():\n    from cyclepkg import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycles(grimp.build_graph("cyclepkg", cache_dir=None)) == [["cyclepkg.a", "cyclepkg.b"]]


EVENTS = [  # (captured payload, fields, which heavy modules it may load)
    ("SessionStart", {}, ()),
    ("UserPromptSubmit", {"prompt": "a task"}, ()),
    ("PreToolUse_Write", {}, ()),
    ("PostToolUse_Write", {}, ()),
    ("PreToolUse_Edit", {}, ()),
    ("PostToolUse_Edit", {}, ()),
    ("PreToolUse_Bash", {}, ()),
    ("PostToolUse_Bash", {}, ()),
    ("Stop", {}, ("pygit2",)),
    ("SessionEnd", {}, ()),
]

AGENT_EVENTS = [  # another agent's hook: `vbranch hook --agent NAME`, its own payload
    ("codex", "codex_PreToolUse_Bash"), ("codex", "codex_PostToolUse_apply_patch"),
    ("gemini", "gemini_BeforeTool_write_file"), ("cursor", "cursor_afterShellExecution"),
]

PROBE = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: sys.stderr.write('\\nLOADED ' + ' '.join(sorted(m for m in sys.modules if '.' not in m)) + '\\n'))\n"
    "sys.argv = ['vbranch', 'hook'] + sys.argv[1:]\n"
    "runpy.run_module('vbranch', run_name='__main__')\n"
)


def loaded_by_hook(repo: Path, data: dict, *args: str) -> set[str]:
    env = {**os.environ, "VBRANCH_WATCHER": "off"}
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], input=json.dumps(data).encode(), cwd=repo, env=env,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    loaded = set(proc.stderr.decode().rsplit("LOADED ", 1)[1].split())
    assert "vbranch" in loaded  # the probe ran the hook
    return loaded


@pytest.mark.parametrize("name, fields, allowed", EVENTS, ids=[e[0] for e in EVENTS])
def test_a_hook_loads_no_heavy_module(vb, name, fields, allowed):
    repo = vb({"app.py": "x = 1\n"}).repo
    loaded = loaded_by_hook(repo, payload(name, repo, session_id="layers-1", **fields))
    assert sorted(loaded & set(HEAVY) - set(allowed)) == []


@pytest.mark.parametrize("agent, name", AGENT_EVENTS, ids=[e[1] for e in AGENT_EVENTS])
def test_another_agent_s_hook_loads_no_heavy_module(vb, agent, name):
    repo = vb({"app.py": "x = 1\n"}).repo
    data = json.loads((PAYLOADS / "agents" / f"{name}.json").read_text().replace(CAPTURED_ROOT, str(repo)))
    assert sorted(loaded_by_hook(repo, data, "--agent", agent) & set(HEAVY)) == []
