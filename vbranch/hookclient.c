/* `vbranch hook`'s client in C: hookclient.py without Python's start (~15 ms of CPU per hook).

The installed hook command runs it as `hookclient-<hash> PYTHON SCRIPT hook [--agent NAME]`
(agents/settings.py: hook_command). It takes hookclient.py's decisions and speaks its protocol
to the watcher's hook server on `.git/vbranch/hook.sock`: the request is
`AGENT \0 CLAUDE_PROJECT_DIR \0 CWD \n` and the payload, then the write side is shut; the reply is
`CODE STDOUT_LENGTH \n`, the hook's stdout, its stderr. Whenever it does not get a full answer it
hands over to the Python client, `PYTHON -S SCRIPT ARGS`, with the payload again on its stdin:
Python's client then runs the full hook (or, with VBRANCH_HOOK_SERVER=only, this one fails as it
would). libc only; built by vbranch/native.py. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#define SOCKET_NAME "hook.sock"
#define CHUNK 65536

struct buf { char *data; size_t len, cap; };

static int reserve(struct buf *b, size_t more) {
    size_t cap = b->cap ? b->cap : CHUNK;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    if (cap != b->cap) {
        char *p = realloc(b->data, cap);
        if (!p) return -1;
        b->data = p;
        b->cap = cap;
    }
    return 0;
}

static int append(struct buf *b, const char *data, size_t n) {
    if (reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

/* Everything `fd` yields until its end; -1 on an error. */
static int read_all(int fd, struct buf *b) {
    for (;;) {
        if (reserve(b, CHUNK) < 0) return -1;
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
        if (n > 0) b->len += (size_t)n;
        else if (n == 0) return 0;
        else if (errno != EINTR) return -1;
    }
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* `.git/vbranch` of the repository around `cwd` if it has a plain .git directory (malloc'd), else NULL:
   a gitfile (worktree, submodule) is left to the full hook, which resolves it. */
static char *find_state_dir(const char *cwd) {
    size_t len = strlen(cwd);
    char *path = malloc(len + sizeof "/.git/vbranch");
    struct stat st;
    if (!path) return NULL;
    memcpy(path, cwd, len + 1);
    for (;;) {
        strcpy(path + len, len > 0 && path[len - 1] == '/' ? ".git" : "/.git");
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            strcat(path, "/vbranch");
            return path;
        }
        if (lstat(path, &st) == 0) break;
        path[len] = '\0';
        char *slash = strrchr(path, '/');
        if (!slash || len == 1) break;  /* the root was the last to look in */
        len = slash == path ? 1 : (size_t)(slash - path);
        path[len] = '\0';
    }
    free(path);
    return NULL;
}

/* The server's whole reply to header + payload into `reply`; -1 if there was none. */
static int ask(const char *state_dir, const struct buf *header, const struct buf *payload, struct buf *reply) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, SOCKET_NAME);
    /* Connect by a relative name: socket paths may not exceed 107 bytes. */
    if (chdir(state_dir) < 0) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int ok = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0
             && write_all(fd, header->data, header->len) == 0 && write_all(fd, payload->data, payload->len) == 0
             && shutdown(fd, SHUT_WR) == 0 && read_all(fd, reply) == 0;
    close(fd);
    return ok ? 0 : -1;
}

static int space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }  /* bytes.split()'s whitespace */

/* One decimal field of the reply's head at *p (before end), as Python's int() reads it; -1 if none. */
static int field(const char **p, const char *end, long long *value) {
    const char *s = *p;
    int negative = 0, digits = 0;
    while (s < end && space(*s)) s++;
    if (s < end && (*s == '+' || *s == '-')) negative = *s++ == '-';
    for (*value = 0; s < end && *s >= '0' && *s <= '9' && digits < 18; s++, digits++) *value = *value * 10 + (*s - '0');
    if (!digits || (s < end && !space(*s))) return -1;
    if (negative) *value = -*value;
    *p = s;
    return 0;
}

