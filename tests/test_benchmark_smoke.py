"""`python -m benchmarks.compare --quick` and `python -m benchmarks.bench_tracer --quick` end to end:
every correctness check holds and every figure is there. Timings are never asserted: they depend on
the machine."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

from benchmarks import report
from tests.conftest import ROOT


def test_quick_comparison_is_correct_and_complete(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.compare", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    [data] = tmp_path.glob("compare-*.json")
    assert data.with_suffix(".md").exists()
    result = json.loads(data.read_text())

    assert result["correctness"], "no correctness checks were recorded"
    assert [k for k, ok in result["correctness"].items() if not ok] == []

    for n in (1, 2):
        for strategy in ("worktrees", "vbranch"):
            [run] = [r for r in result["runs"] if r["n"] == n and r["strategy"] == strategy]
            assert [f for f in report.FIGURES if f not in run] == [], (n, strategy)
            assert run["checks"]["branches_ok"] and run["checks"]["final_ok"] and run["checks"]["workdir_clean"]
        [vb] = [r for r in result["runs"] if r["n"] == n and r["strategy"] == "vbranch"]
        assert [f for f in report.VBRANCH_FIGURES if f not in vb] == [], n
        assert vb["hook_call_ms"]["count"] > 0 and vb["change_overhead_ms"]["count"] > 0
        assert vb["watcher_cpu_ms_per_hook"] > 0  # the watcher answered the hooks, and its CPU was read
        assert vb["command_ms"]["count"] == n  # one shell command per session, run under the tracer
        for when in ("status_after_commit", "status_after_landing"):
            assert isinstance(vb[when]["contested"], int) and isinstance(vb[when]["unattributed"], int)
        assert result["correctness"][f"n{n}.vbranch.commands_traced"] and result["correctness"][f"n{n}.vbranch.watcher_live"]
        assert result["final_trees_identical"][str(n)]
        if n > 1:  # the first branch alone, the rest in one `vbranch land --queue`
            assert vb["land_queue"] == {"branches": n - 1, "landed": n - 1, "seconds": vb["land_queue"]["seconds"]}
    paced = result["paced"]  # vbranch alone at the largest N, each session waiting before its tool calls
    assert paced["n"] == 2 and paced["think_s"] == [0.01, 0.05] and "error" not in paced
    assert [f for f in report.VBRANCH_FIGURES if f not in paced] == []
    assert paced["change_overhead_ms"]["count"] > 0 and paced["hook_call_ms"]["count"] > 0
    assert result["correctness"]["paced.n2.branches_ok"] and result["correctness"]["paced.n2.watcher_live"]
    assert any(line.startswith("N=2 paced") for line in report.headline(result))
    assert result["env"] and result["env"][0]["ok"]
    assert result["overlap"]["summary"]["vbranch_denials"] == 1
    assert result["scaling"]["by_size"] and result["scaling"]["by_changed"]
    assert result["machine"]["cpus"] and result["machine"]["git"]

    if importlib.util.find_spec("matplotlib"):  # charts are optional: matplotlib is not a vbranch dependency
        assert list(tmp_path.glob("compare-*.png")), "matplotlib is installed but no chart was drawn"


def test_quick_tracer_benchmark_is_complete(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_tracer", "--quick", "--no-pytest", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    [data] = tmp_path.glob("tracer-*.json")
    assert data.with_suffix(".md").exists()
    result = json.loads(data.read_text())
    assert set(result["workloads"]) >= {"true"} and len(result["workloads"]) == 3
    for name, w in result["workloads"].items():
        assert len(w["bare_s"]) == len(w["traced_s"]) == w["reps"] > 0, name
        assert w["ratio"] > 0, name
    loop = next(w for name, w in result["workloads"].items() if name.startswith("git-status-loop"))
    assert loop["traced_write_events"] > 0  # the tracer logged the loop's writes: it really traced
    assert result["machine"]["cpus"] and result["machine"]["kernel"] and result["load_average_before"]


def test_quick_soak_lands_every_session_s_lines_exactly(tmp_path):
    """Sessions calling tools, committing and landing at once: every landing moved only the lines of
    the session that landed, and once all is landed the target is the working directory."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--quick", "--think", "0,0.01", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    [data] = tmp_path.glob("soak-*.json")
    result = json.loads(data.read_text())
    checks, summary = result["checks"], result["summary"]
    assert checks["landings"] >= 4 and checks["landings_with_other_sessions_lines"] == []
    assert checks["target_is_the_working_directory"] and checks["problems"] == []
    assert checks["contested"] == 0 and checks["unattributed"] == 0
    assert summary["tool_calls"] == 2 * 40 and summary["lands_failed"] == 0
    assert result["config"]["think"] == [0, 0.01] and "waiting 0.0-0.01 s before each call" in proc.stdout
    assert "hook_failures" not in summary["counters"] and "untraced_commands" not in summary["counters"]
    assert summary["watcher_rss_bytes"]["max"] > 0 and summary["store_bytes"]["last"] > 0
    # The dirty set holds what may differ, not all that ever changed: once all is landed, nothing.
    assert summary["dirty_paths"]["max"] > 0 and checks["dirty_after_all_landed"] == 0
