"""The real Claude Code CLI for every end-to-end test: the pinned version and the newest release."""
import os

import pytest

from . import claude_cli


def current_cli():
    """The newest release (.ci/run installs it next to the pinned one; VBRANCH_CLAUDE_BIN_CURRENT overrides)."""
    default = claude_cli.REPO_ROOT / ".cache" / "claude-current" / "node_modules" / ".bin" / "claude"
    path = os.environ.get("VBRANCH_CLAUDE_BIN_CURRENT") or str(default)
    return path if claude_cli._works(path) else None


@pytest.fixture(scope="module", params=["pinned", "current"])
def claude_bin(request):
    path = claude_cli.find_claude() if request.param == "pinned" else current_cli()
    if path is None:
        pytest.fail("Claude Code CLI (%s) not usable: .ci/run installs the pinned version into .cache/claude and "
                    "@anthropic-ai/claude-code@latest into .cache/claude-current" % request.param)
    return path
