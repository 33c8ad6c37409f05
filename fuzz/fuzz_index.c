/*
 * fuzz_index.c — the index file loader (TQIX, docs/format.md §6):
 * tq_index_load, or tq_index_open_mmap when mode bit 1 is set. Byte 0 is
 * the mode (bit 0: repair the CRCs, including those of the embedded
 * quantizers; bit 2: save what loaded and load it again).
 *
 * Properties: every failure has a message and leaves no index; an index that
 * loads can be searched (ids returned are stored ids or -1, best first),
 * removed from and added to, as its header promised; a saved copy loads back
 * with the same size and the same search results.
 */
#include <math.h>

#include "fuzz_common.h"

static int searched_ok(const tq_index *ix, const float *qv, size_t k, int64_t *ids, float *sc) {
    tq_status s = tq_index_search(ix, qv, 1, k, NULL, ids, sc);
    FUZZ_CHECK_FAIL_MSG(s);
    return s == TQ_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1u << 22)) return 0;
    uint8_t mode = data[0];
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return 0;
    memcpy(b, data + 1, n);
    if (mode & 1) fuzz_fix_tqix(b, n);
    const char *path = fuzz_path(".tqi");
    fuzz_write(path, b, n);
    free(b);

    tq_index *ix = NULL;
    tq_status s = (mode & 2) ? tq_index_open_mmap(path, &ix) : tq_index_load(path, &ix);
    FUZZ_CHECK_FAIL_MSG(s);
    FUZZ_ASSERT((s == TQ_OK) == (ix != NULL), "status %d but index %p", (int)s, (void *)ix);
    if (!ix) {
        unlink(path);
        return 0;
    }

    size_t dim = tq_index_dim(ix), nv = tq_index_size(ix);
    tq_index_memory mem;
    FUZZ_ASSERT(tq_index_memory_usage(ix, &mem) == TQ_OK, "memory_usage: %s", tq_last_error());
    float *qv = malloc(dim * sizeof *qv);
    if (!qv) abort();
    for (size_t j = 0; j < dim; j++) qv[j] = (float)((int)(j * 2654435761u % 13u) - 6) * 0.25f;
    enum { K = 5 };
    int64_t ids[K] = {-1, -1, -1, -1, -1}, ids2[K];
    float sc[K], sc2[K];
    int found = searched_ok(ix, qv, K, ids, sc);
    if (found) {
        for (size_t r = 0; r < K; r++) {
            if (r >= nv) FUZZ_ASSERT(ids[r] == -1, "rank %zu of %zu vectors has id %lld", r, nv, (long long)ids[r]);
            else FUZZ_ASSERT(ids[r] >= 0, "rank %zu has id %lld", r, (long long)ids[r]);
        }
    }

    if (mode & 4) {
        const char *copy = fuzz_path(".copy.tqi");
        tq_status ss = tq_index_save(ix, copy);
        FUZZ_CHECK_FAIL_MSG(ss);
        if (ss == TQ_OK) {
            tq_index *back = NULL;
            tq_status sb = tq_index_load(copy, &back);
            FUZZ_ASSERT(sb == TQ_OK, "a saved index does not load: %s", tq_last_error());
            FUZZ_ASSERT(tq_index_size(back) == nv, "size %zu after save, %zu before", tq_index_size(back), nv);
            if ((found = searched_ok(ix, qv, K, ids, sc)) && searched_ok(back, qv, K, ids2, sc2)) {
                for (int r = 0; r < K; r++) {
                    FUZZ_ASSERT(ids[r] == ids2[r], "rank %d: id %lld before save, %lld after", r, (long long)ids[r],
                                (long long)ids2[r]);
                    FUZZ_ASSERT(memcmp(&sc[r], &sc2[r], sizeof sc[r]) == 0 || (isnan(sc[r]) && isnan(sc2[r])),
                                "rank %d: score %g before save, %g after", r, sc[r], sc2[r]);
                }
            }
            tq_index_free(back);
            unlink(copy);
        }
    }

    /* change it: remove the best hit, add the query under a fresh automatic id */
    if (found && nv > 0 && ids[0] >= 0) {
        size_t removed = 0;
        tq_status sr = tq_index_remove(ix, &ids[0], 1, &removed);
        FUZZ_CHECK_FAIL_MSG(sr);
        if (sr == TQ_OK) FUZZ_ASSERT(removed == 1 && tq_index_size(ix) == nv - 1, "remove of a found id");
    }
    size_t before = tq_index_size(ix);
    int64_t got = -1;
    tq_status sa = tq_index_add(ix, qv, 1, NULL, &got);
    FUZZ_CHECK_FAIL_MSG(sa);
    FUZZ_ASSERT(tq_index_size(ix) == before + (sa == TQ_OK), "size after add");
    if (sa == TQ_OK) (void)searched_ok(ix, qv, K, ids, sc);

    free(qv);
    tq_index_free(ix);
    unlink(path);
    return 0;
}
