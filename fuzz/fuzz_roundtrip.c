/*
 * fuzz_roundtrip.c — the quantizer end to end through the public API, with
 * a configuration and vectors the fuzzer picks: create (or a clean refusal),
 * encode, decode, score, serialize, deserialize, encode again.
 *
 * Properties:
 *   - create and encode either succeed or fail with a message; a batch with
 *     NaN or Inf is refused (TQ_ERR_NONFINITE) and the output is untouched;
 *   - encode -> decode gives finite vectors for any accepted (finite) input;
 *   - encoding is deterministic: the batch at once, row by row, on 1 or 2
 *     threads, and by the quantizer after a serialize -> deserialize round
 *     trip all give the same bytes, and the round trip reproduces the file;
 *   - encode -> decode -> encode gives the same bytes at every stage on every
 *     kernel table this CPU runs (ref, avx2, avx512: tq_kernels_override),
 *     and scores agree across tables within the stated tolerance;
 *   - scoring from codes equals the inner product with the decoded vector
 *     (tq_score(IP) = <q, decode(code)> up to float rounding) and the L2
 *     score is ||q||^2 - 2 IP + ||decode||^2 up to rounding, for the
 *     variants and norm modes where the estimate is that linear function of
 *     the decoded vector (all but TQ_NORM_UNBIASED, whose IP factor differs
 *     from its decode scale by design).
 */
#include <math.h>

#include "fuzz_common.h"
#include "kernels/kernels.h"

enum { MAXDIM = 300, MAXN = 6 };

