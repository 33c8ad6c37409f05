/*
 * test_kernels.c — every kernel table this machine can run against the ref
 * table (the specification, kernels_ref.c), as kernels.h demands:
 *   - fwht, dense_forward, nearest bit-identical (NaN outputs only need to be
 *     NaN on both sides: C compilers do not keep NaN payloads), on random and
 *     adversarial data (huge, tiny, subnormal, signed zeros, infinities,
 *     cancellation);
 *   - nearest on every bound, its neighbours one ulp away, +-0, +-huge, inf
 *     and NaN, for every level count 2..256;
 *   - ip_codes and ip_signs within |fast - ref| <= 1e-5 * sum|q_j| * max|c|
 *     for every bit width and many lengths (buffers are allocated to their
 *     exact sizes so the sanitizer build catches any read past them);
 *   - TQ_FORCE_ISA really selects the table it names (tq_kernel_name()).
 * That whole codes are bit-identical under each table is checked by running
 * the golden tests (test_quantizer, test_serialize, test_rotation) once per
 * table: CMake registers them again with TQ_FORCE_ISA=ref (and =avx2 on
 * x86-64). On AArch64 the NEON table is the default one and is tested here
 * like the x86 tables.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/pack.h"
#include "kernels/kernels.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static float rnd_unit(void) { return (float)((double)(rnd() >> 11) * 0x1.0p-52 - 1.0); }

/* A value to break a summation order: huge, tiny, subnormal, zeros,
 * infinities, exact integers that cancel. */
static float rnd_adversarial(void) {
    switch (rnd() % 12) {
    case 0: return 0.0f;
    case 1: return -0.0f;
    case 2: return (rnd() & 1) ? 3.0e38f : -3.0e38f;
    case 3: return (float)(rnd() % 2001) - 1000.0f;
    case 4: return rnd_unit() * 1e-40f; /* subnormal */
    case 5: return rnd_unit() * 1e30f;
    case 6: return rnd_unit() * 1e-30f;
    case 7: return (rnd() % 64 == 0) ? INFINITY : 1.0f;
    case 8: return 16777216.0f;
    case 9: return 1.0f + (float)(rnd() % 4) * 0x1.0p-23f;
    default: return rnd_unit();
    }
}

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static int same_float(float a, float b) { return f2u(a) == f2u(b) || (isnan(a) && isnan(b)); }

/* Index of the first differing float, or -1. */
static long first_diff(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!same_float(a[i], b[i])) return (long)i;
    return -1;
}

static const tq_kernel_table *tables[5];
static int ntables;

static void collect_tables(void) {
    tables[ntables++] = tq_kernels_ref();
    if (tq_kernels_avx2() && tq_cpu_has_avx2()) tables[ntables++] = tq_kernels_avx2();
    if (tq_kernels_avx512() && tq_cpu_has_avx512()) tables[ntables++] = tq_kernels_avx512();
    if (tq_kernels_neon()) tables[ntables++] = tq_kernels_neon(); /* every AArch64 CPU runs it */
}

static void test_fwht(const tq_kernel_table *t) {
    const tq_kernel_table *ref = tq_kernels_ref();
    for (uint32_t len = 1; len <= 65536; len *= 2) {
        float *x = malloc(len * sizeof(float)), *a = malloc(len * sizeof(float)), *b = malloc(len * sizeof(float));
        for (int kind = 0; kind < 3; kind++) {
            for (uint32_t i = 0; i < len; i++)
                x[i] = kind == 0 ? rnd_unit() : kind == 1 ? rnd_adversarial() : (float)(rnd() % 7) - 3.0f;
            memcpy(a, x, len * sizeof(float));
            memcpy(b, x, len * sizeof(float));
            ref->fwht(a, len);
            t->fwht(b, len);
            long k = first_diff(a, b, len);
            CHECK(k < 0, "%s fwht len=%u kind=%d: [%ld] %a vs ref %a", t->name, len, kind, k, k < 0 ? 0.0 : b[k],
                  k < 0 ? 0.0 : a[k]);
        }
        free(x);
        free(a);
        free(b);
    }
}

/* kind 0 random, 1 adversarial, 2 wide exponents, 3 +-2^{-26,0,26} (4: the same,
 * three quarters zero): products
 * +-2^{-52..52} cancel exactly and leave small terms whose survival depends
 * on which partial sum they joined and in which order the sums combine. */
