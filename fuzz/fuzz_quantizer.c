/*
 * fuzz_quantizer.c — the quantizer file loader (TQQZ, docs/format.md §2):
 * tq_quantizer_deserialize on the bytes (and tq_quantizer_load on the same
 * bytes as a file). Byte 0 is the mode (bit 0: repair the CRCs first, see
 * fuzz_common.h; bit 1: also go through the file loader).
 *
 * Properties checked beyond "no crash, no leak": every failure has a message;
 * a quantizer that loads serializes back to exactly the bytes it came from
 * (the format is canonical, minor 0) and to its stated serialized size; it
 * encodes, decodes and scores a vector; the file loader agrees with the
 * buffer loader.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1u << 22)) return 0;
    uint8_t mode = data[0];
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return 0;
    memcpy(b, data + 1, n);
    if (mode & 1) fuzz_fix_tqqz(b, n);

    tq_quantizer *q = NULL;
    tq_status s = tq_quantizer_deserialize(b, n, &q);
    FUZZ_CHECK_FAIL_MSG(s);
    FUZZ_ASSERT((s == TQ_OK) == (q != NULL), "status %d but quantizer %p", (int)s, (void *)q);

    if (mode & 2) {
        const char *path = fuzz_path(".tqqz");
        fuzz_write(path, b, n);
        tq_quantizer *q2 = NULL;
        tq_status s2 = tq_quantizer_load(path, &q2);
        FUZZ_CHECK_FAIL_MSG(s2);
        FUZZ_ASSERT(s2 == s, "file loader says %s, buffer loader %s", tq_status_str(s2), tq_status_str(s));
        tq_quantizer_free(q2);
        unlink(path);
    }

    if (q) {
        size_t sz = 0, written = 0;
        FUZZ_ASSERT(tq_quantizer_serialized_size(q, &sz) == TQ_OK, "serialized_size: %s", tq_last_error());
        uint8_t *out = malloc(sz ? sz : 1);
        if (out && tq_quantizer_serialize(q, out, sz, &written) == TQ_OK) {
            FUZZ_ASSERT(written == sz, "wrote %zu of %zu", written, sz);
            int minor0 = n >= 12 && b[6] == 0 && b[7] == 0 && fz_rd32(b + 8) == 96;
            if (minor0) {
                FUZZ_ASSERT(sz == n && memcmp(out, b, n) == 0, "a loaded file does not serialize back to its bytes");
            }
        }
        free(out);

        size_t dim = tq_quantizer_dim(q), cs = tq_quantizer_code_size(q);
        float *x = malloc(dim * sizeof *x), *y = malloc(dim * sizeof *y);
        uint8_t *code = malloc(cs);
        tq_query *pq = NULL;
        if (x && y && code) {
            for (size_t j = 0; j < dim; j++) x[j] = (float)((int)(j * 2654435761u % 17u) - 8) * 0.125f;
            tq_status se = tq_encode(q, x, 1, code);
            FUZZ_CHECK_FAIL_MSG(se);
            if (se == TQ_OK) {
                FUZZ_CHECK_FAIL_MSG(tq_decode(q, code, 1, y));
                if (tq_query_create(q, &pq) == TQ_OK && tq_query_set(pq, x) == TQ_OK) {
                    float sc[2];
                    FUZZ_CHECK_FAIL_MSG(tq_score(q, pq, TQ_METRIC_IP, code, 1, sc));
                    FUZZ_CHECK_FAIL_MSG(tq_score(q, pq, TQ_METRIC_L2, code, 1, sc + 1));
                }
            }
        }
        tq_query_free(pq);
        free(x);
        free(y);
        free(code);
        tq_quantizer_free(q);
    }
    free(b);
    return 0;
}