static float val(fuzz_in *in, int raw) {
    if (raw) {
        uint32_t u = fz_u32(in);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return ldexpf((float)(int8_t)fz_u8(in) / 128.0f, (int)(fz_u8(in) % 24) - 12);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size, 0};
    tq_config c;
    uint32_t dim = fz_range(&in, 1, MAXDIM);
    tq_config_init(&c, dim, fz_range(&in, 0, 9));
    c.variant = (tq_variant)fz_range(&in, 0, 4);          /* 4: invalid */
    c.rotation = (tq_rotation_kind)fz_range(&in, 0, 3);   /* 3: invalid */
    c.rounds = fz_range(&in, 0, 9);
    c.qjl = (tq_qjl_kind)fz_range(&in, 0, 2);
    c.norm = (tq_norm_mode)fz_range(&in, 0, 3);
    c.seed = fz_u32(&in);
    uint32_t channels[MAXDIM];
    if (fz_u8(&in) & 1) {
        c.outlier_count = fz_range(&in, 0, dim);
        c.outlier_bits = fz_range(&in, 0, 9);
        if (fz_u8(&in) & 1) {
            for (uint32_t i = 0; i < c.outlier_count; i++) channels[i] = fz_range(&in, 0, dim);
            c.outlier_channels = channels;
        }
    }
    c.uniform_mode = (tq_uniform_mode)fz_range(&in, 0, 2);
    c.uniform_scope = (tq_uniform_scope)fz_range(&in, 0, 3);
    c.group_size = fz_range(&in, 0, 40);

    tq_quantizer *q = NULL;
    tq_status s = tq_quantizer_create(&c, &q);
    FUZZ_CHECK_FAIL_MSG(s);
    if (s != TQ_OK) {
        FUZZ_ASSERT(q == NULL, "failed create left a quantizer");
        return 0;
    }
    size_t n = fz_range(&in, 1, MAXN), cs = tq_quantizer_code_size(q);
    int raw = fz_u8(&in) & 1;
    static float x[MAXN * MAXDIM], y[MAXN * MAXDIM], qv[MAXDIM];
    static uint8_t codes[MAXN * 4096], codes2[MAXN * 4096];
    FUZZ_ASSERT(cs <= 4096, "code size %zu", cs);
    int finite = 1;
    for (size_t i = 0; i < n * dim; i++) finite &= isfinite(x[i] = val(&in, raw));
    for (size_t j = 0; j < dim; j++) qv[j] = val(&in, 0);

    if (c.variant == TQ_VARIANT_UNIFORM && c.uniform_scope == TQ_UNIFORM_PER_CHANNEL) {
        tq_status sc = tq_quantizer_calibrate(q, x, n);
        FUZZ_CHECK_FAIL_MSG(sc);
        if (sc != TQ_OK) goto done;
    }
    memset(codes, 0xA5, n * cs);
    s = tq_encode(q, x, n, codes);
    FUZZ_CHECK_FAIL_MSG(s);
    if (!finite) {
        FUZZ_ASSERT(s == TQ_ERR_NONFINITE, "a batch with NaN/Inf gave %s", tq_status_str(s));
        for (size_t i = 0; i < n * cs; i++) FUZZ_ASSERT(codes[i] == 0xA5, "refused encode wrote byte %zu", i);
        goto done;
    }
    if (s != TQ_OK) goto done; /* e.g. a norm beyond float32: refused with a message */

    /* deterministic: row by row, one thread, two threads */
    for (size_t i = 0; i < n; i++) FUZZ_ASSERT(tq_encode(q, x + i * dim, 1, codes2 + i * cs) == TQ_OK, "row encode");
    FUZZ_ASSERT(memcmp(codes, codes2, n * cs) == 0, "row-by-row encode differs from the batch");
    FUZZ_ASSERT(tq_set_threads(2) == TQ_OK, "threads");
    FUZZ_ASSERT(tq_encode(q, x, n, codes2) == TQ_OK, "encode on 2 threads: %s", tq_last_error());
    FUZZ_ASSERT(tq_set_threads(1) == TQ_OK, "threads");
    FUZZ_ASSERT(memcmp(codes, codes2, n * cs) == 0, "encode on 2 threads differs");

    /* decode: finite */
    s = tq_decode(q, codes, n, y);
    FUZZ_ASSERT(s == TQ_OK, "decode of fresh codes: %s", tq_last_error());
    tq_config got;
    (void)tq_quantizer_get_config(q, &got);
    for (size_t i = 0; i < n * dim; i++)
        FUZZ_ASSERT(isfinite(y[i]), "decoded [%zu] is %g from finite input %g; variant %d bits %u norm %d rotation %d "
                    "scope %d mode %d dim %u outliers %u", i, y[i], x[i], (int)got.variant, got.bits, (int)got.norm,
                    (int)got.rotation, (int)got.uniform_scope, (int)got.uniform_mode, dim, got.outlier_count);

    /* scores against the decoded vectors */
    tq_query *pq = NULL;
    if (tq_query_create(q, &pq) == TQ_OK && tq_query_set(pq, qv) == TQ_OK) {
        float ip[MAXN], l2[MAXN];
        FUZZ_ASSERT(tq_score(q, pq, TQ_METRIC_IP, codes, n, ip) == TQ_OK, "score: %s", tq_last_error());
        FUZZ_ASSERT(tq_score(q, pq, TQ_METRIC_L2, codes, n, l2) == TQ_OK, "score: %s", tq_last_error());
        int linear = got.variant == TQ_VARIANT_UNIFORM || got.norm != TQ_NORM_UNBIASED;
        double qq = 0.0;
        for (size_t j = 0; j < dim; j++) qq += (double)qv[j] * qv[j];
        /* the comparison holds where the exact values fit float32 comfortably */
        for (size_t i = 0; i < n && linear && qq < 1e30; i++) {
            double dot = 0.0, yy = 0.0, qa = 0.0;
            for (size_t j = 0; j < dim; j++) {
                dot += (double)qv[j] * y[i * dim + j];
                yy += (double)y[i * dim + j] * y[i * dim + j];
                qa += fabs((double)qv[j]);
            }
            double xx = 0.0; /* ||x||^2: the L2 norm term where the record keeps the exact norm */
            for (size_t j = 0; j < dim; j++) xx += (double)x[i * dim + j] * x[i * dim + j];
            if (yy > 1e30 || xx > 1e30) continue;
            double tol = 1e-4 * sqrt(qq) * sqrt(yy) * sqrt((double)dim) + 1e-30;
            FUZZ_ASSERT(fabs(ip[i] - dot) <= tol, "IP score %.9g vs <q, decode> %.9g (tol %.3g); variant %d norm %d "
                        "scope %d mode %d rotation %d dim %u", ip[i], dot, tol, (int)got.variant, (int)got.norm,
                        (int)got.uniform_scope, (int)got.uniform_mode, (int)got.rotation, dim);
            /* the norm term is ||decode||^2 or the exact ||x||^2 */
            double l2a = qq - 2.0 * dot + yy, l2b = qq - 2.0 * dot + xx, slack = 2.0 * tol + 1e-5 * (qq + yy + xx);
            FUZZ_ASSERT(fabs(l2[i] - l2a) <= slack || fabs(l2[i] - l2b) <= slack,
                        "L2 score %.9g vs %.9g (decoded norm) or %.9g (exact norm); variant %d norm %d scope %d "
                        "mode %d rotation %d dim %u; qq %g yy %g xx %g dot %g",
                        l2[i], l2a, l2b, (int)got.variant, (int)got.norm, (int)got.uniform_scope,
                        (int)got.uniform_mode, (int)got.rotation, dim, qq, yy, xx, dot);
            (void)qa;
        }
    }
    tq_query_free(pq);

    /* encode -> decode -> encode on every kernel table: bytes identical to the ref table's at each stage */
    {
        static uint8_t c1[MAXN * 4096], c2[MAXN * 4096], r1[MAXN * 4096], r2[MAXN * 4096];
        static float d1[MAXN * MAXDIM], d2[MAXN * MAXDIM];
        const tq_kernel_table *tabs[4] = {tq_kernels_ref(), NULL, NULL, NULL};
        if (tq_kernels_avx2() && tq_cpu_has_avx2()) tabs[1] = tq_kernels_avx2();
        if (tq_kernels_avx512() && tq_cpu_has_avx512()) tabs[2] = tq_kernels_avx512();
        tabs[3] = tq_kernels_neon(); /* NULL except on AArch64 */
        tq_query *pq1 = NULL;
        float s_ref[MAXN] = {0}, s_t[MAXN];
        int have_q = tq_query_create(q, &pq1) == TQ_OK;
        for (int t = 0; t < 4; t++) {
            if (!tabs[t]) continue;
            tq_kernels_override(tabs[t]);
            uint8_t *cd = t ? c2 : c1, *r = t ? r2 : r1;
            float *d = t ? d2 : d1, *sc = t ? s_t : s_ref;
            FUZZ_ASSERT(tq_encode(q, x, n, cd) == TQ_OK, "%s encode: %s", tabs[t]->name, tq_last_error());
            FUZZ_ASSERT(tq_decode(q, cd, n, d) == TQ_OK, "%s decode: %s", tabs[t]->name, tq_last_error());
            tq_status sr = tq_encode(q, d, n, r); /* a decoded vector may be refused (say, a factor overflows) */
            FUZZ_CHECK_FAIL_MSG(sr);
            if (sr != TQ_OK) memset(r, 0, n * cs);
            if (have_q) {
                FUZZ_ASSERT(tq_query_set(pq1, qv) == TQ_OK, "query_set: %s", tq_last_error());
                FUZZ_ASSERT(tq_score(q, pq1, TQ_METRIC_IP, cd, n, sc) == TQ_OK, "score: %s", tq_last_error());
            }
            if (t == 0) continue;
            FUZZ_ASSERT(memcmp(c1, c2, n * cs) == 0, "%s encodes differently from ref", tabs[t]->name);
            for (size_t i = 0; i < n * dim; i++)
                FUZZ_ASSERT(memcmp(&d1[i], &d2[i], 4) == 0, "%s decode [%zu]: %a vs ref %a", tabs[t]->name, i, d2[i],
                            d1[i]);
            FUZZ_ASSERT(memcmp(r1, r2, n * cs) == 0, "%s re-encodes the decoded vectors differently from ref",
                        tabs[t]->name);
            for (size_t i = 0; i < n && have_q; i++) {
                double qa = 0.0, ya = 0.0;
                for (size_t j = 0; j < dim; j++) {
                    qa += (double)qv[j] * qv[j];
                    ya += (double)d1[i * dim + j] * d1[i * dim + j];
                }
                double tol = 1e-4 * sqrt(qa) * sqrt(ya) * sqrt((double)dim) + 1e-30;
                FUZZ_ASSERT(!(qa < 1e30 && ya < 1e30) || fabs((double)s_t[i] - s_ref[i]) <= tol,
                            "%s IP score %.9g vs ref %.9g", tabs[t]->name, s_t[i], s_ref[i]);
            }
        }
        tq_kernels_override(NULL);
        tq_query_free(pq1);
    }

    /* serialize -> deserialize -> the same bytes and the same codes */
    size_t sz = 0, w = 0;
    FUZZ_ASSERT(tq_quantizer_serialized_size(q, &sz) == TQ_OK, "size: %s", tq_last_error());
    uint8_t *buf = malloc(sz), *buf2 = malloc(sz);
    FUZZ_ASSERT(buf && buf2, "out of memory");
    FUZZ_ASSERT(tq_quantizer_serialize(q, buf, sz, &w) == TQ_OK && w == sz, "serialize: %s", tq_last_error());
    tq_quantizer *q2 = NULL;
    FUZZ_ASSERT(tq_quantizer_deserialize(buf, sz, &q2) == TQ_OK, "own bytes refused: %s", tq_last_error());
    FUZZ_ASSERT(tq_quantizer_serialize(q2, buf2, sz, &w) == TQ_OK && w == sz && memcmp(buf, buf2, sz) == 0,
                "serialize after deserialize differs");
    FUZZ_ASSERT(tq_encode(q2, x, n, codes2) == TQ_OK, "encode by the loaded quantizer: %s", tq_last_error());
    FUZZ_ASSERT(memcmp(codes, codes2, n * cs) == 0, "the loaded quantizer encodes differently");
    tq_quantizer_free(q2);
    free(buf);
    free(buf2);
done:
    tq_quantizer_free(q);
    return 0;
}
