"""A corpus of real code: the running interpreter's standard library in a fresh git repository.

Deterministic for one Python build: files are copied in sorted order and
committed with a fixed identity and date, so the base commit (and every tree
built from it) has the same id in every copy. It also holds a tiny package
(`benchpkg`) with an in-tree build backend, so `pip install -e .` works
offline with nothing installed — what a per-worktree environment needs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

from .measure import git

SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
IDENTITY = {"GIT_AUTHOR_NAME": "Corpus Bot", "GIT_AUTHOR_EMAIL": "corpus@example.invalid",
            "GIT_COMMITTER_NAME": "Corpus Bot", "GIT_COMMITTER_EMAIL": "corpus@example.invalid",
            "GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000"}

GITIGNORE = "__pycache__/\n*.pyc\n.venv/\n*.egg-info/\n"

PYPROJECT = """\
[build-system]
requires = []
build-backend = "benchpkg_backend"
backend-path = ["tools"]

[project]
name = "benchpkg"
version = "0.1.0"
"""

PACKAGE = '"""A tiny package: what a per-worktree editable install installs."""\nVERSION = "0.1.0"\n'

# PEP 517/660 backend in 30 lines: an editable wheel is a .pth file pointing at the checkout.
BACKEND = '''\
import base64, hashlib, os, tarfile, zipfile

NAME, VERSION = "benchpkg", "0.1.0"
DIST = NAME + "-" + VERSION


def _wheel(directory, files):
    info = DIST + ".dist-info/"
    files[info + "METADATA"] = "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (NAME, VERSION)
    files[info + "WHEEL"] = "Wheel-Version: 1.0\\nGenerator: benchpkg\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (name, digest, len(text.encode())))
    files[info + "RECORD"] = "\\n".join(record + [info + "RECORD,,"]) + "\\n"
    filename = DIST + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as whl:
        for name, text in files.items():
            whl.writestr(name, text)
    return filename


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open(os.path.join(NAME, "__init__.py")) as f:
        return _wheel(wheel_directory, {NAME + "/__init__.py": f.read()})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"__editable__." + NAME + ".pth": os.path.abspath(".") + "\\n"})


def build_sdist(sdist_directory, config_settings=None):
    filename = DIST + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as tar:
        for name in ("pyproject.toml", NAME + "/__init__.py", "tools/benchpkg_backend.py"):
            tar.add(name, DIST + "/" + name)
    return filename
'''


def stdlib_files(limit: int | None = None) -> tuple[Path, list[Path]]:
    """The standard library's .py files, sorted; `limit` takes an evenly spread sample."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        found += [Path(dirpath, n).relative_to(root) for n in filenames if n.endswith(".py")]
    found.sort()
    if limit and limit < len(found):
        step = len(found) / limit
        found = [found[int(i * step)] for i in range(limit)]
    return root, found


def build(path: Path, limit: int | None = None) -> dict:
    """Create the corpus repository at `path` (main branch, one commit); returns its description."""
    root, files = stdlib_files(limit)
    repo = Path(path)
    repo.mkdir(parents=True)
    for rel in files:
        target = repo / "lib" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, target)  # contents only: modes and times are not part of the corpus
    extra = {".gitignore": GITIGNORE, "pyproject.toml": PYPROJECT, "benchpkg/__init__.py": PACKAGE,
             "tools/benchpkg_backend.py": BACKEND}
    for rel, text in extra.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.name", "Bench"), ("user.email", "bench@example.invalid"), ("commit.gpgsign", "false"),
                       ("gc.auto", "0"), ("maintenance.auto", "false")):
        git(repo, "config", key, value)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "corpus: the standard library", env=dict(os.environ, **IDENTITY))
    base = git(repo, "rev-parse", "HEAD").stdout.decode().strip()
    return {"path": str(repo), "files": len(files) + len(extra), "stdlib": str(root),
            "bytes": sum((root / rel).stat().st_size for rel in files), "base": base}


def copy(template: Path, dest: Path) -> Path:
    """A fresh copy of the corpus repository, index refreshed so no later command pays for re-stat."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(template), str(dest)], check=True)
    git(dest, "update-index", "-q", "--refresh")
    return dest
