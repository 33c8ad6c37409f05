/*
 * test_fastscan.c — the fast-scan module (src/kernels/fastscan.h) against its
 * specification:
 *   - layout: tq_fs_pack matches an independent builder written from the
 *     header's byte formula (zero padding of the last block and of an odd
 *     group count included) and tq_fs_unpack inverts it, for n not a multiple
 *     of 32, d odd and even, bits 2 and 4;
 *   - sums: the AVX2, AVX-512 and NEON kernels (those this machine runs)
 *     give exactly the ref's integer sums, around every flush boundary;
 *     all-255 tables with all-15 nibbles at d up to 65536 give 255 * 2P
 *     exactly (no overflow);
 *   - tables: approximate scores vs exact sum_j qrot_j c[idx_j] (the ref
 *     ip_codes kernel on the records' own packed indices) within the
 *     documented bound G * delta / 2 (+ float rounding), d in {7, 128, 784,
 *     1536}; and scale * approx vs tq_score (metric IP) likewise;
 *   - ranking: on random unit vectors the approximate top-1 is among the
 *     exact (tq_score) top-5 in >= 95% of queries;
 *   - dispatch: each SIMD kernel only when tq_kernels() is its table (this
 *     program runs again under TQ_FORCE_ISA=ref);
 *   - rejections: bits other than 2/4, PROD, outlier splits, huge n.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/pack.h"
#include "core/rotation.h"
#include "kernels/fastscan.h"
#include "kernels/kernels.h"
#include "quant/quantizer.h"
#include "tq.h"

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rnd_unit(void) { return (double)(rnd() >> 11) * 0x1.0p-52 - 1.0; }

static double rnd_gauss(void) {
    double u = ((double)(rnd() >> 11) + 0.5) * 0x1.0p-53, v = (double)(rnd() >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u)) * cos(2.0 * 3.14159265358979323846 * v);
}

static void rnd_unit_vector(float *x, uint32_t d) {
    double ss = 0.0;
    for (uint32_t j = 0; j < d; j++) {
        x[j] = (float)rnd_gauss();
        ss += (double)x[j] * x[j];
    }
    float inv = (float)(1.0 / sqrt(ss));
    for (uint32_t j = 0; j < d; j++) x[j] *= inv;
}

/* The layout written independently from the byte formula of fastscan.h. */
static void expected_layout(const uint8_t *idx, size_t n, uint32_t d, uint32_t bits, uint8_t *out, size_t size) {
    uint32_t G = bits == 4 ? d : (d + 1) / 2, P = (G + 1) / 2;
    memset(out, 0, size);
    for (size_t i = 0; i < n; i++) {
        size_t b = i / 32;
        uint32_t v = (uint32_t)(i % 32);
        for (uint32_t g = 0; g < G; g++) {
            uint32_t nib;
            if (bits == 4) {
                nib = idx[i * d + g];
            } else {
                nib = idx[i * d + 2 * g];
                if (2 * g + 1 < d) nib |= (uint32_t)idx[i * d + 2 * g + 1] << 2;
            }
            size_t byte = b * P * 32 + (size_t)(g / 2) * 32 + (g % 2) * 16 + (v % 16);
            out[byte] |= (uint8_t)(nib << (v < 16 ? 0 : 4));
        }
    }
}

