/* A sick disk for tests, preloaded (LD_PRELOAD) into the real engine: fsync and fdatasync of
 * files under $PYRT_FAULT_DIR behave as the first character of the file $PYRT_FAULT_CONTROL
 * says, read at every call:
 *   'o' (ok, or no file)  the real call;
 *   's' (stall)           block, polling every 10 ms, until the file says otherwise (a disk
 *                         that hangs in fsync);
 *   'f' (fail)            return -1 with errno EIO (a disk that reports a write error).
 * Built by tests/e2e/test_metrics.py with the C compiler every Rust build needs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int under_fault_dir(int fd) {
    const char *dir = getenv("PYRT_FAULT_DIR");
    char link[64], path[PATH_MAX];
    ssize_t n;
    if (dir == NULL || dir[0] == '\0') return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = '\0';
    size_t len = strlen(dir);
    /* The directory itself or a path below it (not a sibling that shares the prefix). */
    return strncmp(path, dir, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

static char mode(void) {
    const char *control = getenv("PYRT_FAULT_CONTROL");
    char c = 'o';
    int fd;
    if (control == NULL) return 'o';
    fd = open(control, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 'o';
    if (read(fd, &c, 1) != 1) c = 'o';
    close(fd);
    return c;
}

/* 0: go on with the real call; -1: fail it (errno set). */
static int inject(int fd) {
    if (!under_fault_dir(fd)) return 0;
    for (;;) {
        switch (mode()) {
        case 's':
            usleep(10000);
            continue;
        case 'f':
            errno = EIO;
            return -1;
        default:
            return 0;
        }
    }
}

static int (*real_fdatasync)(int);
static int (*real_fsync)(int);

/* Resolved once, when the library is loaded (before any thread of the engine exists). */
__attribute__((constructor)) static void resolve(void) {
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
}

int fdatasync(int fd) {
    if (inject(fd) != 0) return -1;
    return real_fdatasync(fd);
}

int fsync(int fd) {
    if (inject(fd) != 0) return -1;
    return real_fsync(fd);
}
