/*
 * fuzz_codes.c — the code-array file loader (TQCA, docs/format.md §3):
 * tq_codes_inspect and tq_codes_load, for a fixed quantizer chosen by byte 1
 * (so the fingerprint can match and the records get read). Byte 0 is the
 * mode (bit 0: repair the CRCs). Properties: every failure has a message;
 * inspect and load agree on whether the file is sound (load also checks the
 * fingerprint and code size, so it may refuse what inspect accepts, never
 * the reverse); loaded records decode.
 */
#include "fuzz_common.h"

static tq_quantizer *quantizer(uint8_t which) {
    static tq_quantizer *qs[FUZZ_CODES_QUANTIZERS];
    which %= FUZZ_CODES_QUANTIZERS;
    if (!qs[which] && fuzz_codes_quantizer(which, &qs[which]) != TQ_OK) abort();
    return qs[which];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > (1u << 22)) return 0;
    uint8_t mode = data[0];
    tq_quantizer *q = quantizer(data[1]);
    size_t n = size - 2;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return 0;
    memcpy(b, data + 2, n);
    if (mode & 1) fuzz_fix_tqca(b, n);
    const char *path = fuzz_path(".tqca");
    fuzz_write(path, b, n);

    tq_codes_info info;
    tq_status si = tq_codes_inspect(path, &info);
    FUZZ_CHECK_FAIL_MSG(si);
    uint8_t *codes = NULL;
    size_t nrec = 0;
    tq_status sl = tq_codes_load(q, path, &codes, &nrec);
    FUZZ_CHECK_FAIL_MSG(sl);
    FUZZ_ASSERT(sl != TQ_OK || si == TQ_OK, "load accepted what inspect refused (%s)", tq_status_str(si));
    if (sl == TQ_OK) {
        FUZZ_ASSERT(info.n == nrec, "inspect says %llu records, load %zu", (unsigned long long)info.n, nrec);
        size_t dim = tq_quantizer_dim(q), take = nrec < 64 ? nrec : 64;
        float *out = malloc((take ? take : 1) * dim * sizeof *out);
        if (out && take) FUZZ_CHECK_FAIL_MSG(tq_decode(q, codes, take, out));
        free(out);
    } else {
        FUZZ_ASSERT(codes == NULL, "failed load left a buffer");
    }
    tq_free(codes);
    free(b);
    unlink(path);
    return 0;
}