static void test_layout(void) {
    static const size_t ns[] = {1, 5, 31, 32, 33, 64, 100};
    static const uint32_t ds[] = {1, 2, 3, 4, 7, 8, 33, 128};
    for (uint32_t bits = 2; bits <= 4; bits += 2) {
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
            for (size_t c = 0; c < sizeof ds / sizeof ds[0]; c++) {
                size_t n = ns[a];
                uint32_t d = ds[c];
                size_t sz = tq_fs_size(n, d, bits);
                uint32_t G = bits == 4 ? d : (d + 1) / 2;
                CHECK(sz == ((n + 31) / 32) * ((G + 1) / 2) * 32, "size n=%zu d=%u bits=%u: %zu", n, d, bits, sz);
                CHECK(tq_fs_lut_size(d, bits) == ((G + 1) / 2) * 32, "lut size");
                uint8_t *idx = malloc(n * d), *back = malloc(n * d), *got = malloc(sz), *want = malloc(sz);
                for (size_t i = 0; i < n * d; i++) idx[i] = (uint8_t)(rnd() & ((1u << bits) - 1));
                memset(got, 0xA5, sz); /* padding must be overwritten with zeros */
                CHECK_OK(tq_fs_pack(idx, n, d, bits, got));
                expected_layout(idx, n, d, bits, want, sz);
                CHECK(memcmp(got, want, sz) == 0, "layout n=%zu d=%u bits=%u differs from the header formula", n, d,
                      bits);
                memset(back, 0xEE, n * d);
                CHECK_OK(tq_fs_unpack(got, n, d, bits, back));
                CHECK(memcmp(idx, back, n * d) == 0, "round trip n=%zu d=%u bits=%u", n, d, bits);
                free(idx);
                free(back);
                free(got);
                free(want);
            }
        }
    }
    /* rejections */
    uint8_t buf[64] = {0};
    CHECK_STATUS(tq_fs_pack(buf, 1, 8, 3, buf), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_fs_pack(buf, 1, 0, 4, buf), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_fs_pack(NULL, 1, 8, 4, buf), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_fs_pack(buf, SIZE_MAX - 5, 1024, 4, buf), TQ_ERR_INVALID_ARG);
    CHECK(tq_fs_size(SIZE_MAX - 5, 1024, 4) == 0, "overflowing size must be 0");
    CHECK(tq_fs_size(10, TQ_MAX_DIM + 1, 4) == 0, "d above TQ_MAX_DIM");
    CHECK(tq_fs_size(10, 16, 1) == 0 && tq_fs_size(10, 16, 8) == 0, "bits other than 2/4");
    CHECK(tq_fs_size(0, 16, 4) == 0, "n = 0 takes no bytes");
    CHECK_OK(tq_fs_pack(NULL, 0, 16, 4, NULL)); /* nothing to do */
}

/* Sums of every kernel this machine can run against the ref, bit for bit. */
static void test_sums(void) {
    /* the SIMD kernels compiled in and runnable here */
    struct {
        const char *name;
        tq_fs_sums_fn fn;
    } simd[3];
    int nsimd = 0;
    if (tq_fs_sums_avx2() && tq_cpu_has_avx2()) simd[nsimd].name = "avx2", simd[nsimd++].fn = tq_fs_sums_avx2();
    else printf("note: no AVX2 here, fast-scan AVX2 kernel not compared\n");
    if (tq_fs_sums_avx512() && tq_cpu_has_avx512())
        simd[nsimd].name = "avx512", simd[nsimd++].fn = tq_fs_sums_avx512();
    else printf("note: no AVX-512 here, fast-scan AVX-512 kernel not compared\n");
    if (tq_fs_sums_neon()) simd[nsimd].name = "neon", simd[nsimd++].fn = tq_fs_sums_neon(); /* any AArch64 */
    /* pair counts around the flushes: every 128 pairs (NEON), 256 (AVX2), 512 (AVX-512, two pairs a step),
     * odd counts for the AVX-512 kernel's masked last pair */
    static const uint32_t pairs[] = {1,   2,   3,   7,   31,  127,  128,  129,  255,  256,  257,  258,  383,
                                     384, 511, 512, 513, 768, 1000, 1023, 1024, 1025, 1026, 1536, 1537, 2049};
    for (size_t a = 0; a < sizeof pairs / sizeof pairs[0]; a++) {
        uint32_t P = pairs[a];
        for (int kind = 0; kind < 3; kind++) {
            size_t nblocks = 3;
            uint8_t *packed = malloc(nblocks * P * 32), *lut = malloc((size_t)P * 32);
            uint32_t *s_ref = malloc(nblocks * 32 * sizeof(uint32_t)), *s_f = malloc(nblocks * 32 * sizeof(uint32_t));
            for (size_t i = 0; i < nblocks * P * 32; i++) packed[i] = kind == 1 ? 0xFF : (uint8_t)rnd();
            for (size_t i = 0; i < (size_t)P * 32; i++)
                lut[i] = kind == 1 ? 255 : kind == 2 ? (uint8_t)(rnd() % 2 ? 255 : 254) : (uint8_t)rnd();
            tq_fs_sums_ref(packed, nblocks, P, lut, s_ref);
            /* the ref against a direct per-vector sum */
            int ok = 1;
            for (size_t b = 0; b < nblocks && ok; b++)
                for (uint32_t v = 0; v < 32; v++) {
                    uint64_t e = 0;
                    for (uint32_t p = 0; p < P; p++) {
                        const uint8_t *pr = packed + (b * P + p) * 32;
                        uint32_t sh = v < 16 ? 0 : 4;
                        e += lut[p * 32 + ((pr[v % 16] >> sh) & 15)] + lut[p * 32 + 16 + ((pr[16 + v % 16] >> sh) & 15)];
                    }
                    if (e != s_ref[b * 32 + v]) ok = 0;
                }
            CHECK(ok, "ref sums P=%u kind=%d differ from a direct sum", P, kind);
            if (kind == 1) CHECK(s_ref[0] == 255u * 2 * P, "all-255 sum P=%u: %u", P, s_ref[0]);
            for (int k = 0; k < nsimd; k++) {
                memset(s_f, 0xEE, nblocks * 32 * sizeof(uint32_t));
                simd[k].fn(packed, nblocks, P, lut, s_f);
                long bad = -1;
                for (size_t i = 0; i < nblocks * 32; i++)
                    if (s_f[i] != s_ref[i]) { bad = (long)i; break; }
                CHECK(bad < 0, "%s sums P=%u kind=%d: sum[%ld] = %u, ref %u", simd[k].name, P, kind, bad,
                      bad >= 0 ? s_f[bad] : 0, bad >= 0 ? s_ref[bad] : 0);
            }
            free(packed);
            free(lut);
            free(s_ref);
            free(s_f);
        }
    }
}

