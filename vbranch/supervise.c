/* The command tracer's supervisor loop (tracer.py's S) for the common notifications, without Python.

   Measured (2 cores, quiet): the supervisor's CPU per write-open, outside the repository and inside
   it (its version kept), is ~14 and ~34 us here against ~48 and ~138 us in Python's loop. It handles
   completely: paths outside the repository and its git directory (let through), unprotected paths
   in the git directory (let through, not logged), and writes in the repository while no file tool's
   lease can be held (logged as `W` lines exactly as tracer.TraceLog writes them, then let through).
   Everything else (a protected git path, a possibly leased file, anything this code is unsure
   about) goes back to Python with the notification already received, and Python answers it.

   Built by tracefilter.py (`cc -O2 -shared -fPIC`), loaded by tracer.py with ctypes. One
   supervisor per process, single-threaded: the state is global. libc only: the kernel's numbers are
   spelled out below, as in tracer.py. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* tracer.py's constants (the same numbers, not the headers': older headers spell ID_VALID as _IOR). */
#define NOTIF_RECV 0xC0502100UL
#define NOTIF_SEND 0xC0182101UL
#define NOTIF_ID_VALID 0x40082102UL
#define FLAG_CONTINUE 1U
#define VERSION_LIMIT (4 << 20)
#define PAGE 4096   /* tracer.CallerMemory.PAGE: a path is read as at most two pieces */
#define PATH_BUF (4 * PAGE)
#define MAX_SYSCALLS 64
#define DIRS 4096   /* resolved parent directories cached (more are resolved each time) */

/* What vb_serve returns. */
enum { SERVE_WAKE = 0, SERVE_HANGUP = 1, SERVE_PYTHON = 2, SERVE_ERROR = -1 };
/* What handling one notification decided. */
enum { GO_ON, TO_PYTHON };

struct seccomp_data_ { int32_t nr; uint32_t arch; uint64_t ip; uint64_t args[6]; };
struct notif { uint64_t id; uint32_t pid; uint32_t flags; struct seccomp_data_ data; };
struct notif_resp { uint64_t id; int64_t val; int32_t error; uint32_t flags; };

/* A notification handed to Python (tracer.NATIVE_NOTIF). */
struct vb_notif { uint64_t id; uint32_t pid; int32_t nr; uint64_t args[6]; };

struct syscall_spec { int nr, openat2, pairs, dirfd[2], path[2]; };

static struct {
    int listener, log_fd, kept_fd;
    char top[PATH_MAX], git_dir[PATH_MAX], versions[PATH_MAX], hint[PATH_MAX];
    size_t top_len, git_len;
    struct syscall_spec calls[MAX_SYSCALLS];
    int ncalls;
    int quiet;                      /* Python found no live lease when the hint had (ino, size) */
    uint64_t quiet_ino;
    int64_t quiet_size;
    int64_t count;                  /* the versions file's size: the next version's offset */
    char *data;                     /* a version being kept (VERSION_LIMIT + 1 bytes) */
    uint64_t handled, passed;       /* notifications answered here, and handed to Python */
} S = { .listener = -1, .log_fd = -1, .kept_fd = -1 };

/* ---- small hash tables: the log's last event per path, and resolved directories ---- */

struct last { char *path; int present; uint64_t ino, size, mtime_ns, ctime_ns, mode; };
static struct last *lasts;
static size_t lasts_cap, lasts_used;

struct dir { char *path, *real; };
static struct dir dirs[DIRS];
static size_t dirs_used;

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int lasts_grow(void) {
    size_t cap = lasts_cap ? lasts_cap * 2 : 1024;
    struct last *fresh = calloc(cap, sizeof *fresh);
    if (!fresh) return -1;
    for (size_t i = 0; i < lasts_cap; i++) {
        if (!lasts[i].path) continue;
        size_t j = hash(lasts[i].path) & (cap - 1);
        while (fresh[j].path) j = (j + 1) & (cap - 1);
        fresh[j] = lasts[i];
    }
    free(lasts);
    lasts = fresh;
    lasts_cap = cap;
    return 0;
}

