/*
 * fileio.h — the io layer's file plumbing: opening a file for reading with its
 * size known and checked up front (so a loader can compare declared lengths
 * with the real one before it allocates), exact reads that turn short reads
 * into statuses, and atomic replacement of a file (temp file in the same
 * directory, fsync, rename) so a failed save never damages what was there.
 *
 * POSIX (fstat, fsync, rename over an existing file). Nothing here prints.
 */
#ifndef TQ_FILEIO_H
#define TQ_FILEIO_H

#include <stdint.h>
#include <stdio.h>

#include "../core/common.h"

typedef struct tq_rfile {
    FILE *f;
    uint64_t size; /* bytes, from fstat at open */
    const char *path;
} tq_rfile;

/** Open a regular file for reading; fills rf->size. TQ_ERR_IO if it cannot be opened or is not a regular file. */
TQ_INTERNAL tq_status tq_rfile_open(tq_rfile *rf, const char *path);
/** Read exactly n bytes (n may be 0). Short read: TQ_ERR_FORMAT (end of file) or TQ_ERR_IO (read error). */
TQ_INTERNAL tq_status tq_rfile_read(tq_rfile *rf, void *buf, size_t n);
/** Close (NULL-safe on a zeroed rf). */
TQ_INTERNAL void tq_rfile_close(tq_rfile *rf);

/** Writes a file's whole content to f; returns a status (write errors are also caught by the caller). */
typedef tq_status (*tq_write_fn)(void *ctx, FILE *f);

/**
 * Replace `path` atomically with what fn writes: a new temp file
 * "<path>.tmp.<pid>.<n>" is created exclusively, written, flushed, fsync'ed
 * and renamed over path. On any failure the temp file is removed and path is
 * left as it was.
 */
TQ_INTERNAL tq_status tq_write_atomic(const char *path, tq_write_fn fn, void *ctx);

#endif /* TQ_FILEIO_H */