/* Large d with maximal values: nothing overflows; ref and avx2 give 255 * 2P. */
static void test_overflow(void) {
    static const uint32_t ds[] = {4096, 16384, 65536};
    tq_fs_sums_fn active = tq_fs_sums_active();
    for (size_t a = 0; a < sizeof ds / sizeof ds[0]; a++) {
        for (uint32_t bits = 2; bits <= 4; bits += 2) {
            uint32_t d = ds[a], G = tq_fs_groups(d, bits), P = (G + 1) / 2;
            size_t n = 40, sz = tq_fs_size(n, d, bits), lsz = tq_fs_lut_size(d, bits);
            uint8_t *idx = malloc(n * d), *packed = malloc(sz), *lut = malloc(lsz);
            memset(idx, (1 << bits) - 1, n * d);
            CHECK_OK(tq_fs_pack(idx, n, d, bits, packed));
            memset(lut, 255, lsz);
            float *out = malloc(n * sizeof(float));
            CHECK_OK(tq_fs_scan(packed, n, d, bits, lut, 0.0f, 1.0f, out));
            int ok = 1;
            for (size_t i = 0; i < n; i++) ok &= out[i] == (float)(255.0 * 2 * P);
            CHECK(ok, "all-255 d=%u bits=%u: %.1f, want %.1f", d, bits, out[0], 255.0 * 2 * P);
            uint32_t s_ref[64], s_act[64];
            tq_fs_sums_ref(packed, 2, P, lut, s_ref);
            active(packed, 2, P, lut, s_act);
            CHECK(memcmp(s_ref, s_act, sizeof s_ref) == 0 && s_ref[0] == 255u * 2 * P && s_ref[63] == 255u * 2 * P,
                  "all-255 sums d=%u bits=%u: ref %u active %u", d, bits, s_ref[0], s_act[0]);
            /* random tables and codes at this size: active == ref */
            for (size_t i = 0; i < lsz; i++) lut[i] = (uint8_t)rnd();
            for (size_t i = 0; i < 2 * (size_t)P * 32; i++) packed[i] = (uint8_t)rnd();
            tq_fs_sums_ref(packed, 2, P, lut, s_ref);
            active(packed, 2, P, lut, s_act);
            CHECK(memcmp(s_ref, s_act, sizeof s_ref) == 0, "random sums d=%u bits=%u", d, bits);
            free(idx);
            free(packed);
            free(lut);
            free(out);
        }
    }
}