/* The slot of `rel` (its path NULL if new), or NULL when out of memory (then nothing is deduplicated). */
static struct last *last_of(const char *rel) {
    if (lasts_used * 2 >= lasts_cap && lasts_grow() < 0) return NULL;
    size_t j = hash(rel) & (lasts_cap - 1);
    while (lasts[j].path && strcmp(lasts[j].path, rel) != 0) j = (j + 1) & (lasts_cap - 1);
    return &lasts[j];
}

/* ---- writing ---- */

static int write_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* tracer.quote: backslash, newline and tab escaped. `out` holds 2 * strlen(in) + 1. */
static size_t quote(const char *in, char *out) {
    size_t n = 0;
    for (; *in; in++) {
        if (*in == '\\') { out[n++] = '\\'; out[n++] = '\\'; }
        else if (*in == '\n') { out[n++] = '\\'; out[n++] = 'n'; }
        else if (*in == '\t') { out[n++] = '\\'; out[n++] = 't'; }
        else out[n++] = *in;
    }
    out[n] = 0;
    return n;
}

/* tracer.TraceLog._keep: the path's current content appended to the versions file; its field. */
static void keep(const char *full, const struct stat *st, char *field, size_t size) {
    ssize_t len;
    unsigned mode;
    if (!S.data && !(S.data = malloc(VERSION_LIMIT + 1))) { snprintf(field, size, "-"); return; }
    if (S_ISLNK(st->st_mode)) {
        len = readlink(full, S.data, VERSION_LIMIT + 1);
        if (len < 0) { snprintf(field, size, "-"); return; }
        mode = 0120000;
    } else if (S_ISREG(st->st_mode) && st->st_size <= VERSION_LIMIT) {
        /* O_NONBLOCK: should it have become a FIFO meanwhile, we must not block on it. */
        int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) { snprintf(field, size, "-"); return; }
        len = 0;
        while (len < VERSION_LIMIT + 1) {
            ssize_t n = read(fd, S.data + len, (size_t)(VERSION_LIMIT + 1 - len));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) { len = -1; break; }
            if (n == 0) break;
            len += n;
        }
        close(fd);
        if (len < 0) { snprintf(field, size, "-"); return; }
        mode = (st->st_mode & 0100) ? 0100755 : 0100644;
    } else {
        snprintf(field, size, "-");
        return;
    }
    if (len > VERSION_LIMIT) { snprintf(field, size, "-"); return; }
    if (S.kept_fd < 0) {  /* one file of versions, appended to: no file to create per write */
        S.kept_fd = open(S.versions, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (S.kept_fd < 0) { snprintf(field, size, "-"); return; }
    }
    int64_t offset = S.count;
    if (write_all(S.kept_fd, S.data, (size_t)len) < 0) {
        struct stat now;  /* a part may be written: the next version goes after whatever is there */
        if (fstat(S.kept_fd, &now) == 0) S.count = now.st_size;
        snprintf(field, size, "-");
        return;
    }
    S.count += len;
    snprintf(field, size, "%lld+%lld:%o", (long long)offset, (long long)len, mode);
}

