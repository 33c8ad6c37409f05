/*
 * fuzz_kernels.c — differential: every SIMD kernel table this CPU runs
 * (avx2, avx512 on x86-64; neon on AArch64) against the scalar reference
 * table, on inputs the fuzzer picks, held to the contract of
 * src/kernels/kernels.h:
 *   - bit-identical: fwht, dense_forward, nearest, dot_f64, div_f32, lookup,
 *     f16_load, and the fast-scan integer sums (src/kernels/fastscan.h);
 *     a NaN output need only be a NaN;
 *   - within the stated tolerances: ip_codes, ip_signs, kv_logits, kv_accum,
 *     softmax_block.
 * Byte 0 picks the kernel; the rest gives sizes and values. Values come in
 * two kinds: raw float32 bit patterns (NaN, Inf, subnormals, huge) for the
 * bit-identical kernels, and bounded values (|v| < 2^12) for the toleranced
 * ones, whose bounds assume no overflow.
 */
#include <math.h>

#include "core/pack.h"
#include "fuzz_common.h"
#include "kernels/fastscan.h"
#include "kernels/kernels.h"

static float raw_f(fuzz_in *in) {
    uint32_t u = fz_u32(in);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* bounded: m / 128 * 2^e, m in -128..127, e in -8..12 */
static float bnd_f(fuzz_in *in) {
    int m = (int8_t)fz_u8(in);
    int e = (int)(fz_u8(in) % 21) - 8;
    return ldexpf((float)m / 128.0f, e);
}
static int same_f(float a, float b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, 4) == 0; }
static int same_d(double a, double b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, 8) == 0; }

static const tq_kernel_table *tables[3];
static int ntables;

static void init_tables(void) {
    if (ntables) return;
    if (tq_kernels_avx2() && tq_cpu_has_avx2()) tables[ntables++] = tq_kernels_avx2();
    if (tq_kernels_avx512() && tq_cpu_has_avx512()) tables[ntables++] = tq_kernels_avx512();
    if (tq_kernels_neon()) tables[ntables++] = tq_kernels_neon();
    if (!ntables) tables[ntables++] = tq_kernels_ref(); /* nothing to compare: still runs the ref */
}

enum { MAXD = 300, MAXN = 40, MAXG = 5 };