/* hookclient.parse_reply: the code, and where stdout ends, if the reply is whole. */
static int parse_reply(const struct buf *r, long long *code, size_t *head, size_t *out) {
    const char *nl = r->len ? memchr(r->data, '\n', r->len) : NULL;
    const char *p = r->data, *end = nl ? nl : r->data + r->len;
    long long length;
    if (field(&p, end, code) < 0 || field(&p, end, &length) < 0) return -1;
    while (p < end && space(*p)) p++;
    *head = nl ? (size_t)(nl - r->data) + 1 : r->len;
    if (p != end || length < 0 || (unsigned long long)length > r->len - *head) return -1;
    *out = (size_t)length;
    return 0;
}

/* A descriptor to read the payload from, through no name in the file system (hookclient.payload_fd):
   an anonymous memory file where the system has one, else a pipe (a forked child writes what
   does not fit without blocking). */
static int payload_fd(const struct buf *payload) {
#if defined(__linux__) && defined(MFD_CLOEXEC)
    int fd = memfd_create("vbranch-hook", MFD_CLOEXEC);
    if (fd >= 0) {
        if (write_all(fd, payload->data, payload->len) == 0 && lseek(fd, 0, SEEK_SET) == 0) return fd;
        close(fd);
    }
#endif
    int p[2];
    if (pipe(p) < 0) return -1;
    if (payload->len <= 512) {  /* POSIX promises that much room */
        write_all(p[1], payload->data, payload->len);
    } else {
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            _exit(write_all(p[1], payload->data, payload->len) == 0 ? 0 : 1);
        }
        if (pid < 0) {
            close(p[0]);
            p[0] = -1;
        }
    }
    close(p[1]);
    return p[0];
}

/* Replace this process with `PYTHON -S SCRIPT ARGS...` in `cwd`, the payload on its stdin
   (without one, stdin as it is). Returns only if that failed. */
static void hand_over(int argc, char **argv, const char *cwd, const struct buf *payload) {
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args) return;
    args[0] = argv[1];
    args[1] = "-S";
    args[2] = argv[2];
    for (int i = 3; i < argc; i++) args[i] = argv[i];
    if (payload) {
        int fd = payload_fd(payload);
        if (fd < 0) return;
        if (fd != 0) {
            if (dup2(fd, 0) < 0) return;
            close(fd);
        }
    }
    if (cwd && chdir(cwd) < 0) return;
    signal(SIGPIPE, SIG_DFL);
    execv(argv[1], args);
}

int main(int argc, char **argv) {
    static const char only[] = "vbranch hook: no hook server answered (VBRANCH_HOOK_SERVER=only)\n";
    struct buf payload = {0}, header = {0}, reply = {0};
    if (argc < 3) {
        fputs("usage: hookclient PYTHON SCRIPT [hook [--agent NAME]]\n", stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);  /* a server or reader gone away is an error here, not death */
    int have_payload = read_all(0, &payload) == 0;
    const char *first = argc > 3 ? argv[3] : "hook";
    const char *agent = argc > 5 && strcmp(argv[4], "--agent") == 0 ? argv[5] : "claude";
    const char *mode = getenv("VBRANCH_HOOK_SERVER");
    const char *project = getenv("CLAUDE_PROJECT_DIR");
    char *cwd = getcwd(NULL, 0);
    long long code;
    size_t head, out;
    if (!mode) mode = "auto";
    if (!project) project = "";
    /* Without the payload or a working directory, Python's client decides (and says) what happens. */
    int answered = 0, decided = have_payload && cwd;
    if (decided && strcmp(mode, "off") != 0 && strcmp(first, "hook") == 0 && !getenv("GIT_DIR")) {
        char *state_dir = find_state_dir(cwd);
        if (state_dir && append(&header, agent, strlen(agent) + 1) == 0 && append(&header, project, strlen(project) + 1) == 0
            && append(&header, cwd, strlen(cwd)) == 0 && append(&header, "\n", 1) == 0)
            answered = ask(state_dir, &header, &payload, &reply) == 0 && parse_reply(&reply, &code, &head, &out) == 0;
        free(state_dir);
    }
    if (!answered) {
        if (decided && strcmp(mode, "only") == 0) {
            write_all(2, only, sizeof only - 1);
            return 1;
        }
        hand_over(argc, argv, cwd, have_payload ? &payload : NULL);
        fprintf(stderr, "vbranch hook: cannot hand over to %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    write_all(1, reply.data + head, out);
    write_all(2, reply.data + head + out, reply.len - head - out);
    return (int)code;
}
