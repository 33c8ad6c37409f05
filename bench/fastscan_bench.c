/*
 * fastscan_bench.c — time the fast-scan module (src/kernels/fastscan.h),
 * single thread: ns per coordinate and ms per query of the scan over N x d
 * codes at 4 and 2 bits (default 100,000 x 1536), ref vs avx2 sums kernels
 * (plus the float step of tq_fs_scan), the query-table build time, and the
 * old record-at-a-time path (tq_score, metric IP) for comparison. Medians of
 * REPEATS queries, each a full pass. Not a test: numbers depend on the
 * machine and its load. Build target tq_fastscan_bench.
 *
 *     tq_fastscan_bench [N [d]]
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/fastscan.h"
#include "kernels/kernels.h"
#include "tq.h"

enum { REPEATS = 11 };

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rs = 0x1234567ull;
static uint64_t rnd(void) {
    uint64_t z = (rs += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float frand(void) { return (float)((double)(rnd() >> 11) * 0x1.0p-52 - 1.0); }

/* tq_fs_scan with a chosen kernel (same chunking and float step). */
static void scan_with(tq_fs_sums_fn f, const uint8_t *packed, size_t n, uint32_t P, const uint8_t *lut, float off,
                      float dl, float *out) {
    enum { CHUNK = 16 };
    uint32_t sums[CHUNK * 32];
    size_t nblocks = (n + 31) / 32;
    for (size_t b = 0; b < nblocks; b += CHUNK) {
        size_t nb = nblocks - b < CHUNK ? nblocks - b : CHUNK;
        f(packed + b * (size_t)P * 32, nb, P, lut, sums);
        size_t base = b * 32, m = nb * 32;
        if (m > n - base) m = n - base;
        for (size_t i = 0; i < m; i++) out[base + i] = off + dl * (float)sums[i];
    }
}

static volatile float sink;

/* One-thread read bandwidth over a buffer (GB/s), for context. */
static double read_bw(const uint8_t *buf, size_t bytes) {
    double best = 0.0;
    for (int r = 0; r < 5; r++) {
        double t0 = now_ns();
        uint64_t acc = 0;
        const uint64_t *p = (const uint64_t *)(const void *)buf;
        for (size_t i = 0; i < bytes / 8; i += 8) acc += p[i] ^ p[i + 1] ^ p[i + 2] ^ p[i + 3] ^ p[i + 4] ^ p[i + 5] ^ p[i + 6] ^ p[i + 7];
        double t = now_ns() - t0;
        sink += (float)acc;
        if (bytes / t > best) best = bytes / t;
    }
    return best;
}

