"""Fast, deterministic generator of large synthetic git repositories.

Used by the benchmarks and by tests that need a realistic working tree.

Speed comes from never running `git add`: the single commit is streamed
into `git fast-import` (one pack, no loose objects) while Python is still
generating, then `git reset --hard` writes the working tree and an index
with full stat data, so the repository is clean afterwards.
"""

import os
import random
import subprocess
from pathlib import Path

# Fixed identity and date so that one seed always gives one commit id.
NAME, EMAIL = "Corpus Bot", "corpus@example.invalid"
DATE = b"1700000000 +0000"

GITIGNORE = b"*.pyc\n__pycache__/\n*.log\nbuild/\n.venv/\n"

# Written into every repo but hidden by GITIGNORE, so `git add -A` and
# vbranch must both skip them.
IGNORED_FILES = {
    "build/lib/output.txt": b"generated artefact\n",
    "debug.log": b"log line\n",
}

WORDS = (
    "core util api model view store cache index parse render config event "
    "queue worker client server auth token user session record branch diff "
    "merge graph node tree blob path file stream buffer codec schema plugin "
    "report metric trace layout widget router handler task job batch shard"
).split()

FILES_PER_DIR = 25
MAX_DEPTH = 12
LINES_MEDIAN = 70  # lognormal(sigma=0.8) around 70 gives a ~100-line mean
BLOCK_LINES = 13   # mean length of a _make_block() block
N_BLOCKS = 400


def _ident(rng):
    return "%s_%s" % (rng.choice(WORDS), rng.choice(WORDS))


def _make_block(rng):
    """One Python-ish function, 5 to 25 lines."""
    w = lambda: rng.choice(WORDS)  # noqa: E731
    lines = ["def %s(%s):" % (_ident(rng), ", ".join(rng.sample(WORDS, rng.randint(0, 3)))),
             '    """%s the %s."""' % (w().capitalize(), w())]
    for _ in range(rng.randint(1, 10)):
        kind = rng.random()
        if kind < 0.4:
            lines.append("    %s = %s(%s)" % (w(), _ident(rng), w()))
        elif kind < 0.6:
            lines += ["    if %s is None:" % w(), "        return %d" % rng.randint(0, 999)]
        elif kind < 0.8:
            lines += ["    for %s in %s:" % (w(), w()), "        yield %s" % _ident(rng)]
        else:
            lines.append("    # %s %s %s" % (w(), w(), w()))
    lines += ["    return %s" % w(), "", ""]
    return ("\n".join(lines) + "\n").encode()


def _make_dirs(rng, n_dirs):
    """A random directory tree, mostly 3-6 levels deep with a few deeper.

    A new dir usually hangs off the shallower of two random dirs (bushy,
    like real projects) and sometimes off any dir (a few deep chains).
    """
    dirs, depths = [""], [0]
    while len(dirs) < n_dirs:
        a, b = rng.randrange(len(dirs)), rng.randrange(len(dirs))
        parent = a if rng.random() < 0.25 or depths[a] < depths[b] else b
        if depths[parent] >= MAX_DEPTH:
            parent = 0
        dirs.append("%s%s%d/" % (dirs[parent], rng.choice(WORDS), len(dirs)))
        depths.append(depths[parent] + 1)
    return dirs