/* Several queries at once: the AVX-512 kernel (when it runs here) and tq_fs_scan_multi against the ref and
 * against tq_fs_scan, bit for bit, for 1..TQ_FS_MAX_QUERIES queries (four, then two, then one at a time
 * inside), odd and even pair counts, and both sides of the 512-pair flush. */
static void test_multi(void) {
    tq_fs_sums4_fn f4 = tq_fs_sums4_avx512();
    int have = f4 && tq_cpu_has_avx512();
    if (!have) printf("note: no AVX-512 here, several-query kernel not compared\n");
    static const uint32_t pairs[] = {1, 2, 3, 17, 511, 512, 513, 1024, 1025, 1537};
    enum { NB = 3, MQ = TQ_FS_MAX_QUERIES };
    for (size_t a = 0; a < sizeof pairs / sizeof pairs[0]; a++) {
        uint32_t P = pairs[a];
        for (int kind = 0; kind < 2; kind++) {
            uint8_t *packed = malloc((size_t)NB * P * 32), *lut = malloc((size_t)MQ * P * 32);
            uint32_t *ref = malloc(sizeof(uint32_t) * MQ * NB * 32), *got = malloc(sizeof(uint32_t) * MQ * NB * 32);
            for (size_t i = 0; i < (size_t)NB * P * 32; i++) packed[i] = kind ? 0xFF : (uint8_t)rnd();
            for (size_t i = 0; i < (size_t)MQ * P * 32; i++) lut[i] = kind ? 255 : (uint8_t)rnd();
            const uint8_t *luts[MQ];
            uint32_t *outs[MQ];
            for (int q = 0; q < MQ; q++) {
                luts[q] = lut + (size_t)q * P * 32;
                outs[q] = got + (size_t)q * NB * 32;
                tq_fs_sums_ref(packed, NB, P, luts[q], ref + (size_t)q * NB * 32);
            }
            for (uint32_t nq = 1; nq <= MQ && have; nq++) {
                memset(got, 0xEE, sizeof(uint32_t) * MQ * NB * 32);
                f4(packed, NB, P, luts, nq, outs);
                CHECK(memcmp(got, ref, sizeof(uint32_t) * nq * NB * 32) == 0, "avx512 %u-query sums P=%u kind=%d", nq,
                      P, kind);
            }
            free(packed), free(lut), free(ref), free(got);
        }
    }
    /* the scan wrapper: whatever kernel runs, nq queries at once == nq single scans */
    static const uint32_t ds[] = {64, 784, 1536};
    for (size_t a = 0; a < sizeof ds / sizeof ds[0]; a++) {
        for (uint32_t bits = 2; bits <= 4; bits += 2) {
            uint32_t d = ds[a];
            size_t n = 100, lsz = tq_fs_lut_size(d, bits), sz = tq_fs_size(n, d, bits);
            uint8_t *idx = malloc(n * d), *packed = malloc(sz), *lut = malloc((size_t)MQ * lsz);
            float *one = malloc(sizeof(float) * n), *many = malloc(sizeof(float) * MQ * n);
            for (size_t i = 0; i < n * d; i++) idx[i] = (uint8_t)(rnd() % (1u << bits));
            CHECK_OK(tq_fs_pack(idx, n, d, bits, packed));
            for (size_t i = 0; i < (size_t)MQ * lsz; i++) lut[i] = (uint8_t)rnd();
            const uint8_t *luts[MQ];
            float *outs[MQ], off[MQ], del[MQ];
            for (int q = 0; q < MQ; q++) {
                luts[q] = lut + (size_t)q * lsz;
                outs[q] = many + (size_t)q * n;
                off[q] = -0.25f * (float)q;
                del[q] = 0.001f * (float)(q + 1);
            }
            for (uint32_t nq = 1; nq <= MQ; nq++) {
                CHECK_OK(tq_fs_scan_multi(packed, n, d, bits, nq, luts, off, del, outs));
                int same = 1;
                for (uint32_t q = 0; q < nq; q++) {
                    CHECK_OK(tq_fs_scan(packed, n, d, bits, luts[q], off[q], del[q], one));
                    same &= memcmp(one, outs[q], sizeof(float) * n) == 0;
                }
                CHECK(same, "tq_fs_scan_multi d=%u bits=%u nq=%u differs from tq_fs_scan", d, bits, nq);
            }
            CHECK(tq_fs_scan_multi(packed, n, d, bits, MQ + 1, luts, off, del, outs) == TQ_ERR_INVALID_ARG,
                  "more than TQ_FS_MAX_QUERIES queries must be refused");
            free(idx), free(packed), free(lut), free(one), free(many);
        }
    }
}