/* tracer.TraceLog.add: a W line unless nothing changed the path since this log's last one for it. */
int vb_add(const char *rel, const char *full) {
    static char line[2 * PATH_BUF + 128], quoted[2 * PATH_BUF + 1];
    char field[64];
    struct timespec ts;
    struct stat st;
    if (strlen(rel) >= PATH_BUF) return -1;
    clock_gettime(CLOCK_REALTIME, &ts);  /* before looking: the version is what the file held no later than this */
    int present = lstat(full, &st) == 0;
    struct last key = { NULL, present, 0, 0, 0, 0, 0 };
    if (present) {
        key.ino = st.st_ino;
        key.size = (uint64_t)st.st_size;
        key.mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
        key.ctime_ns = (uint64_t)st.st_ctim.tv_sec * 1000000000ULL + (uint64_t)st.st_ctim.tv_nsec;
        key.mode = st.st_mode;
    }
    struct last *slot = last_of(rel);
    if (slot && slot->path && slot->present == key.present && slot->ino == key.ino && slot->size == key.size
        && slot->mtime_ns == key.mtime_ns && slot->ctime_ns == key.ctime_ns && slot->mode == key.mode)
        return 0;  /* nothing changed it since our last event: this one tells nothing new */
    if (slot) {
        char *path = slot->path ? slot->path : strdup(rel);
        if (path) {
            if (!slot->path) lasts_used++;
            key.path = path;
            *slot = key;
        }
    }
    if (present) keep(full, &st, field, sizeof field);
    else snprintf(field, sizeof field, "a");
    quote(rel, quoted);
    int n = snprintf(line, sizeof line, "W\t%lld\t%s\t%s\n",
                     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, field, quoted);
    if (n < 0 || (size_t)n >= sizeof line) return -1;
    return write_all(S.log_fd, line, (size_t)n);
}

/* ---- paths, as tracer._paths and tracer._resolved find them ---- */

/* tracer.CallerMemory.read: up to `len` bytes, in two pieces so the first ends at its page. */
static ssize_t peek(uint32_t pid, uint64_t address, char *buf, size_t len) {
    size_t first = PAGE - address % PAGE;
    if (first > len) first = len;
    struct iovec local = { buf, len };
    struct iovec remote[2] = { { (void *)(uintptr_t)address, first }, { (void *)(uintptr_t)(address + first), len - first } };
    return process_vm_readv((pid_t)pid, &local, 1, remote, 2, 0);
}

/* A NUL-terminated string of at most PAGE bytes into `out` (PAGE + 1); 0 if there is none. */
static int caller_string(uint32_t pid, uint64_t address, char *out) {
    ssize_t n = peek(pid, address, out, PAGE + 1);
    return n > 0 && memchr(out, 0, (size_t)n) != NULL;
}

/* posixpath.normpath of an absolute path, in place; -1 for the `//x` spelling it keeps (Python's case). */
static int normpath(char *path) {
    if (path[0] != '/') return -1;
    if (path[1] == '/' && path[2] != '/') return -1;
    char *out = path, *in = path;
    size_t n = 0;
    while (*in) {
        while (*in == '/') in++;
        char *end = strchrnul(in, '/');
        size_t len = (size_t)(end - in);
        if (len == 0 || (len == 1 && in[0] == '.')) {
            /* skip */
        } else if (len == 2 && in[0] == '.' && in[1] == '.') {
            while (n > 0 && out[n - 1] != '/') n--;  /* drop the last component, if any */
            if (n > 0) n--;
        } else {
            out[n++] = '/';
            memmove(out + n, in, len);
            n += len;
        }
        in = end;
    }
    if (n == 0) out[n++] = '/';
    out[n] = 0;
    return 0;
}

/* The parent directory resolved (realpath), cached: tracer._REAL_DIRS. NULL if it cannot be. */
static const char *real_dir(const char *parent) {
    static char real[PATH_MAX];
    size_t j = hash(parent) & (DIRS - 1);
    for (size_t probes = 0; probes < DIRS && dirs[j].path; probes++, j = (j + 1) & (DIRS - 1))
        if (strcmp(dirs[j].path, parent) == 0) return dirs[j].real;
    if (!realpath(parent, real)) return NULL;  /* missing, or not a directory: Python's realpath differs there */
    if (dirs_used * 2 < DIRS && !dirs[j].path) {
        char *p = strdup(parent), *r = strdup(real);
        if (p && r) {
            dirs[j].path = p;
            dirs[j].real = r;
            dirs_used++;
            return r;
        }
        free(p);
        free(r);
    }
    return real;
}

/* The full resolved path one (dirfd argument, path argument) pair names, into `full` (PATH_BUF).
   1: found; 0: no path there (skipped, as Python does); -1: Python must look. */