static void fill_idx(fuzz_in *in, uint8_t *idx, uint32_t d, uint32_t levels) {
    for (uint32_t j = 0; j < d; j++) idx[j] = (uint8_t)(fz_u8(in) % levels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_tables();
    fuzz_in in = {data, size, 0};
    const tq_kernel_table *ref = tq_kernels_ref();
    uint8_t which = fz_u8(&in) % 11;
    int raw = fz_u8(&in) & 1;
    static float a[MAXD * MAXG], b[MAXD * MAXG], x[MAXD * MAXD], y1[MAXD * MAXG], y2[MAXD * MAXG];
    static uint8_t idx[MAXD], codes[MAXN * 160], scratch[MAXD];

    for (int ti = 0; ti < ntables; ti++) {
        const tq_kernel_table *k = tables[ti];
        fuzz_in c = in; /* every table sees the same input */
        switch (which) {
        case 0: { /* fwht */
            uint32_t len = 1u << fz_range(&c, 0, 8);
            for (uint32_t j = 0; j < len; j++) y1[j] = y2[j] = raw ? raw_f(&c) : bnd_f(&c);
            ref->fwht(y1, len);
            k->fwht(y2, len);
            for (uint32_t j = 0; j < len; j++)
                FUZZ_ASSERT(same_f(y1[j], y2[j]), "%s fwht len %u [%u]: %a vs ref %a", k->name, len, j, y2[j], y1[j]);
            break;
        }
        case 1: { /* dense_forward */
            uint32_t d = fz_range(&c, 1, 40);
            for (uint32_t j = 0; j < d * d; j++) x[j] = raw ? raw_f(&c) : bnd_f(&c);
            for (uint32_t j = 0; j < d; j++) a[j] = raw ? raw_f(&c) : bnd_f(&c);
            ref->dense_forward(x, d, a, y1);
            k->dense_forward(x, d, a, y2);
            for (uint32_t j = 0; j < d; j++)
                FUZZ_ASSERT(same_f(y1[j], y2[j]), "%s dense_forward d %u [%u]: %a vs ref %a", k->name, d, j, y2[j],
                            y1[j]);
            break;
        }
        case 2: { /* nearest: sorted, NaN-free bounds */
            uint32_t levels = fz_range(&c, 2, 256), d = fz_range(&c, 1, MAXD);
            float bounds[255];
            for (uint32_t j = 0; j + 1 < levels; j++) {
                float v = raw ? raw_f(&c) : bnd_f(&c);
                bounds[j] = isnan(v) ? 0.0f : v;
            }
            for (uint32_t i = 1; i + 1 < levels; i++) /* insertion sort */
                for (uint32_t j = i; j > 0 && bounds[j - 1] > bounds[j]; j--) {
                    float t = bounds[j];
                    bounds[j] = bounds[j - 1];
                    bounds[j - 1] = t;
                }
            for (uint32_t j = 0; j < d; j++) a[j] = raw ? raw_f(&c) : bnd_f(&c);
            uint8_t i1[MAXD], i2[MAXD];
            ref->nearest(bounds, levels, a, d, i1);
            k->nearest(bounds, levels, a, d, i2);
            for (uint32_t j = 0; j < d; j++)
                FUZZ_ASSERT(i1[j] == i2[j], "%s nearest levels %u y %a [%u]: %u vs ref %u", k->name, levels, a[j], j,
                            i2[j], i1[j]);
            break;
        }
        case 3: { /* ip_codes */
            uint32_t bits = fz_range(&c, 1, 8), d = fz_range(&c, 1, MAXD), L = 1u << bits;
            float cent[256];
            double cmax = 0.0, qabs = 0.0;
            for (uint32_t j = 0; j < L; j++) cmax = fmax(cmax, fabs(cent[j] = bnd_f(&c)));
            for (uint32_t j = 0; j < d; j++) qabs += fabs(a[j] = bnd_f(&c));
            fill_idx(&c, idx, d, L);
            memset(codes, 0, sizeof codes);
            tq_pack(idx, d, bits, codes);
            double r = ref->ip_codes(a, cent, codes, d, bits, scratch), f = k->ip_codes(a, cent, codes, d, bits, scratch);
            FUZZ_ASSERT(fabs(f - r) <= 1e-5 * qabs * cmax, "%s ip_codes bits %u d %u: %.17g vs ref %.17g", k->name,
                        bits, d, f, r);
            break;
        }
        case 4: { /* ip_signs */
            uint32_t d = fz_range(&c, 1, MAXD);
            double pabs = 0.0;
            for (uint32_t j = 0; j < d; j++) pabs += fabs(a[j] = bnd_f(&c));
            for (uint32_t j = 0; j < (d + 7) / 8; j++) codes[j] = fz_u8(&c);
            double r = ref->ip_signs(a, codes, d), f = k->ip_signs(a, codes, d);
            FUZZ_ASSERT(fabs(f - r) <= 1e-5 * pabs, "%s ip_signs d %u: %.17g vs ref %.17g", k->name, d, f, r);
            break;
        }
        case 5: { /* dot_f64, div_f32 */
            uint32_t d = fz_range(&c, 1, MAXD);
            for (uint32_t j = 0; j < d; j++) a[j] = raw ? raw_f(&c) : bnd_f(&c);
            for (uint32_t j = 0; j < d; j++) b[j] = raw ? raw_f(&c) : bnd_f(&c);
            double r = ref->dot_f64(a, b, d), f = k->dot_f64(a, b, d);
            FUZZ_ASSERT(same_d(r, f), "%s dot_f64 d %u: %a vs ref %a", k->name, d, f, r);
            double s = raw ? (double)raw_f(&c) : (double)bnd_f(&c);
            ref->div_f32(a, s, d, y1);
            k->div_f32(a, s, d, y2);
            for (uint32_t j = 0; j < d; j++)
                FUZZ_ASSERT(same_f(y1[j], y2[j]), "%s div_f32 %a / %a: %a vs ref %a", k->name, a[j], s, y2[j], y1[j]);
            break;
        }
        case 6: { /* lookup: the table holds max(16, levels) floats */
            uint32_t levels = fz_range(&c, 1, 256), d = fz_range(&c, 1, MAXD);
            float table[256];
            for (uint32_t j = 0; j < 256; j++) table[j] = j < levels || j < 16 ? (raw ? raw_f(&c) : bnd_f(&c)) : 0.0f;
            fill_idx(&c, idx, d, levels);
            ref->lookup(table, idx, d, y1);
            k->lookup(table, idx, d, y2);
            for (uint32_t j = 0; j < d; j++)
                FUZZ_ASSERT(same_f(y1[j], y2[j]), "%s lookup [%u] idx %u: %a vs ref %a", k->name, j, idx[j], y2[j],
                            y1[j]);
            break;
        }
        case 7: { /* f16_load: any half, finite or not */
            size_t n = fz_range(&c, 1, MAXN), stride = fz_range(&c, 2, 8);
            for (size_t j = 0; j < n * stride; j++) codes[j] = fz_u8(&c);
            ref->f16_load(codes, stride, n, y1);
            k->f16_load(codes, stride, n, y2);
            for (size_t j = 0; j < n; j++)
                FUZZ_ASSERT(same_f(y1[j], y2[j]), "%s f16_load [%zu]: %a vs ref %a", k->name, j, y2[j], y1[j]);
            break;
        }
        case 8: { /* kv_logits, one or two parts */
            uint32_t np = fz_range(&c, 1, 2), G = fz_range(&c, 1, MAXG);
            size_t n = fz_range(&c, 1, MAXN), stride = 160, off = 4;
            tq_kv_part parts[2];
            static float qp[2][MAXG * 64], cent[2][256], fac[2][MAXN];
            double bound = 1e-5;
            for (uint32_t p = 0; p < np; p++) {
                uint32_t bits = fz_range(&c, 1, 8), d = fz_range(&c, 1, 64), L = 1u << bits;
                double cmax = 0.0, qs = 0.0, fmaxv = 0.0;
                for (uint32_t j = 0; j < L; j++) cmax = fmax(cmax, fabs(cent[p][j] = bnd_f(&c)));
                for (uint32_t j = 0; j < G * d; j++) qs += fabs(qp[p][j] = bnd_f(&c));
                for (size_t t = 0; t < n; t++) fmaxv = fmax(fmaxv, fabs(fac[p][t] = bnd_f(&c)));
                for (size_t t = 0; t < n; t++) {
                    fill_idx(&c, idx, d, L);
                    memset(codes + t * stride + off, 0, tq_pack_size(d, bits));
                    tq_pack(idx, d, bits, codes + t * stride + off);
                }
                parts[p] = (tq_kv_part){qp[p], cent[p], fac[p], off, d, bits};
                off += tq_pack_size(d, bits);
                bound += 1e-4 * qs * cmax * fmaxv; /* per part: its dot's error times its factor */
            }
            float bias[MAXG];
            double bmax = 0.0;
            for (uint32_t g = 0; g < G; g++) bmax = fmax(bmax, fabs(bias[g] = bnd_f(&c)));
            bound += 1e-6 * bmax;
            ref->kv_logits(parts, np, G, codes, stride, n, bias, scratch, y1, n);
            k->kv_logits(parts, np, G, codes, stride, n, bias, scratch, y2, n);
            for (size_t i = 0; i < G * n; i++)
                FUZZ_ASSERT(fabs((double)y1[i] - y2[i]) <= bound, "%s kv_logits np %u G %u [%zu]: %g vs ref %g (tol %g)",
                            k->name, np, G, i, y2[i], y1[i], bound);
            break;
        }
        case 9: { /* kv_accum */
            uint32_t G = fz_range(&c, 1, MAXG), bits = fz_range(&c, 1, 8), d = fz_range(&c, 1, 64), L = 1u << bits;
            size_t n = fz_range(&c, 1, MAXN), stride = 40;
            float cent[256], w[MAXG * MAXN];
            double cmax = 0.0, wsum = 0.0;
            for (uint32_t j = 0; j < L; j++) cmax = fmax(cmax, fabs(cent[j] = bnd_f(&c)));
            for (size_t i = 0; i < G * n; i++) wsum += fabs(w[i] = bnd_f(&c));
            for (size_t t = 0; t < n; t++) {
                fill_idx(&c, idx, d, L);
                memset(codes + t * stride, 0, stride);
                tq_pack(idx, d, bits, codes + t * stride);
            }
            for (uint32_t i = 0; i < G * d; i++) y1[i] = y2[i] = bnd_f(&c);
            double abs0 = 0.0;
            for (uint32_t i = 0; i < G * d; i++) abs0 = fmax(abs0, fabs(y1[i]));
            ref->kv_accum(w, G, cent, codes, stride, n, d, bits, scratch, y1);
            k->kv_accum(w, G, cent, codes, stride, n, d, bits, scratch, y2);
            double tol = 1e-5 * wsum * cmax + 1e-6 * abs0;
            for (uint32_t i = 0; i < G * d; i++)
                FUZZ_ASSERT(fabs((double)y1[i] - y2[i]) <= tol, "%s kv_accum G %u bits %u d %u n %zu [%u]: %g vs ref %g",
                            k->name, G, bits, d, n, i, y2[i], y1[i]);
            break;
        }
        case 10: { /* softmax_block, then the fast-scan sums */
            size_t n = fz_range(&c, 1, MAXD);
            for (size_t t = 0; t < n; t++) a[t] = b[t] = x[t] = bnd_f(&c);
            float m0 = (fz_u8(&c) & 1) ? -INFINITY : bnd_f(&c), m1 = m0;
            double s0 = 0.0, s1 = 0.0;
            float r0 = ref->softmax_block(a, n, &m0, &s0), r1 = k->softmax_block(b, n, &m1, &s1);
            FUZZ_ASSERT(m0 == m1, "%s softmax_block max %g vs ref %g", k->name, m1, m0);
            FUZZ_ASSERT(fabs(r0 - r1) <= 1e-6 * r0 + 1e-30, "%s softmax_block rescale %g vs ref %g", k->name, r1, r0);
            FUZZ_ASSERT(fabs(s0 - s1) <= 3e-6 * s0 + 1e-30 * n, "%s softmax_block sum %g vs ref %g", k->name, s1, s0);
            for (size_t t = 0; t < n; t++)
                FUZZ_ASSERT(fabs((double)a[t] - b[t]) <= (1e-6 + 1.2e-7 * fabs(x[t] - m0)) * a[t] + 1e-30,
                            "%s softmax_block [%zu] x %g: %g vs ref %g", k->name, t, x[t], b[t], a[t]);
            /* the table's own fast-scan kernel (tables[] holds only what this CPU runs) */
            tq_fs_sums_fn fs = k == tq_kernels_avx512() ? tq_fs_sums_avx512()
                               : k == tq_kernels_avx2() ? tq_fs_sums_avx2()
                               : k == tq_kernels_neon() ? tq_fs_sums_neon()
                                                        : NULL;
            if (fs) {
                size_t nblocks = fz_range(&c, 1, 3);
                uint32_t npairs = fz_range(&c, 1, 16);
                static uint8_t packed[3 * 16 * 32], lut[16 * 32];
                static uint32_t su1[96], su2[96];
                for (size_t j = 0; j < nblocks * npairs * 32; j++) packed[j] = fz_u8(&c);
                for (size_t j = 0; j < npairs * 32u; j++) lut[j] = fz_u8(&c);
                tq_fs_sums_ref(packed, nblocks, npairs, lut, su1);
                fs(packed, nblocks, npairs, lut, su2);
                FUZZ_ASSERT(memcmp(su1, su2, nblocks * 32 * sizeof su1[0]) == 0, "%s fast-scan sums differ from ref", k->name);
                /* the several-query kernel: nq tables (the first the one above, the rest fuzzed) */
                tq_fs_sums4_fn f4 = k == tq_kernels_avx512() ? tq_fs_sums4_avx512() : NULL;
                if (f4) {
                    static uint8_t luts_m[TQ_FS_MAX_QUERIES][16 * 32];
                    static uint32_t sm[TQ_FS_MAX_QUERIES][96], sr[96];
                    uint32_t nq = (uint32_t)fz_range(&c, 1, TQ_FS_MAX_QUERIES);
                    const uint8_t *lp[TQ_FS_MAX_QUERIES];
                    uint32_t *sp[TQ_FS_MAX_QUERIES];
                    for (uint32_t q = 0; q < nq; q++) {
                        for (size_t j = 0; j < npairs * 32u; j++) luts_m[q][j] = q ? fz_u8(&c) : lut[j];
                        lp[q] = luts_m[q];
                        sp[q] = sm[q];
                    }
                    f4(packed, nblocks, npairs, lp, nq, sp);
                    for (uint32_t q = 0; q < nq; q++) {
                        tq_fs_sums_ref(packed, nblocks, npairs, lp[q], sr);
                        FUZZ_ASSERT(memcmp(sr, sm[q], nblocks * 32 * sizeof sr[0]) == 0,
                                    "avx512 %u-query fast-scan sums differ from ref (query %u)", nq, q);
                    }
                }
            }
            break;
        }
        }
    }
    return 0;
}