static float rnd_dense(int kind) {
    if (kind == 0) return rnd_unit();
    if (kind == 1) return rnd_adversarial();
    if (kind == 2) return rnd_unit() * (float)(1u << (rnd() % 30));
    if (kind == 4 && rnd() % 4 != 0) return 0.0f; /* sparse: few terms, so a lost term shows */
    float e = (rnd() % 3 == 0) ? 0x1.0p-26f : (rnd() % 2) ? 1.0f : 0x1.0p26f;
    return (rnd() & 1) ? e : -e;
}

static void test_dense(const tq_kernel_table *t) {
    const tq_kernel_table *ref = tq_kernels_ref();
    const uint32_t dims[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 31, 64, 100, 784};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        uint32_t dim = dims[di];
        float *M = malloc((size_t)dim * dim * sizeof(float)), *x = malloc(dim * sizeof(float));
        float *a = malloc(dim * sizeof(float)), *b = malloc(dim * sizeof(float));
        /* kind 0 random, 1 adversarial, 2 cancellation (every partial sum
         * and the combine order show in the result); small dims many times */
        int trials = dim <= 100 ? 500 : 5;
        for (int trial = 0; trial < trials; trial++) {
            int kind = trial % 5;
            for (size_t i = 0; i < (size_t)dim * dim; i++) M[i] = rnd_dense(kind);
            for (uint32_t i = 0; i < dim; i++) x[i] = rnd_dense(kind);
            ref->dense_forward(M, dim, x, a);
            t->dense_forward(M, dim, x, b);
            long k = first_diff(a, b, dim);
            CHECK(k < 0, "%s dense_forward dim=%u kind=%d: [%ld] %a vs ref %a", t->name, dim, kind, k,
                  k < 0 ? 0.0 : b[k], k < 0 ? 0.0 : a[k]);
        }
        free(M);
        free(x);
        free(a);
        free(b);
    }
}

/* The encode helpers decide stored factors, so they must match the reference
 * bit for bit: dot_f64 (order-sensitive data: every lane and the tail show),
 * div_f32 and lookup, for every length around the vector widths. */
static void test_encode_helpers(const tq_kernel_table *t) {
    const tq_kernel_table *ref = tq_kernels_ref();
    float a[70], b[70], o1[70], o2[70], table[256];
    uint8_t idx[70];
    for (int i = 0; i < 256; i++) table[i] = rnd_unit();
    for (uint32_t d = 0; d <= 67; d++) {
        for (int trial = 0; trial < 200; trial++) {
            int kind = trial % 5;
            for (uint32_t j = 0; j < d; j++) {
                a[j] = rnd_dense(kind);
                b[j] = rnd_dense(kind);
            }
            double r = ref->dot_f64(a, b, d), f = t->dot_f64(a, b, d);
            CHECK(memcmp(&r, &f, sizeof r) == 0 || (isnan(r) && isnan(f)), "%s dot_f64 d=%u kind=%d: %a vs ref %a",
                  t->name, d, kind, f, r);
            double s = trial % 3 == 0 ? 3.0 : fabs((double)rnd_unit()) * 1e3 + 1e-300;
            ref->div_f32(a, s, d, o1);
            t->div_f32(a, s, d, o2);
            long k = first_diff(o1, o2, d);
            CHECK(k < 0, "%s div_f32 d=%u: [%ld]", t->name, d, k);
            uint32_t levels = 1u << (1 + trial % 8); /* 2 .. 256 */
            for (uint32_t j = 0; j < d; j++) idx[j] = (uint8_t)(rnd() % levels);
            memset(o2, 0xFF, sizeof o2);
            ref->lookup(table, idx, d, o1);
            t->lookup(table, idx, d, o2);
            k = first_diff(o1, o2, d);
            CHECK(k < 0, "%s lookup d=%u levels=%u: [%ld]", t->name, d, levels, k);
            CHECK(f2u(o2[d]) == 0xFFFFFFFFu, "%s lookup wrote past d=%u", t->name, d);
        }
    }
    /* in place division (the encoder normalizes its buffer in place) */
    for (uint32_t j = 0; j < 67; j++) a[j] = b[j] = rnd_unit();
    ref->div_f32(a, 7.0, 67, a);
    t->div_f32(b, 7.0, 67, b);
    CHECK(first_diff(a, b, 67) < 0, "%s div_f32 in place", t->name);
}