static int resolve(const struct notif *n, int dirfd_arg, int path_arg, char *full) {
    char raw[PAGE + 1], path[PATH_BUF];
    if (!caller_string(n->pid, n->data.args[path_arg], raw)) return 0;
    if (raw[0] == '/') {
        snprintf(path, sizeof path, "%s", raw);
    } else {
        char link[64], dir[PAGE];
        int dirfd = dirfd_arg < 0 ? AT_FDCWD : (int)(int32_t)(uint32_t)n->data.args[dirfd_arg];
        if (dirfd == AT_FDCWD) snprintf(link, sizeof link, "/proc/%u/cwd", n->pid);
        else snprintf(link, sizeof link, "/proc/%u/fd/%d", n->pid, dirfd);
        ssize_t len = readlink(link, dir, sizeof dir - 1);
        if (len <= 0 || len >= (ssize_t)sizeof dir - 1 || dir[0] != '/') return -1;
        dir[len] = 0;
        int k = snprintf(path, sizeof path, "%s%s%s", dir, dir[len - 1] == '/' ? "" : "/", raw);
        if (k < 0 || (size_t)k >= sizeof path) return -1;
    }
    if (normpath(path) < 0) return -1;
    char *slash = strrchr(path, '/');
    const char *name = slash + 1;
    const char *real;
    if (slash == path) {
        real = "/";
    } else {
        *slash = 0;
        real = real_dir(path);
        if (!real) return -1;
    }
    int k = snprintf(full, PATH_BUF, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", name);
    return k < 0 || k >= PATH_BUF ? -1 : 1;
}

/* tracer._protected. */
static int protected(const char *rel) {
    char name[PATH_BUF];
    size_t len = strlen(rel);
    if (len >= sizeof name) return 1;
    memcpy(name, rel, len + 1);
    if (len >= 5 && strcmp(name + len - 5, ".lock") == 0) name[len - 5] = 0;
    return strcmp(name, "config") == 0 || strcmp(name, "HEAD") == 0 || strncmp(name, "hooks/", 6) == 0
        || strncmp(name, "vbranch/", 8) == 0 || strncmp(name, "refs/heads/vbranch/", 19) == 0;
}

/* No lease can be held: the hint file is as it was when Python last found no live lease. */
static int no_lease(void) {
    struct stat st;
    return S.quiet && stat(S.hint, &st) == 0 && (uint64_t)st.st_ino == S.quiet_ino && (int64_t)st.st_size == S.quiet_size;
}

static int under(const char *full, const char *dir, size_t len) {
    return strncmp(full, dir, len) == 0 && full[len] == '/';
}

/* tracer._look for what needs no Python; TO_PYTHON for the rest (nothing logged yet then). */
static int handle(const struct notif *n) {
    static char full[2][PATH_BUF];
    int mine[2], count = 0;
    const struct syscall_spec *spec = NULL;
    for (int i = 0; i < S.ncalls; i++)
        if (S.calls[i].nr == n->data.nr) spec = &S.calls[i];
    if (!spec) return TO_PYTHON;
    if (spec->openat2) {  /* its flags are in a struct the filter cannot read */
        uint64_t flags;
        if (peek(n->pid, n->data.args[2], (char *)&flags, sizeof flags) != (ssize_t)sizeof flags) return TO_PYTHON;
        if (!(flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC))) return GO_ON;
    }
    for (int i = 0; i < spec->pairs; i++) {
        int found = resolve(n, spec->dirfd[i], spec->path[i], full[count]);
        if (found < 0) return TO_PYTHON;
        if (found == 0) continue;
        /* 1: git's directory (checked first: it may be inside the top), 2: the working tree */
        int where = under(full[count], S.git_dir, S.git_len) ? 1 : under(full[count], S.top, S.top_len) ? 2 : 0;
        if (where) mine[count++] = where;
    }
    if (!count) return GO_ON;  /* most notified opens: /dev/null, /tmp */
    /* The memory we read must still be the caller's, blocked in this very call (if not, it is gone). */
    if (ioctl(S.listener, NOTIF_ID_VALID, &n->id) < 0) return GO_ON;
    for (int i = 0; i < count; i++) {
        if (mine[i] == 1 && protected(full[i] + S.git_len + 1)) return TO_PYTHON;
        if (mine[i] == 2 && !no_lease()) return TO_PYTHON;
    }
    for (int i = 0; i < count; i++)
        if (mine[i] == 2 && vb_add(full[i] + S.top_len + 1, full[i]) < 0) return GO_ON;  /* the log is full or gone: go on */
    return GO_ON;
}