int main(int argc, char **argv) {
    size_t N = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 100000;
    uint32_t d = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1536;
    if (tq_set_threads(1) != TQ_OK) return 1;
    printf("%s\n", tq_build_info());
    printf("fast scan over N = %zu x d = %u, one thread, median of %d queries\n", N, d, REPEATS);
    tq_fs_sums_fn kern[2] = {tq_fs_sums_ref, NULL};
    const char *kname[2] = {"ref", "avx2"};
    int nk = 1;
    if (tq_fs_sums_avx2() && tq_cpu_has_avx2()) kern[nk++] = tq_fs_sums_avx2();

    for (uint32_t bits = 4; bits >= 2; bits -= 2) {
        size_t sz = tq_fs_size(N, d, bits), lsz = tq_fs_lut_size(d, bits);
        uint32_t P = (uint32_t)(lsz / 32);
        uint8_t *idx = malloc(N * d), *packed = malloc(sz), *lut = malloc(lsz);
        float *out = malloc(N * sizeof(float)), *qrot = malloc(d * sizeof(float)), cent[16];
        if (!idx || !packed || !lut || !out || !qrot) return 1;
        for (size_t i = 0; i < N * d; i++) idx[i] = (uint8_t)(rnd() & ((1u << bits) - 1));
        if (tq_fs_pack(idx, N, d, bits, packed) != TQ_OK) return 1;
        free(idx);
        if (tq_codebook_get(d, bits, cent, NULL) != TQ_OK) return 1;
        printf("\nbits = %u: %zu B of codes (%.1f MB), %zu B table; read bandwidth here %.1f GB/s\n", bits, sz / N,
               sz / 1e6, lsz, read_bw(packed, sz & ~(size_t)63));
        /* the table */
        double tl[REPEATS], tq_[REPEATS];
        float off = 0, dl = 0;
        for (int r = 0; r < REPEATS; r++) {
            for (uint32_t j = 0; j < d; j++) qrot[j] = frand() * 0.05f;
            double t0 = now_ns();
            if (tq_fs_lut(qrot, d, bits, cent, lut, &off, &dl) != TQ_OK) return 1;
            tl[r] = now_ns() - t0;
        }
        qsort(tl, REPEATS, sizeof(double), cmp_double);
        printf("  table build (tq_fs_lut, from qrot): %.2f us per query\n", tl[REPEATS / 2] / 1e3);
        /* with the query rotation, through a real quantizer */
        tq_config cfg;
        tq_config_init(&cfg, d, bits);
        tq_quantizer *q = NULL;
        if (tq_quantizer_create(&cfg, &q) == TQ_OK) {
            for (int r = 0; r < REPEATS; r++) {
                for (uint32_t j = 0; j < d; j++) qrot[j] = frand();
                double t0 = now_ns();
                float o2, d2;
                uint8_t *l2 = malloc(lsz);
                if (tq_fs_query_lut(q, qrot, l2, &o2, &d2) != TQ_OK) return 1;
                free(l2);
                tq_[r] = now_ns() - t0;
            }
            qsort(tq_, REPEATS, sizeof(double), cmp_double);
            printf("  table build with rotation (tq_fs_query_lut): %.2f us per query\n", tq_[REPEATS / 2] / 1e3);
        }
        double ms[2] = {0, 0};
        for (int k = 0; k < nk; k++) {
            double t[REPEATS];
            scan_with(kern[k], packed, N, P, lut, off, dl, out); /* warm-up */
            for (int r = 0; r < REPEATS; r++) {
                double t0 = now_ns();
                scan_with(kern[k], packed, N, P, lut, off, dl, out);
                t[r] = now_ns() - t0;
                sink += out[r];
            }
            qsort(t, REPEATS, sizeof(double), cmp_double);
            ms[k] = t[REPEATS / 2] / 1e6;
            printf("  scan %-4s: %8.3f ms/query  %.4f ns/coordinate  %7.1f Mvectors/s  %5.1f GB/s of codes\n",
                   kname[k], ms[k], t[REPEATS / 2] / ((double)N * d), N / (ms[k] * 1e3), sz / (ms[k] * 1e6));
        }
        if (nk > 1) printf("  avx2 speedup over ref: %.1fx\n", ms[0] / ms[1]);
        /* the record-at-a-time path this replaces: tq_score over real records */
        if (q) {
            size_t cs = tq_quantizer_code_size(q), nrec = N < 20000 ? N : 20000;
            float *x = malloc(nrec * d * sizeof(float));
            uint8_t *codes = malloc(nrec * cs);
            tq_query *pq = NULL;
            if (x && codes && tq_query_create(q, &pq) == TQ_OK) {
                for (size_t i = 0; i < nrec * d; i++) x[i] = frand();
                if (tq_encode(q, x, nrec, codes) != TQ_OK || tq_query_set(pq, x) != TQ_OK) return 1;
                double t[5];
                for (int r = 0; r < 5; r++) {
                    double t0 = now_ns();
                    if (tq_score(q, pq, TQ_METRIC_IP, codes, nrec, out) != TQ_OK) return 1;
                    t[r] = now_ns() - t0;
                }
                qsort(t, 5, sizeof(double), cmp_double);
                printf("  tq_score (record at a time, %s, %zu records): %.4f ns/coordinate -> %.2f ms/query at N = %zu\n",
                       tq_kernel_name(), nrec, t[2] / ((double)nrec * d), t[2] / nrec * N / 1e6, N);
            }
            tq_query_free(pq);
            free(x);
            free(codes);
            tq_quantizer_free(q);
        }
        free(packed);
        free(lut);
        free(out);
        free(qrot);
    }
    return 0;
}