/* dot_f64_x4 must give each of its four sums exactly as one dot_f64 of the reference does (four different
 * rows, lengths around every vector width, each kind of order-sensitive data); absmax_bits the reference's
 * largest magnitude pattern, with NaN, Inf, -0 and subnormals placed anywhere (head, body, tail). */
static void test_row_helpers(const tq_kernel_table *t) {
    const tq_kernel_table *ref = tq_kernels_ref();
    float a[4][70], b[4][70];
    for (uint32_t d = 0; d <= 67; d++) {
        for (int trial = 0; trial < 100; trial++) {
            const float *pa[4], *pb[4];
            for (int r = 0; r < 4; r++) {
                int kind = (trial + r) % 5;
                for (uint32_t j = 0; j < d; j++) {
                    a[r][j] = rnd_dense(kind);
                    b[r][j] = rnd_dense(kind);
                }
                pa[r] = a[r];
                pb[r] = trial % 7 == 0 ? a[r] : b[r]; /* a norm, as the encoder asks */
            }
            double out[4];
            t->dot_f64_x4(pa, pb, d, out);
            for (int r = 0; r < 4; r++) {
                double want = ref->dot_f64(pa[r], pb[r], d);
                CHECK(memcmp(&want, &out[r], sizeof want) == 0, "%s dot_f64_x4 d=%u row %d: %a vs ref %a", t->name, d,
                      r, out[r], want);
            }
            float *x = a[0];
            static const float special[] = {NAN, INFINITY, -INFINITY, -0.0f, 0x1p-140f, -0x1p-149f, 3.0e38f};
            for (uint32_t j = 0; j < d; j++) x[j] = rnd_unit() * (float)(1u << (rnd() % 20));
            if (d && trial % 2) x[rnd() % d] = special[rnd() % (sizeof special / sizeof special[0])];
            uint32_t want = ref->absmax_bits(x, d), got = t->absmax_bits(x, d);
            CHECK(want == got, "%s absmax_bits d=%u: %08x vs ref %08x", t->name, d, got, want);
            uint32_t naive = 0; /* and the reference is the plain definition */
            for (uint32_t j = 0; j < d; j++) {
                uint32_t u = f2u(x[j]) & 0x7fffffffu;
                naive = u > naive ? u : naive;
            }
            CHECK(want == naive, "ref absmax_bits d=%u: %08x vs %08x", d, want, naive);
        }
    }
}

static int cmp_float(const void *pa, const void *pb) {
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a > b) - (a < b);
}

static void test_nearest(const tq_kernel_table *t) {
    const tq_kernel_table *ref = tq_kernels_ref();
    for (uint32_t levels = 2; levels <= 256; levels++) {
        for (int kind = 0; kind < 3; kind++) {
            uint32_t nb = levels - 1;
            float *bounds = malloc(nb * sizeof(float)); /* exact size: no read past levels-1 */
            for (uint32_t k = 0; k < nb; k++) {
                if (kind == 0) bounds[k] = rnd_unit();
                else if (kind == 1) bounds[k] = (float)(rnd() % 8) - 4.0f; /* duplicates, zero */
                else bounds[k] = rnd_adversarial();
            }
            if (kind == 2) {
                for (uint32_t k = 0; k < nb; k++)
                    if (isnan(bounds[k])) bounds[k] = 0.0f;
            }
            qsort(bounds, nb, sizeof(float), cmp_float);
            if (kind == 1 && nb >= 3) bounds[nb / 2] = -0.0f, bounds[nb / 2 + 1] = 0.0f; /* still sorted up to +-0 */
            if (kind == 1 && nb >= 3) qsort(bounds, nb, sizeof(float), cmp_float);
            /* values: every bound and its neighbours, specials, randoms */
            uint32_t n = 3 * nb + 9 + 200;
            float *y = malloc(n * sizeof(float));
            uint32_t m = 0;
            for (uint32_t k = 0; k < nb; k++) {
                y[m++] = bounds[k];
                y[m++] = nextafterf(bounds[k], INFINITY);
                y[m++] = nextafterf(bounds[k], -INFINITY);
            }
            const float sp[9] = {0.0f, -0.0f, FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, NAN, 1e-45f, -1e-45f};
            for (int k = 0; k < 9; k++) y[m++] = sp[k];
            while (m < n) y[m++] = (rnd() & 1) ? rnd_unit() * 1.5f : rnd_adversarial();
            uint8_t *ia = malloc(n), *ib = malloc(n);
            /* the whole array and a few short lengths (tails) */
            for (uint32_t len = 1; len <= n; len = len < 20 ? len + 1 : n + (len == n)) {
                memset(ib, 0xEE, n);
                ref->nearest(bounds, levels, y, len, ia);
                t->nearest(bounds, levels, y, len, ib);
                uint32_t bad = len;
                for (uint32_t j = 0; j < len; j++)
                    if (ia[j] != ib[j]) { bad = j; break; }
                CHECK(bad == len, "%s nearest levels=%u kind=%d len=%u: y[%u]=%a -> %u, ref %u", t->name, levels, kind,
                      len, bad, bad < len ? y[bad] : 0.0, bad < len ? ib[bad] : 0, bad < len ? ia[bad] : 0);
                if (len < n) CHECK(ib[len] == 0xEE, "%s nearest wrote past d=%u", t->name, len);
                if (len == n) break;
            }
            free(bounds);
            free(y);
            free(ia);
            free(ib);
        }
    }
}