static void test_dispatch(void) {
    tq_fs_sums_fn active = tq_fs_sums_active();
    /* each table's own scan */
    const char *kn = tq_kernel_name();
    tq_fs_sums_fn want = strcmp(kn, "avx512") == 0 ? tq_fs_sums_avx512()
                         : strcmp(kn, "avx2") == 0 ? tq_fs_sums_avx2()
                         : strcmp(kn, "neon") == 0 ? tq_fs_sums_neon()
                                                   : tq_fs_sums_ref;
    CHECK(active == want, "fast scan must follow tq_kernels() (%s)", kn);
    const char *force = getenv("TQ_FORCE_ISA");
    if (force && strcmp(force, "ref") == 0) CHECK(active == tq_fs_sums_ref, "TQ_FORCE_ISA=ref must run the ref");
}

/* Approximate scores vs exact, within the documented bound; and vs tq_score. */
static void test_accuracy(void) {
    static const uint32_t ds[] = {7, 128, 784, 1536};
    for (uint32_t bits = 2; bits <= 4; bits += 2) {
        for (size_t a = 0; a < sizeof ds / sizeof ds[0]; a++) {
            uint32_t d = ds[a];
            size_t n = 77;
            tq_config cfg;
            tq_config_init(&cfg, d, bits);
            cfg.seed = 11 + d;
            tq_quantizer *q = NULL;
            CHECK_OK(tq_quantizer_create(&cfg, &q));
            if (!q) continue;
            size_t cs = tq_quantizer_code_size(q), sz = tq_fs_size(n, d, bits), lsz = tq_fs_lut_size(d, bits);
            float *x = malloc(n * d * sizeof(float)), *query = malloc(d * sizeof(float));
            float *qrot = malloc(((size_t)3 * d + 16) * sizeof(float));
            float *scales = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
            float *exact_sc = malloc(n * sizeof(float));
            uint8_t *codes = malloc(n * cs), *packed = malloc(sz), *lut = malloc(lsz), *idx = malloc(d);
            for (size_t i = 0; i < n; i++) rnd_unit_vector(x + i * d, d);
            CHECK_OK(tq_encode(q, x, n, codes));
            CHECK_OK(tq_fs_pack_records(q, codes, n, packed, scales));
            for (int trial = 0; trial < 4; trial++) {
                rnd_unit_vector(query, d);
                if (trial == 3) /* a skewed query: one dominant channel */
                    for (uint32_t j = 0; j < d; j++) query[j] = (j == d / 2 ? 10.0f : 0.01f) * (float)rnd_unit();
                float offset = 0, delta = 0;
                CHECK_OK(tq_fs_query_lut(q, query, lut, &offset, &delta));
                CHECK_OK(tq_fs_scan(packed, n, d, bits, lut, offset, delta, out));
                tq_query *pq = NULL;
                CHECK_OK(tq_query_create(q, &pq));
                CHECK_OK(tq_query_set(pq, query));
                CHECK_OK(tq_score(q, pq, TQ_METRIC_IP, codes, n, exact_sc));
                tq_query_free(pq);
                /* exact sum with the quantizer's own rotation */
                const tq_part *pt = &q->part[0];
                tq_rotation_forward(&pt->rot, query, qrot, 1, qrot + d);
                double qabs = 0.0, cmax = 0.0;
                for (uint32_t j = 0; j < d; j++) qabs += fabs(qrot[j]);
                for (uint32_t k = 0; k < (1u << bits); k++) cmax = fmax(cmax, fabs(pt->cb.centroids[k]));
                uint32_t G = tq_fs_groups(d, bits);
                double bound = G * (double)delta / 2.0;
                double worst = 0.0, worst_ratio = 0.0, worst_sc = 0.0;
                int ok = 1, ok_sc = 1;
                for (size_t i = 0; i < n; i++) {
                    /* the exact score: the ref kernel (double sum) on the record's packed indices */
                    double e = tq_kernels_ref()->ip_codes(qrot, pt->cb.centroids, codes + i * cs + pt->off_idx, d,
                                                          bits, idx);
                    double S = ((double)out[i] - offset) / (delta > 0 ? delta : 1.0);
                    double tol = bound + 1e-6 * (fabs(offset) + fabs((double)delta * S)) + 1e-30;
                    double err = fabs((double)out[i] - e);
                    if (err > tol) ok = 0;
                    if (err > worst) worst = err;
                    if (err / tol > worst_ratio) worst_ratio = err / tol;
                    /* vs the library's own score: ip_codes' tolerance (kernels.h) on top */
                    double sc = (double)scales[i] * out[i];
                    double tol_sc = fabs(scales[i]) * (tol + 1e-5 * qabs * cmax) + 1e-6 * fabs(exact_sc[i]);
                    if (fabs(sc - exact_sc[i]) > tol_sc) ok_sc = 0;
                    if (fabs(sc - exact_sc[i]) > worst_sc) worst_sc = fabs(sc - exact_sc[i]);
                }
                CHECK(ok, "d=%u bits=%u trial %d: |approx - exact| up to %.3g > bound %.3g", d, bits, trial, worst,
                      bound);
                CHECK(ok_sc, "d=%u bits=%u trial %d: scale * approx vs tq_score off by %.3g", d, bits, trial,
                      worst_sc);
                /* the bound is not vacuous: the errors use a real share of it, and it is small */
                CHECK(worst_ratio > 0.01 || delta == 0.0f, "d=%u bits=%u: worst error %.3g of the bound", d, bits,
                      worst_ratio);
                if (trial == 0 && bits == 4 && d >= 128)
                    CHECK(bound < 0.05 * sqrt((double)d / 128.0), "d=%u: bound %.3g unexpectedly loose", d, bound);
            }
            free(x);
            free(query);
            free(qrot);
            free(scales);
            free(out);
            free(exact_sc);
            free(codes);
            free(packed);
            free(lut);
            free(idx);
            tq_quantizer_free(q);
        }
    }
}

