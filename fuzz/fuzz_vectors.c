/*
 * fuzz_vectors.c — the input readers of docs/format.md §5: .npy, .fvecs,
 * .bvecs through tq_read_vectors, .ivecs and .npy through tq_read_ids. Byte 0
 * picks the reader and file name, byte 1 the row limit (0: all); the rest is
 * the file.
 *
 * Properties: every failure has a message and hands back no buffer; what is
 * read has 1..TQ_MAX_DIM columns (or 0 rows), at most max_rows rows, only
 * finite floats; ids that fit int32 survive tq_write_ids + tq_read_ids
 * unchanged in both output formats.
 */
#include <math.h>

#include "fuzz_common.h"

static void ids_roundtrip(const int64_t *v, size_t n, size_t cols) {
    if (cols == 0) return; /* an empty .ivecs reads as 0 x 0; tq_write_ids wants cols >= 1 (documented) */
    for (size_t i = 0; i < n * cols; i++)
        if (v[i] < INT32_MIN || v[i] > INT32_MAX) return;
    const char *names[2] = {fuzz_path(".rt.ivecs"), fuzz_path(".rt.npy")};
    for (int f = 0; f < 2; f++) {
        tq_status s = tq_write_ids(names[f], v, n, cols);
        FUZZ_ASSERT(s == TQ_OK, "tq_write_ids of ids just read: %s", tq_last_error());
        int64_t *back = NULL;
        size_t n2 = 0, c2 = 0;
        s = tq_read_ids(names[f], 0, &back, &n2, &c2);
        FUZZ_ASSERT(s == TQ_OK, "reading back %s: %s", names[f], tq_last_error());
        FUZZ_ASSERT(n2 == n, "rows %zu back, %zu written", n2, n);
        if (n) FUZZ_ASSERT(c2 == cols && memcmp(back, v, n * cols * sizeof *v) == 0, "ids changed in a round trip");
        tq_free(back);
        unlink(names[f]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > (1u << 22)) return 0;
    static const char *suffix[6] = {".npy", ".fvecs", ".bvecs", ".ivecs", ".ids.npy", ".vec"};
    int kind = data[0] % 6;
    size_t max_rows = data[1] < 128 ? 0 : (size_t)(data[1] - 127);
    const char *path = fuzz_path(suffix[kind]);
    fuzz_write(path, data + 2, size - 2);

    size_t n = 7, cols = 7;
    tq_status s;
    if (kind == 3 || kind == 4) {
        int64_t *v = NULL;
        s = tq_read_ids(path, max_rows, &v, &n, &cols);
        FUZZ_CHECK_FAIL_MSG(s);
        if (s == TQ_OK) {
            FUZZ_ASSERT(!max_rows || n <= max_rows, "%zu rows with max_rows %zu", n, max_rows);
            FUZZ_ASSERT(n == 0 || (v && cols >= 1 && cols <= TQ_MAX_DIM), "n %zu cols %zu", n, cols);
            ids_roundtrip(v, n, cols);
        } else {
            FUZZ_ASSERT(v == NULL, "failed read handed back a buffer");
        }
        tq_free(v);
    } else {
        float *v = NULL;
        s = tq_read_vectors(path, max_rows, &v, &n, &cols);
        FUZZ_CHECK_FAIL_MSG(s);
        if (s == TQ_OK) {
            FUZZ_ASSERT(!max_rows || n <= max_rows, "%zu rows with max_rows %zu", n, max_rows);
            FUZZ_ASSERT(n == 0 || (v && cols >= 1 && cols <= TQ_MAX_DIM), "n %zu cols %zu", n, cols);
            for (size_t i = 0; i < n * cols; i++) FUZZ_ASSERT(isfinite(v[i]), "value %zu is %g", i, v[i]);
        } else {
            FUZZ_ASSERT(v == NULL, "failed read handed back a buffer");
        }
        tq_free(v);
    }
    unlink(path);
    return 0;
}