static void test_ip_codes(const tq_kernel_table *t) {
    const tq_kernel_table *ref = tq_kernels_ref();
    uint32_t dims[48];
    int nd = 0;
    for (uint32_t d = 1; d <= 40; d++) dims[nd++] = d;
    dims[nd++] = 100;
    dims[nd++] = 784;
    dims[nd++] = 1536;
    dims[nd++] = 65537;
    for (uint32_t bits = 1; bits <= 8; bits++) {
        uint32_t levels = 1u << bits;
        float *cent = malloc(levels * sizeof(float)); /* exact size */
        for (int di = 0; di < nd; di++) {
            uint32_t d = dims[di];
            for (int kind = 0; kind < 2; kind++) {
                double cmax = 0.0;
                for (uint32_t k = 0; k < levels; k++) {
                    cent[k] = kind ? (float)((int)k - (int)levels / 2) : rnd_unit() * 0.3f;
                    if (fabs(cent[k]) > cmax) cmax = fabs(cent[k]);
                }
                float *q = malloc(d * sizeof(float));
                uint8_t *idx = malloc(d), *scratch = malloc(d);
                size_t psz = tq_pack_size(d, bits);
                uint8_t *packed = malloc(psz);
                double qabs = 0.0;
                for (uint32_t j = 0; j < d; j++) {
                    q[j] = kind ? (float)(rnd() % 9) - 4.0f : rnd_unit();
                    qabs += fabs(q[j]);
                    idx[j] = (uint8_t)(rnd() & (levels - 1));
                }
                /* the last index the largest, so the lookup's top is exercised */
                idx[d - 1] = (uint8_t)(levels - 1);
                tq_pack(idx, d, bits, packed);
                double r = ref->ip_codes(q, cent, packed, d, bits, scratch);
                double f = t->ip_codes(q, cent, packed, d, bits, scratch);
                double tol = 1e-5 * qabs * cmax;
                CHECK(fabs(f - r) <= tol, "%s ip_codes bits=%u d=%u kind=%d: %.17g vs ref %.17g (tol %.3g)", t->name,
                      bits, d, kind, f, r, tol);
                /* the ref itself is exact on integers: a plain sum checks it */
                if (kind && d <= 1536) {
                    double e = 0.0;
                    for (uint32_t j = 0; j < d; j++) e += (double)q[j] * cent[idx[j]];
                    CHECK(r == e, "ref ip_codes bits=%u d=%u: %.17g vs %.17g", bits, d, r, e);
                }
                free(q);
                free(idx);
                free(scratch);
                free(packed);
            }
        }
        free(cent);
    }
}

