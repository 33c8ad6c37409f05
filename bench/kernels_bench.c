/*
 * kernels_bench.c — time every kernel of every table this machine can run,
 * single thread, and print nanoseconds per coordinate (the median of 15
 * repeats, each long enough to be timed; dense_forward counts output
 * coordinates, each a dot product of length dim). Not a test: the numbers
 * depend on the machine and its load. Build target tq_kernels_bench.
 *
 *     tq_kernels_bench            all tables side by side
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pack.h"
#include "kernels/kernels.h"

enum { REPEATS = 15 };

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static volatile double sink;

typedef struct job {
    const tq_kernel_table *t;
    int kind; /* 0 fwht, 1 dense, 2 nearest, 3 ip_codes, 4 ip_signs */
    uint32_t n, param;
    float *x, *y, *M, *cent, *bounds;
    uint8_t *packed, *idx;
} job;

static void run_once(job *j) {
    switch (j->kind) {
    case 0: j->t->fwht(j->x, j->n); break;
    case 1: j->t->dense_forward(j->M, j->n, j->x, j->y); break;
    case 2: j->t->nearest(j->bounds, j->param, j->x, j->n, j->idx); break;
    case 3: sink += j->t->ip_codes(j->x, j->cent, j->packed, j->n, j->param, j->idx); break;
    default: sink += j->t->ip_signs(j->x, j->packed, j->n); break;
    }
}

/* Median ns per coordinate. */
static double time_job(job *j) {
    uint32_t iters = 1;
    for (;;) { /* calibrate to >= 2 ms per repeat */
        double t0 = now_ns();
        for (uint32_t i = 0; i < iters; i++) run_once(j);
        if (now_ns() - t0 >= 2e6 || iters >= (1u << 24)) break;
        iters *= 2;
    }
    double r[REPEATS];
    for (int k = 0; k < REPEATS; k++) {
        double t0 = now_ns();
        for (uint32_t i = 0; i < iters; i++) run_once(j);
        r[k] = (now_ns() - t0) / iters / j->n;
    }
    qsort(r, REPEATS, sizeof r[0], cmp_double);
    return r[REPEATS / 2];
}

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) * 0x1.0p-52 - 1.0);
}

static int cmp_float(const void *pa, const void *pb) {
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a > b) - (a < b);
}

int main(void) {
    const tq_kernel_table *tabs[2];
    int nt = 0;
    tabs[nt++] = tq_kernels_ref();
    if (tq_kernels_avx2() && tq_cpu_has_avx2()) tabs[nt++] = tq_kernels_avx2();

    const uint32_t maxn = 65536;
    uint64_t s = 42;
    float *x = malloc(maxn * sizeof(float)), *y = malloc(maxn * sizeof(float));
    float *M = malloc((size_t)784 * 784 * sizeof(float)), *cent = malloc(256 * sizeof(float));
    float *bounds = malloc(255 * sizeof(float));
    uint8_t *packed = malloc(maxn), *idx = malloc(maxn);
    for (uint32_t i = 0; i < maxn; i++) x[i] = frand(&s);
    for (size_t i = 0; i < (size_t)784 * 784; i++) M[i] = frand(&s);
    for (uint32_t i = 0; i < maxn; i++) packed[i] = (uint8_t)(frand(&s) * 1000.0f);

    printf("%-12s %-16s", "kernel", "case");
    for (int t = 0; t < nt; t++) printf(" %10s", tabs[t]->name);
    if (nt > 1) printf(" %8s", "speedup");
    printf("   (ns per coordinate, median of %d, one thread)\n", REPEATS);

    struct { int kind; uint32_t n, param; } cases[] = {
        {0, 16, 0},  {0, 256, 0},  {0, 512, 0},  {0, 1024, 0},   {0, 65536, 0}, {1, 784, 0},  {1, 100, 0},
        {2, 784, 2}, {2, 784, 4},  {2, 784, 8},  {2, 784, 16},  {2, 784, 32},  {2, 784, 256},
        {3, 784, 1}, {3, 784, 2},  {3, 784, 3},  {3, 784, 4},   {3, 784, 5},   {3, 784, 6},  {3, 784, 7},
        {3, 784, 8}, {3, 1536, 4}, {4, 784, 0},  {4, 1536, 0},
    };
    static const char *names[] = {"fwht", "dense_forward", "nearest", "ip_codes", "ip_signs"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char label[32];
        uint32_t n = cases[c].n, param = cases[c].param;
        if (cases[c].kind == 2) {
            for (uint32_t k = 0; k < 256; k++) cent[k] = frand(&s);
            qsort(cent, param, sizeof(float), cmp_float);
            for (uint32_t k = 0; k + 1 < param; k++) bounds[k] = 0.5f * (cent[k] + cent[k + 1]);
            snprintf(label, sizeof label, "d=%u levels=%u", n, param);
        } else if (cases[c].kind == 3) {
            for (uint32_t k = 0; k < 256; k++) cent[k] = frand(&s);
            snprintf(label, sizeof label, "d=%u bits=%u", n, param);
        } else {
            snprintf(label, sizeof label, "d=%u", n);
        }
        printf("%-12s %-16s", names[cases[c].kind], label);
        double tm[2] = {0, 0};
        for (int t = 0; t < nt; t++) {
            job j = {tabs[t], cases[c].kind, n, param, x, y, M, cent, bounds, packed, idx};
            if (cases[c].kind == 0) /* keep fwht inputs bounded: re-seed each table */
                for (uint32_t i = 0; i < n; i++) x[i] = frand(&s);
            tm[t] = time_job(&j);
            printf(" %10.3f", tm[t]);
        }
        if (nt > 1) printf(" %7.1fx", tm[0] / tm[1]);
        printf("\n");
        if (cases[c].kind == 0)
            for (uint32_t i = 0; i < maxn; i++) x[i] = frand(&s);
    }
    free(x);
    free(y);
    free(M);
    free(cent);
    free(bounds);
    free(packed);
    free(idx);
    return sink == 12345.678 ? 1 : 0;
}
