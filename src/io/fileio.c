/*
 * fileio.c — see fileio.h. Why a temp file in the same directory: rename() is
 * atomic only within one file system, and the temp file must be on the
 * target's. Why a counter next to the pid: two threads of one process saving
 * the same path must not share a temp file (creation is exclusive, so the
 * worst case is a clean TQ_ERR_IO, never a mixed file).
 */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

tq_status tq_rfile_open(tq_rfile *rf, const char *path) {
    memset(rf, 0, sizeof *rf);
    rf->path = path;
    FILE *f = fopen(path, "rb");
    TQ_RETURN_IF(!f, TQ_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return tq_fail(TQ_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return tq_fail(TQ_ERR_IO, "'%s' is not a regular file", path);
    }
    rf->f = f;
    rf->size = st.st_size < 0 ? 0 : (uint64_t)st.st_size;
    return TQ_OK;
}

tq_status tq_rfile_read(tq_rfile *rf, void *buf, size_t n) {
    if (n == 0) return TQ_OK;
    size_t got = fread(buf, 1, n, rf->f);
    if (got == n) return TQ_OK;
    if (ferror(rf->f)) return tq_fail(TQ_ERR_IO, "read error in '%s': %s", rf->path, strerror(errno));
    return tq_fail(TQ_ERR_FORMAT, "'%s' ended early (it changed while being read?)", rf->path);
}

void tq_rfile_close(tq_rfile *rf) {
    if (rf->f) fclose(rf->f);
    rf->f = NULL;
}

static atomic_uint tq_tmp_counter;

/* Best effort: make the rename itself durable. Failure here is not an error of the save. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = malloc(2);
        if (!dir) return;
        strcpy(dir, ".");
    } else {
        size_t len = (size_t)(slash - path);
        if (len == 0) len = 1; /* "/file" */
        dir = malloc(len + 1);
        if (!dir) return;
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

tq_status tq_write_atomic(const char *path, tq_write_fn fn, void *ctx) {
    TQ_RETURN_IF(!path || !*path, TQ_ERR_INVALID_ARG, "path is NULL or empty");
    size_t len = strlen(path) + 64;
    char *tmp = malloc(len);
    TQ_RETURN_IF(!tmp, TQ_ERR_NOMEM, "out of memory");
    /* A name can be taken by the temp file of a process that died mid-save and had
     * the same pid (a restarted container's process often does), one per crash:
     * skip such names rather than fail every save from then on. */
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 10000; tries++) {
        unsigned n = atomic_fetch_add(&tq_tmp_counter, 1u);
        snprintf(tmp, len, "%s.tmp.%ld.%u", path, (long)getpid(), n);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int e = errno;
        tq_status s = tq_fail(TQ_ERR_IO, "cannot create '%s': %s", tmp, strerror(e));
        free(tmp);
        return s;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        remove(tmp);
        tq_status s = tq_fail(TQ_ERR_IO, "cannot open '%s': %s", tmp, strerror(e));
        free(tmp);
        return s;
    }
    tq_status s = fn(ctx, f);
    if (s == TQ_OK && (fflush(f) != 0 || ferror(f)))
        s = tq_fail(TQ_ERR_IO, "write to '%s' failed: %s", tmp, strerror(errno));
    if (s == TQ_OK && fsync(fileno(f)) != 0) s = tq_fail(TQ_ERR_IO, "fsync of '%s' failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && s == TQ_OK) s = tq_fail(TQ_ERR_IO, "closing '%s' failed: %s", tmp, strerror(errno));
    if (s == TQ_OK && rename(tmp, path) != 0)
        s = tq_fail(TQ_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (s != TQ_OK) {
        remove(tmp);
    } else {
        sync_parent_dir(path);
    }
    free(tmp);
    return s;
}