static void test_ip_signs(const tq_kernel_table *t) {
    const tq_kernel_table *ref = tq_kernels_ref();
    uint32_t dims[48];
    int nd = 0;
    for (uint32_t d = 1; d <= 40; d++) dims[nd++] = d;
    dims[nd++] = 100;
    dims[nd++] = 784;
    dims[nd++] = 1536;
    dims[nd++] = 65537;
    for (int di = 0; di < nd; di++) {
        uint32_t d = dims[di];
        for (int kind = 0; kind < 3; kind++) {
            float *p = malloc(d * sizeof(float));
            size_t nbytes = (d + 7) / 8;
            uint8_t *s = malloc(nbytes);
            double pabs = 0.0;
            for (uint32_t i = 0; i < d; i++) {
                p[i] = kind == 1 ? (float)(rnd() % 9) - 4.0f : rnd_unit();
                pabs += fabs(p[i]);
            }
            for (size_t i = 0; i < nbytes; i++) s[i] = kind == 2 ? (uint8_t)(i & 1 ? 0xFF : 0x00) : (uint8_t)rnd();
            double r = ref->ip_signs(p, s, d);
            double f = t->ip_signs(p, s, d);
            double tol = 1e-5 * pabs;
            CHECK(fabs(f - r) <= tol, "%s ip_signs d=%u kind=%d: %.17g vs ref %.17g (tol %.3g)", t->name, d, kind, f,
                  r, tol);
            if (kind == 1) CHECK(f == r, "%s ip_signs d=%u on integers: %.17g vs ref %.17g", t->name, d, f, r);
            free(p);
            free(s);
        }
    }
}

/* The simdjson habit: the path a test run forces is the one that runs. */
static void test_dispatch(void) {
    const char *force = getenv("TQ_FORCE_ISA");
    const char *name = tq_kernel_name();
    int have_avx2 = tq_kernels_avx2() != NULL && tq_cpu_has_avx2();
    int have_avx512 = tq_kernels_avx512() != NULL && tq_cpu_has_avx512();
    int have_neon = tq_kernels_neon() != NULL;
    const char *best = have_avx512 ? "avx512" : have_avx2 ? "avx2" : have_neon ? "neon" : "ref";
    CHECK(!have_avx512 || have_avx2, "AVX-512 without AVX2");
    CHECK(!have_neon || (!have_avx2 && !have_avx512), "NEON and x86 tables in one build");
#if defined(__aarch64__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    CHECK(have_neon, "little-endian AArch64 build without the NEON table");
#endif
    /* the build info lists the tables compiled in */
    const char *info = tq_build_info(), *kc = strstr(info, "kernels compiled: ");
    CHECK(kc != NULL, "build info without the compiled kernels: %s", info);
    if (kc) {
        char list[64];
        snprintf(list, sizeof list, "%.*s", (int)strcspn(kc, ";"), kc);
        CHECK(!strstr(list, " neon") == !tq_kernels_neon(), "build info vs the NEON table (%d): %s",
              tq_kernels_neon() != NULL, info);
        CHECK(!strstr(list, " avx2") == !tq_kernels_avx2(), "build info vs the AVX2 table (%d): %s",
              tq_kernels_avx2() != NULL, info);
    }
    CHECK(strcmp(name, tq_kernels()->name) == 0, "tq_kernel_name %s", name);
    if (force && strcmp(force, "ref") == 0) {
        CHECK(strcmp(name, "ref") == 0, "TQ_FORCE_ISA=ref but %s runs", name);
    } else if (force && strcmp(force, "avx2") == 0) {
        CHECK(strcmp(name, have_avx2 ? "avx2" : "ref") == 0, "TQ_FORCE_ISA=avx2 (supported: %d) but %s runs",
              have_avx2, name);
    } else if (force && strcmp(force, "neon") == 0) {
        CHECK(strcmp(name, have_neon ? "neon" : "ref") == 0, "TQ_FORCE_ISA=neon (compiled in: %d) but %s runs",
              have_neon, name);
    } else if (!force || !*force || strcmp(force, "avx512") == 0) {
        CHECK(strcmp(name, best) == 0, "best table (%s) should run, %s runs", best, name);
    }
    CHECK(strstr(tq_build_info(), name) != NULL, "build info names the running table: %s", tq_build_info());
    printf("kernel table: %s (TQ_FORCE_ISA=%s); tables under test:", name, force ? force : "(unset)");
    for (int i = 0; i < ntables; i++) printf(" %s", tables[i]->name);
    printf("\n");
}

int main(void) {
    collect_tables();
    test_dispatch();
    for (int i = 0; i < ntables; i++) {
        test_fwht(tables[i]);
        test_dense(tables[i]);
        test_nearest(tables[i]);
        test_ip_codes(tables[i]);
        test_ip_signs(tables[i]);
        test_encode_helpers(tables[i]);
        test_row_helpers(tables[i]);
    }
    return CHECK_DONE();
}