/* Top-1 by approximate score among the exact (tq_score) top-5. */
static void test_ranking(void) {
    for (uint32_t bits = 2; bits <= 4; bits += 2) {
        uint32_t d = 128;
        size_t n = 2000;
        int trials = 200, hits = 0, hits_true = 0;
        tq_config cfg;
        tq_config_init(&cfg, d, bits);
        tq_quantizer *q = NULL;
        CHECK_OK(tq_quantizer_create(&cfg, &q));
        if (!q) continue;
        size_t cs = tq_quantizer_code_size(q);
        float *x = malloc(n * d * sizeof(float)), *query = malloc(d * sizeof(float));
        float *scales = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float)), *ex = malloc(n * sizeof(float));
        uint8_t *codes = malloc(n * cs), *packed = malloc(tq_fs_size(n, d, bits)), *lut = malloc(tq_fs_lut_size(d, bits));
        for (size_t i = 0; i < n; i++) rnd_unit_vector(x + i * d, d);
        CHECK_OK(tq_encode(q, x, n, codes));
        CHECK_OK(tq_fs_pack_records(q, codes, n, packed, scales));
        tq_query *pq = NULL;
        CHECK_OK(tq_query_create(q, &pq));
        for (int t = 0; t < trials && pq; t++) {
            rnd_unit_vector(query, d);
            float off, dl;
            CHECK_OK(tq_fs_query_lut(q, query, lut, &off, &dl));
            CHECK_OK(tq_fs_scan(packed, n, d, bits, lut, off, dl, out));
            CHECK_OK(tq_query_set(pq, query));
            CHECK_OK(tq_score(q, pq, TQ_METRIC_IP, codes, n, ex));
            size_t best = 0;
            for (size_t i = 1; i < n; i++)
                if (scales[i] * out[i] > scales[best] * out[best]) best = i;
            /* rank of `best` under the exact scores: how many score strictly higher */
            size_t above = 0, above_true = 0;
            double tb = 0.0;
            for (uint32_t j = 0; j < d; j++) tb += (double)query[j] * x[best * d + j];
            for (size_t i = 0; i < n; i++) {
                if (ex[i] > ex[best]) above++;
                double ti = 0.0;
                for (uint32_t j = 0; j < d; j++) ti += (double)query[j] * x[i * d + j];
                if (ti > tb) above_true++;
            }
            hits += above < 5;
            hits_true += above_true < 5;
        }
        printf("ranking d=%u bits=%u: approx top-1 in exact top-5 %d/%d; in true-float top-5 %d/%d\n", d, bits, hits,
               trials, hits_true, trials);
        CHECK(hits >= trials * 95 / 100, "bits=%u: approx top-1 in exact top-5 only %d/%d", bits, hits, trials);
        tq_query_free(pq);
        free(x);
        free(query);
        free(scales);
        free(out);
        free(ex);
        free(codes);
        free(packed);
        free(lut);
        tq_quantizer_free(q);
    }
}