static void answer(uint64_t id) {
    struct notif_resp resp = { id, 0, 0, FLAG_CONTINUE };
    ioctl(S.listener, NOTIF_SEND, &resp);  /* fails only when the task is gone */
}

/* ---- what Python calls ---- */

/* The supervisor's places and the filter's syscalls: `table` holds, per syscall, nr, openat2 (0/1),
   the number of pairs, then two (dirfd argument or -1, path argument) pairs. */
int vb_setup(int listener, int log_fd, const char *versions, const char *top, const char *git_dir,
             const char *hint, const int *table, int ncalls) {
    if (ncalls > MAX_SYSCALLS || strlen(top) >= PATH_MAX || strlen(git_dir) >= PATH_MAX
        || strlen(versions) >= PATH_MAX || strlen(hint) >= PATH_MAX)
        return -1;
    S.listener = listener;
    S.log_fd = log_fd;
    strcpy(S.versions, versions);
    strcpy(S.top, top);
    strcpy(S.git_dir, git_dir);
    strcpy(S.hint, hint);
    S.top_len = strlen(top);
    S.git_len = strlen(git_dir);
    for (int i = 0; i < ncalls; i++) {
        const int *row = table + 7 * i;
        struct syscall_spec spec = { row[0], row[1], row[2], { row[3], row[5] }, { row[4], row[6] } };
        if (spec.pairs < 0 || spec.pairs > 2) return -1;
        for (int k = 0; k < spec.pairs; k++)
            if (spec.path[k] < 0 || spec.path[k] > 5 || spec.dirfd[k] > 5) return -1;
        S.calls[i] = spec;
    }
    S.ncalls = ncalls;
    return 0;
}

/* Python found no live lease while the hint file had this (inode, size); quiet = 0: it may have. */
void vb_leases(int quiet, uint64_t ino, int64_t size) {
    S.quiet = quiet;
    S.quiet_ino = ino;
    S.quiet_size = size;
}

/* Answer notifications until Python is needed: SERVE_WAKE (the wake fd is readable: a SIGCHLD),
   SERVE_HANGUP (no traced task is left), SERVE_PYTHON (`out` holds a received notification that
   Python must answer), SERVE_ERROR (errno says why; Python goes on with its own loop). */
int vb_serve(int wake, struct vb_notif *out) {
    for (;;) {
        struct pollfd fds[2] = { { wake, POLLIN, 0 }, { S.listener, POLLIN, 0 } };
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return SERVE_ERROR;
        }
        if (fds[0].revents) return SERVE_WAKE;
        if (fds[1].revents & POLLIN) {
            struct notif n;
            memset(&n, 0, sizeof n);
            if (ioctl(S.listener, NOTIF_RECV, &n) < 0) {
                if (errno == ENOENT || errno == EINTR) continue;  /* the task died (or was interrupted) first */
                return SERVE_ERROR;
            }
            if (handle(&n) == TO_PYTHON) {
                out->id = n.id;
                out->pid = n.pid;
                out->nr = n.data.nr;
                memcpy(out->args, n.data.args, sizeof out->args);
                S.passed++;
                return SERVE_PYTHON;
            }
            S.handled++;
            answer(n.id);
            continue;
        }
        if (fds[1].revents & (POLLHUP | POLLERR | POLLNVAL)) return SERVE_HANGUP;
    }
}

/* How many notifications were answered here, and how many handed to Python. */
void vb_counts(uint64_t *handled, uint64_t *passed) {
    *handled = S.handled;
    *passed = S.passed;
}

void vb_close(void) {
    if (S.kept_fd >= 0) close(S.kept_fd);
    S.kept_fd = -1;
}