def generate(n_files, seed=0):
    """Yield (path, content bytes) for n_files tracked files, sorted by path.

    Contents are drawn from a shared pool of function blocks (cheap) but
    start with a per-file header, so every blob is distinct.
    """
    rng = random.Random(seed)
    blocks = [_make_block(rng) for _ in range(N_BLOCKS)]
    dirs = _make_dirs(rng, max(1, n_files // FILES_PER_DIR))
    paths = {".gitignore"}
    while len(paths) < n_files:
        ext = ".py" if rng.random() < 0.9 else rng.choice((".md", ".txt"))
        paths.add("%s%s_%d%s" % (rng.choice(dirs), rng.choice(WORDS), len(paths), ext))
    for path in sorted(paths):
        if path == ".gitignore":
            yield path, GITIGNORE
            continue
        n_lines = max(5, min(2000, int(rng.lognormvariate(0, 0.8) * LINES_MEDIAN)))
        header = '"""%s (seed %d)."""\nimport %s, %s\n\n' % (path, seed, rng.choice(WORDS), rng.choice(WORDS))
        yield path, header.encode() + b"".join(rng.choices(blocks, k=1 + n_lines // BLOCK_LINES))


def _git(repo, *args, **kw):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, **kw)


def _fast_import(repo, files):
    """Stream all files into one commit on refs/heads/main."""
    # No compression and no deltas: zlib is most of fast-import's time, and
    # pack size does not matter for a throwaway repo. The malloc settings
    # stop glibc from handing memory back to the kernel after every blob,
    # which otherwise doubles fast-import's time.
    env = dict(os.environ, MALLOC_TOP_PAD_="67108864", MALLOC_TRIM_THRESHOLD_="268435456")
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "-c", "pack.compression=0", "fast-import", "--quiet", "--done", "--depth=0"],
        stdin=subprocess.PIPE, env=env)
    out, ident, msg = proc.stdin, b"%s <%s> %s" % (NAME.encode(), EMAIL.encode(), DATE), b"corpus: initial import\n"
    try:
        out.write(b"commit refs/heads/main\nauthor %s\ncommitter %s\ndata %d\n%s" % (ident, ident, len(msg), msg))
        for path, data in files:
            out.write(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))
        out.write(b"\ndone\n")
        out.close()
    finally:
        if proc.wait() != 0:
            raise RuntimeError("git fast-import failed in %s" % repo)


def _write_files(repo, files):
    made = set()  # one mkdir per directory, not per file
    for path, data in files:
        target = repo / path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(data)


def make_repo(path, n_files, *, seed=0, commit=True):
    """Create a git repo at `path` with n_files tracked text files; return its Path.

    commit=True: one commit on `main`, checked out, status clean.
    commit=False: `main` is unborn and the files are only written (untracked).
    Either way IGNORED_FILES are written too and stay untracked.
    """
    if n_files < 1:
        raise ValueError("n_files counts .gitignore, so it must be at least 1")
    repo = Path(path)
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.name", NAME), ("user.email", EMAIL), ("commit.gpgsign", "false")):
        _git(repo, "config", key, value)
    if commit:
        _fast_import(repo, generate(n_files, seed))
        # checkout.workers=0: one worker per core; file creation dominates.
        _git(repo, "-c", "checkout.workers=0", "reset", "-q", "--hard")
    else:
        _write_files(repo, generate(n_files, seed))
    _write_files(repo, IGNORED_FILES.items())
    return repo


def tracked_files(repo, suffix=".py"):
    """Sorted tracked paths that end with `suffix`."""
    out = _git(repo, "ls-files", "-z").stdout.decode()
    return sorted(p for p in out.split("\0") if p and p.endswith(suffix))


def pick_files(repo, n_sessions, per_session, *, seed=0):
    """Disjoint lists of tracked .py files, one list of per_session per session."""
    chosen = random.Random(seed).sample(tracked_files(repo), n_sessions * per_session)
    return [chosen[i * per_session:(i + 1) * per_session] for i in range(n_sessions)]


def edit_files(repo, paths, session_index):
    """Change each file the way session `session_index` would: rewrite its
    first line and append one, i.e. two separate hunks. Same result every
    time it is applied to the same base content. Returns the paths."""
    for path in paths:
        target = Path(repo) / path
        lines = target.read_bytes().splitlines(keepends=True)
        lines[0] = b'"""%s (edited by session %d)."""\n' % (path.encode(), session_index)
        lines.append(b"SESSION_%d_MARK = '%s'\n" % (session_index, path.encode()))
        target.write_bytes(b"".join(lines))
    return list(paths)