static void test_rejections(void) {
    tq_config cfg;
    tq_quantizer *q = NULL;
    uint8_t buf[4096];
    float f[64] = {0}, off, dl;
    f[0] = 1.0f;
    /* PROD */
    tq_config_init(&cfg, 32, 3);
    cfg.variant = TQ_VARIANT_PROD;
    CHECK_OK(tq_quantizer_create(&cfg, &q));
    CHECK_STATUS(tq_fs_pack_records(q, buf, 1, buf, NULL), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_fs_query_lut(q, f, buf, &off, &dl), TQ_ERR_INVALID_ARG);
    tq_quantizer_free(q);
    /* MSE at 3 bits */
    tq_config_init(&cfg, 32, 3);
    CHECK_OK(tq_quantizer_create(&cfg, &q));
    CHECK_STATUS(tq_fs_pack_records(q, buf, 1, buf, NULL), TQ_ERR_INVALID_ARG);
    tq_quantizer_free(q);
    /* outlier split */
    tq_config_init(&cfg, 32, 2);
    cfg.outlier_count = 8;
    cfg.outlier_bits = 4;
    CHECK_OK(tq_quantizer_create(&cfg, &q));
    CHECK_STATUS(tq_fs_pack_records(q, buf, 1, buf, NULL), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_fs_query_lut(q, f, buf, &off, &dl), TQ_ERR_INVALID_ARG);
    tq_quantizer_free(q);
    CHECK_STATUS(tq_fs_pack_records(NULL, buf, 1, buf, NULL), TQ_ERR_INVALID_ARG);
    /* a zero query: delta 0, every score the offset (0) */
    float zero[16] = {0}, cent[16];
    for (int k = 0; k < 16; k++) cent[k] = (float)k - 7.5f;
    CHECK_OK(tq_fs_lut(zero, 16, 4, cent, buf, &off, &dl));
    CHECK(dl == 0.0f && off == 0.0f, "zero query: offset %g delta %g", off, dl);
    zero[3] = NAN;
    CHECK_STATUS(tq_fs_lut(zero, 16, 4, cent, buf, &off, &dl), TQ_ERR_NONFINITE);
    CHECK_STATUS(tq_fs_lut(zero, 16, 3, cent, buf, &off, &dl), TQ_ERR_INVALID_ARG);
}

int main(void) {
    test_layout();
    test_sums();
    test_overflow();
    test_multi();
    test_dispatch();
    test_accuracy();
    test_ranking();
    test_rejections();
    return CHECK_DONE();
}
