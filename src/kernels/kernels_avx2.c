/*
 * kernels_avx2.c — the AVX2 kernel table (x86-64, GCC or Clang).
 *
 * Every function carries its own target attribute and the build adds no
 * -mavx2, so this file compiles into every x86-64 binary and its code runs
 * only after dispatch.c has seen AVX2 in CPUID and YMM state enabled by the
 * OS. On other platforms or compilers the file is reduced to a NULL table.
 *
 * What must match the ref table bit for bit (kernels.h) is computed with the
 * same operations on the same operands in the same order — only more of them
 * at once:
 *   - fwht: the butterfly graph of the ref (stage h = 1, 2, 4, ... with u+v,
 *     u-v) is evaluated exactly; stages 1, 2, 4 inside one register with
 *     permutes and blends (operand order kept: even lanes a+b, odd lanes a-b),
 *     stages 8, 16, 32 across eight registers, the rest two stages per pass
 *     over memory. The final scale is the same single float multiply.
 *   - dense_forward: a __m256d accumulator over four consecutive elements is
 *     exactly the ref's four partial sums (element j to lane j mod 4); mul and
 *     add stay separate (no "fma" in these functions' target, and the build
 *     has -ffp-contract=off). Four rows share each load of x.
 *   - nearest: a count of bounds below y is an integer; compare-and-count for
 *     up to 64 levels, a branchless search above, both equal to the ref's
 *     binary search for sorted bounds (NaN counts 0 in all three).
 * The scores (ip_codes, ip_signs) sum in float with FMA in blocks of at most
 * 512 coordinates, each block added to a double, so the error bound of
 * kernels.h does not grow with d.
 */
#include "kernels.h"
#include "planes.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define TQ_AVX2 __attribute__((target("avx2")))
#define TQ_AVX2_FMA __attribute__((target("avx2,fma")))
#define TQ_AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))
#define TQ_AVX2_FMA_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* ---- fwht ---- */

/* Stages h = 1, 2, 4 of the ref on one block of 8: lane i pairs with lane
 * i ^ h; the lower lane gets a + b, the upper b' = a - b (a = lower lane). */
TQ_AVX2_INLINE __m256 tq_fwht8(__m256 v) {
    __m256 s = _mm256_permute_ps(v, 0xB1); /* 1 0 3 2 */
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xAA);
    s = _mm256_permute_ps(v, 0x4E); /* 2 3 0 1 */
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xCC);
    s = _mm256_permute2f128_ps(v, v, 0x01); /* swap halves */
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xF0);
    return v;
}

#define TQ_BFLY(a, b)                       \
    do {                                    \
        __m256 t_ = (a);                    \
        (a) = _mm256_add_ps(t_, (b));       \
        (b) = _mm256_sub_ps(t_, (b));       \
    } while (0)

TQ_AVX2 static void fwht_avx2(float *x, uint32_t len) {
    if (len < 8) {
        tq_kernels_ref()->fwht(x, len);
        return;
    }
    const float scale = (float)(1.0 / sqrt((double)len)); /* the ref's expression */
    const __m256 vs = _mm256_set1_ps(scale);
    if (len < 64) {
        for (uint32_t i = 0; i < len; i += 8) {
            __m256 v = tq_fwht8(_mm256_loadu_ps(x + i));
            _mm256_storeu_ps(x + i, len == 8 ? _mm256_mul_ps(v, vs) : v);
        }
        for (uint32_t h = 8; h < len; h *= 2) {
            int last = 2 * h == len;
            for (uint32_t i = 0; i < len; i += 2 * h) {
                for (uint32_t j = i; j < i + h; j += 8) {
                    __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + h);
                    TQ_BFLY(a, b);
                    if (last) {
                        a = _mm256_mul_ps(a, vs);
                        b = _mm256_mul_ps(b, vs);
                    }
                    _mm256_storeu_ps(x + j, a);
                    _mm256_storeu_ps(x + j + h, b);
                }
            }
        }
        return;
    }
    /* stages 1 .. 32 on chunks of 64 in eight registers */
    for (uint32_t i = 0; i < len; i += 64) {
        float *p = x + i;
        __m256 v0 = tq_fwht8(_mm256_loadu_ps(p)), v1 = tq_fwht8(_mm256_loadu_ps(p + 8));
        __m256 v2 = tq_fwht8(_mm256_loadu_ps(p + 16)), v3 = tq_fwht8(_mm256_loadu_ps(p + 24));
        __m256 v4 = tq_fwht8(_mm256_loadu_ps(p + 32)), v5 = tq_fwht8(_mm256_loadu_ps(p + 40));
        __m256 v6 = tq_fwht8(_mm256_loadu_ps(p + 48)), v7 = tq_fwht8(_mm256_loadu_ps(p + 56));
        TQ_BFLY(v0, v1); TQ_BFLY(v2, v3); TQ_BFLY(v4, v5); TQ_BFLY(v6, v7); /* h = 8 */
        TQ_BFLY(v0, v2); TQ_BFLY(v1, v3); TQ_BFLY(v4, v6); TQ_BFLY(v5, v7); /* h = 16 */
        TQ_BFLY(v0, v4); TQ_BFLY(v1, v5); TQ_BFLY(v2, v6); TQ_BFLY(v3, v7); /* h = 32 */
        if (len == 64) {
            v0 = _mm256_mul_ps(v0, vs); v1 = _mm256_mul_ps(v1, vs);
            v2 = _mm256_mul_ps(v2, vs); v3 = _mm256_mul_ps(v3, vs);
            v4 = _mm256_mul_ps(v4, vs); v5 = _mm256_mul_ps(v5, vs);
            v6 = _mm256_mul_ps(v6, vs); v7 = _mm256_mul_ps(v7, vs);
        }
        _mm256_storeu_ps(p, v0); _mm256_storeu_ps(p + 8, v1);
        _mm256_storeu_ps(p + 16, v2); _mm256_storeu_ps(p + 24, v3);
        _mm256_storeu_ps(p + 32, v4); _mm256_storeu_ps(p + 40, v5);
        _mm256_storeu_ps(p + 48, v6); _mm256_storeu_ps(p + 56, v7);
    }
    /* the remaining stages two at a time (h and 2h), or one when one is left */
    uint32_t h = 64;
    while (h < len) {
        if (4 * h <= len) {
            int last = 4 * h == len;
            for (uint32_t i = 0; i < len; i += 4 * h) {
                float *pa = x + i, *pb = pa + h, *pc = pb + h, *pd = pc + h;
                for (uint32_t j = 0; j < h; j += 8) {
                    __m256 a = _mm256_loadu_ps(pa + j), b = _mm256_loadu_ps(pb + j);
                    __m256 c = _mm256_loadu_ps(pc + j), d = _mm256_loadu_ps(pd + j);
                    TQ_BFLY(a, b); TQ_BFLY(c, d); /* stage h */
                    TQ_BFLY(a, c); TQ_BFLY(b, d); /* stage 2h */
                    if (last) {
                        a = _mm256_mul_ps(a, vs); b = _mm256_mul_ps(b, vs);
                        c = _mm256_mul_ps(c, vs); d = _mm256_mul_ps(d, vs);
                    }
                    _mm256_storeu_ps(pa + j, a); _mm256_storeu_ps(pb + j, b);
                    _mm256_storeu_ps(pc + j, c); _mm256_storeu_ps(pd + j, d);
                }
            }
            h *= 4;
        } else { /* 2h == len: the last stage */
            for (uint32_t j = 0; j < h; j += 8) {
                __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + h + j);
                TQ_BFLY(a, b);
                _mm256_storeu_ps(x + j, _mm256_mul_ps(a, vs));
                _mm256_storeu_ps(x + h + j, _mm256_mul_ps(b, vs));
            }
            h *= 2;
        }
    }
}

/* ---- dense_forward ---- */

/* Lanes of acc are the ref's s0..s3 after the whole groups of four; add the
 * tail elements j..dim-1 to s0, s1, s2 and combine as the ref does. */
TQ_AVX2_INLINE float tq_dense_finish(__m256d acc, const float *row, const float *x, uint32_t j, uint32_t dim) {
    double s[4];
    _mm256_storeu_pd(s, acc);
    if (j < dim) s[0] += (double)row[j] * (double)x[j];
    if (j + 1 < dim) s[1] += (double)row[j + 1] * (double)x[j + 1];
    if (j + 2 < dim) s[2] += (double)row[j + 2] * (double)x[j + 2];
    return (float)((s[0] + s[1]) + (s[2] + s[3]));
}

TQ_AVX2 static void dense_forward_avx2(const float *M, uint32_t dim, const float *x, float *y) {
    const uint32_t j4 = dim & ~3u;
    uint32_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        const float *r0 = M + (size_t)i * dim, *r1 = r0 + dim, *r2 = r1 + dim, *r3 = r2 + dim;
        __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
        __m256d a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
        for (uint32_t j = 0; j < j4; j += 4) {
            __m256d xv = _mm256_cvtps_pd(_mm_loadu_ps(x + j));
            a0 = _mm256_add_pd(a0, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(r0 + j)), xv));
            a1 = _mm256_add_pd(a1, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(r1 + j)), xv));
            a2 = _mm256_add_pd(a2, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(r2 + j)), xv));
            a3 = _mm256_add_pd(a3, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(r3 + j)), xv));
        }
        y[i] = tq_dense_finish(a0, r0, x, j4, dim);
        y[i + 1] = tq_dense_finish(a1, r1, x, j4, dim);
        y[i + 2] = tq_dense_finish(a2, r2, x, j4, dim);
        y[i + 3] = tq_dense_finish(a3, r3, x, j4, dim);
    }
    for (; i < dim; i++) {
        const float *r0 = M + (size_t)i * dim;
        __m256d a0 = _mm256_setzero_pd();
        for (uint32_t j = 0; j < j4; j += 4) {
            __m256d xv = _mm256_cvtps_pd(_mm_loadu_ps(x + j));
            a0 = _mm256_add_pd(a0, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(r0 + j)), xv));
        }
        y[i] = tq_dense_finish(a0, r0, x, j4, dim);
    }
}

/* ---- nearest ---- */

static uint8_t tq_nearest1(const float *bounds, uint32_t levels, float v) {
    uint32_t lo = 0, hi = levels - 1; /* the ref's search */
    while (lo < hi) {
        uint32_t mid = (lo + hi) >> 1;
        if (v > bounds[mid]) lo = mid + 1; else hi = mid;
    }
    return (uint8_t)lo;
}

/* Eight counts (epi32, each <= 255) to eight bytes. */
TQ_AVX2_INLINE void tq_store8_u8(uint8_t *out, __m256i c) {
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    _mm_storel_epi64((__m128i *)(void *)out, _mm_packus_epi16(w, w));
}

TQ_AVX2 static void nearest_avx2(const float *bounds, uint32_t levels, const float *y, uint32_t d, uint8_t *idx) {
    const uint32_t nb = levels - 1; /* bounds in use */
    uint32_t j = 0;
    if (levels <= 64) {
        /* count: subtracting an all-ones compare mask adds 1; two counters
         * so consecutive compares do not wait on each other */
        for (; j + 8 <= d; j += 8) {
            __m256 v = _mm256_loadu_ps(y + j);
            __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
            uint32_t k = 0;
            for (; k + 2 <= nb; k += 2) {
                c0 = _mm256_sub_epi32(c0, _mm256_castps_si256(_mm256_cmp_ps(_mm256_broadcast_ss(bounds + k), v, _CMP_LT_OQ)));
                c1 = _mm256_sub_epi32(c1,
                                      _mm256_castps_si256(_mm256_cmp_ps(_mm256_broadcast_ss(bounds + k + 1), v, _CMP_LT_OQ)));
            }
            if (k < nb)
                c0 = _mm256_sub_epi32(c0, _mm256_castps_si256(_mm256_cmp_ps(_mm256_broadcast_ss(bounds + k), v, _CMP_LT_OQ)));
            tq_store8_u8(idx + j, _mm256_add_epi32(c0, c1));
        }
    } else {
        /* branchless search over the bounds padded with +inf to 2*top - 1
         * entries (nothing is above +inf, NaN is above nothing): pos counts
         * bounds known below v; try pos + step for step = top .. 1. Scalar:
         * on the AMD cores measured, vpgatherdd was slower than the ref. */
        float tab[256];
        uint32_t top = 1;
        while (2 * top <= nb) top *= 2;
        memcpy(tab, bounds, nb * sizeof(float));
        for (uint32_t k = nb; k < 2 * top - 1; k++) tab[k] = INFINITY;
        for (; j < d; j++) {
            float v = y[j];
            uint32_t pos = 0;
            for (uint32_t step = top; step; step >>= 1) pos += (tab[pos + step - 1] < v) ? step : 0;
            idx[j] = (uint8_t)pos;
        }
    }
    for (; j < d; j++) idx[j] = tq_nearest1(bounds, levels, y[j]);
}

/* ---- ip_codes ---- */

/* Indices of coordinates 8g .. 8g+7 of a plane of width W (1, 2, 4 or 8),
 * one per 32-bit lane. A group of 8 takes W whole bytes, so no read goes past
 * the plane for a whole group. */
TQ_AVX2_INLINE __m256i tq_plane8(const uint8_t *plane, uint32_t g, uint32_t W) {
    if (W == 8) return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(plane + 8 * (size_t)g)));
    uint32_t v;
    __m256i sh;
    if (W == 4) {
        memcpy(&v, plane + 4 * (size_t)g, 4);
        sh = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    } else if (W == 2) {
        uint16_t t;
        memcpy(&t, plane + 2 * (size_t)g, 2);
        v = t;
        sh = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    } else {
        v = plane[g];
        sh = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    }
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)v), sh), _mm256_set1_epi32((1 << W) - 1));
}

/* Indices of group g for a constant BITS (widths greedy 4, 2, 1 as pack.h). */
TQ_AVX2_INLINE __m256i tq_group_idx(const tq_planes *pl, uint32_t g, uint32_t BITS) {
    if (BITS == 8) return tq_plane8(pl->p[0], g, 8);
    if (BITS == 1 || BITS == 2 || BITS == 4) return tq_plane8(pl->p[0], g, BITS);
    if (BITS == 3) return _mm256_or_si256(tq_plane8(pl->p[0], g, 2), _mm256_slli_epi32(tq_plane8(pl->p[1], g, 1), 2));
    if (BITS == 5) return _mm256_or_si256(tq_plane8(pl->p[0], g, 4), _mm256_slli_epi32(tq_plane8(pl->p[1], g, 1), 4));
    if (BITS == 6) return _mm256_or_si256(tq_plane8(pl->p[0], g, 4), _mm256_slli_epi32(tq_plane8(pl->p[1], g, 2), 4));
    /* 7 */
    return _mm256_or_si256(_mm256_or_si256(tq_plane8(pl->p[0], g, 4), _mm256_slli_epi32(tq_plane8(pl->p[1], g, 2), 4)),
                           _mm256_slli_epi32(tq_plane8(pl->p[2], g, 1), 6));
}

/* cent[idx] for 8 lanes: up to 32 centroids from registers (permute within 8,
 * blend on the higher index bits), more by scalar loads. */
TQ_AVX2_INLINE __m256 tq_lookup(const __m256 *t, const float *cent, __m256i idx, uint32_t BITS) {
    if (BITS <= 3) return _mm256_permutevar8x32_ps(t[0], idx);
    if (BITS == 4) {
        __m256 m3 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
        return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t[0], idx), _mm256_permutevar8x32_ps(t[1], idx), m3);
    }
    if (BITS == 5) {
        __m256 m3 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
        __m256 m4 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 27));
        __m256 lo = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t[0], idx), _mm256_permutevar8x32_ps(t[1], idx), m3);
        __m256 hi = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t[2], idx), _mm256_permutevar8x32_ps(t[3], idx), m3);
        return _mm256_blendv_ps(lo, hi, m4);
    }
    /* 64 to 256 centroids: eight scalar loads (on the AMD cores measured,
     * vgatherdps and a 64-entry permute/blend tree were both slower) */
    uint32_t k[8];
    _mm256_storeu_si256((__m256i *)(void *)k, idx);
    return _mm256_setr_ps(cent[k[0]], cent[k[1]], cent[k[2]], cent[k[3]], cent[k[4]], cent[k[5]], cent[k[6]],
                          cent[k[7]]);
}

TQ_AVX2_FMA_INLINE double tq_hsum_d(__m256 a) {
    __m256d s = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)), _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
    __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
}

enum { TQ_BLOCK_GROUPS = 64 }; /* 512 coordinates per float block */

/* The registers tq_lookup reads: up to 32 centroids (BITS <= 5), zero-padded; unused above. */
TQ_AVX2_INLINE void tq_lookup_table(const float *cent, uint32_t BITS, __m256 t[4]) {
    float tab[32];
    memset(tab, 0, sizeof tab);
    if (BITS <= 5) {
        uint32_t levels = 1u << BITS;
        for (uint32_t k = 0; k < levels; k++) tab[k] = cent[k];
    }
    for (int k = 0; k < 4; k++) t[k] = _mm256_loadu_ps(tab + 8 * k);
}

TQ_AVX2_FMA_INLINE double tq_ip_codes_t(const float *q, const float *cent, const uint8_t *packed, uint32_t d,
                                        uint32_t BITS) {
    tq_planes pl;
    tq_planes_init(&pl, packed, d, BITS);
    __m256 t[4];
    tq_lookup_table(cent, BITS, t);
    const uint32_t ng = d / 8;
    double total = 0.0;
    uint32_t g = 0;
    while (g < ng) {
        uint32_t gend = ng - g > TQ_BLOCK_GROUPS ? g + TQ_BLOCK_GROUPS : ng;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (; g + 4 <= gend; g += 4) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * g), tq_lookup(t, cent, tq_group_idx(&pl, g, BITS), BITS), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * g + 8), tq_lookup(t, cent, tq_group_idx(&pl, g + 1, BITS), BITS),
                                 a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * g + 16),
                                 tq_lookup(t, cent, tq_group_idx(&pl, g + 2, BITS), BITS), a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * g + 24),
                                 tq_lookup(t, cent, tq_group_idx(&pl, g + 3, BITS), BITS), a3);
        }
        for (; g < gend; g++)
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * g), tq_lookup(t, cent, tq_group_idx(&pl, g, BITS), BITS), a0);
        total += tq_hsum_d(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    }
    for (uint32_t j = 8 * ng; j < d; j++) total += (double)q[j] * cent[tq_planes_index_at(&pl, j)];
    return total;
}

TQ_AVX2_FMA static double ip_codes_avx2(const float *q, const float *cent, const uint8_t *packed, uint32_t d,
                                        uint32_t bits, uint8_t *scratch) {
    (void)scratch;
    switch (bits) {
    case 1: return tq_ip_codes_t(q, cent, packed, d, 1);
    case 2: return tq_ip_codes_t(q, cent, packed, d, 2);
    case 3: return tq_ip_codes_t(q, cent, packed, d, 3);
    case 4: return tq_ip_codes_t(q, cent, packed, d, 4);
    case 5: return tq_ip_codes_t(q, cent, packed, d, 5);
    case 6: return tq_ip_codes_t(q, cent, packed, d, 6);
    case 7: return tq_ip_codes_t(q, cent, packed, d, 7);
    default: return tq_ip_codes_t(q, cent, packed, d, 8);
    }
}

/* ---- ip_signs ---- */

/* p with its sign flipped where the sign bit is clear: byte b's bit i is moved
 * to bit 31 of lane i, inverted, and xored into p[i]. */
TQ_AVX2_INLINE __m256 tq_signed8(const float *p, uint32_t b) {
    const __m256i sh = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    __m256i s = _mm256_sllv_epi32(_mm256_set1_epi32((int)b), sh);
    __m256i flip = _mm256_andnot_si256(s, _mm256_set1_epi32(INT32_MIN));
    return _mm256_xor_ps(_mm256_loadu_ps(p), _mm256_castsi256_ps(flip));
}

TQ_AVX2_FMA static double ip_signs_avx2(const float *p, const uint8_t *signs, uint32_t d) {
    const uint32_t ng = d / 8;
    double total = 0.0;
    uint32_t g = 0;
    while (g < ng) {
        uint32_t gend = ng - g > TQ_BLOCK_GROUPS ? g + TQ_BLOCK_GROUPS : ng;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (; g + 4 <= gend; g += 4) {
            uint32_t w;
            memcpy(&w, signs + g, 4);
            a0 = _mm256_add_ps(a0, tq_signed8(p + 8 * g, w & 0xFFu));
            a1 = _mm256_add_ps(a1, tq_signed8(p + 8 * g + 8, (w >> 8) & 0xFFu));
            a2 = _mm256_add_ps(a2, tq_signed8(p + 8 * g + 16, (w >> 16) & 0xFFu));
            a3 = _mm256_add_ps(a3, tq_signed8(p + 8 * g + 24, w >> 24));
        }
        for (; g < gend; g++) a0 = _mm256_add_ps(a0, tq_signed8(p + 8 * g, signs[g]));
        total += tq_hsum_d(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    }
    for (uint32_t i = 8 * ng; i < d; i++) {
        double v = p[i];
        total += ((signs[i >> 3] >> (i & 7)) & 1u) ? v : -v;
    }
    return total;
}

/* The reference order exactly: lane k of the accumulator is partial sum k
 * (mul then add, no FMA), the tail goes to s0 in order. */
TQ_AVX2 static double dot_f64_avx2(const float *a, const float *b, uint32_t d) {
    __m256d acc = _mm256_setzero_pd();
    uint32_t j = 0;
    for (; j + 4 <= d; j += 4) {
        __m256d va = _mm256_cvtps_pd(_mm_loadu_ps(a + j)), vb = _mm256_cvtps_pd(_mm_loadu_ps(b + j));
        acc = _mm256_add_pd(acc, _mm256_mul_pd(va, vb));
    }
    double s[4];
    _mm256_storeu_pd(s, acc);
    for (; j < d; j++) s[0] += (double)a[j] * b[j];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Four dot_f64_avx2 sums side by side: the same lanes, order and tail, so each result is bit-identical. */
TQ_AVX2 static void dot_f64_x4_avx2(const float *const a[4], const float *const b[4], uint32_t d, double out[4]) {
    __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
    uint32_t j = 0;
    for (; j + 4 <= d; j += 4)
        for (int r = 0; r < 4; r++) {
            __m256d va = _mm256_cvtps_pd(_mm_loadu_ps(a[r] + j)), vb = _mm256_cvtps_pd(_mm_loadu_ps(b[r] + j));
            acc[r] = _mm256_add_pd(acc[r], _mm256_mul_pd(va, vb));
        }
    for (int r = 0; r < 4; r++) {
        double s[4];
        _mm256_storeu_pd(s, acc[r]);
        for (uint32_t t = j; t < d; t++) s[0] += (double)a[r][t] * b[r][t];
        out[r] = (s[0] + s[1]) + (s[2] + s[3]);
    }
}

TQ_AVX2 static uint32_t absmax_bits_avx2(const float *x, size_t n) {
    const __m256i mask = _mm256_set1_epi32(0x7fffffff);
    __m256i m0 = _mm256_setzero_si256(), m1 = m0;
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        m0 = _mm256_max_epu32(m0, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + j)), mask));
        m1 = _mm256_max_epu32(m1, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + j + 8)), mask));
    }
    m0 = _mm256_max_epu32(m0, m1);
    __m128i h = _mm_max_epu32(_mm256_castsi256_si128(m0), _mm256_extracti128_si256(m0, 1));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(1, 0, 3, 2)));
    h = _mm_max_epu32(h, _mm_shuffle_epi32(h, _MM_SHUFFLE(2, 3, 0, 1)));
    uint32_t r = (uint32_t)_mm_cvtsi128_si32(h);
    uint32_t t = tq_abs_bits_max(x + j, n - j);
    return t > r ? t : r;
}

TQ_AVX2 static void div_f32_avx2(const float *x, double s, uint32_t d, float *out) {
    const __m256d vs = _mm256_set1_pd(s);
    uint32_t j = 0;
    for (; j + 4 <= d; j += 4)
        _mm_storeu_ps(out + j, _mm256_cvtpd_ps(_mm256_div_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j)), vs)));
    for (; j < d; j++) out[j] = (float)((double)x[j] / s);
}

/* Tables of up to 16 floats live in two registers: a permute on the low 3 bits
 * of each index, a blend on bit 3. Larger tables (or any index >= 16) are plain
 * loads: the result is a copy either way. */
TQ_AVX2 static void lookup_avx2(const float *table, const uint8_t *idx, uint32_t d, float *out) {
    uint32_t j = 0;
    uint8_t mx = 0;
    for (uint32_t k = 0; k < d; k++) mx |= idx[k];
    if (mx < 16) {
        const __m256 lo = _mm256_loadu_ps(table);
        const __m256 hi = mx >= 8 ? _mm256_loadu_ps(table + 8) : lo;
        for (; j + 8 <= d; j += 8) {
            __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(idx + j)));
            __m256 a = _mm256_permutevar8x32_ps(lo, v), b = _mm256_permutevar8x32_ps(hi, v);
            __m256 sel = _mm256_castsi256_ps(_mm256_slli_epi32(v, 28)); /* bit 3 -> sign bit */
            _mm256_storeu_ps(out + j, _mm256_blendv_ps(a, b, sel));
        }
    }
    for (; j < d; j++) out[j] = table[idx[j]];
}

/* ---- KV attention: G queries share each decoded record ---- */

enum { TQ_KV_QBLOCK = 8 }; /* queries whose accumulators live in registers at once */

TQ_AVX2_FMA_INLINE void tq_kv_dots_t(const float *q, uint32_t G, const float *cent, const uint8_t *codes,
                                     size_t stride, size_t n, uint32_t d, float *dots, uint32_t BITS) {
    __m256 t[4];
    tq_lookup_table(cent, BITS, t);
    const uint32_t ng = d / 8;
    for (size_t i = 0; i < n; i++) {
        tq_planes pl;
        tq_planes_init(&pl, codes + i * stride, d, BITS);
        for (uint32_t g0 = 0; g0 < G; g0 += TQ_KV_QBLOCK) {
            uint32_t gn = G - g0 < TQ_KV_QBLOCK ? G - g0 : TQ_KV_QBLOCK;
            const float *qb = q + (size_t)g0 * d;
            double tot[TQ_KV_QBLOCK] = {0.0};
            uint32_t j = 0;
            while (j < ng) {
                uint32_t jend = ng - j > TQ_BLOCK_GROUPS ? j + TQ_BLOCK_GROUPS : ng;
                __m256 a[TQ_KV_QBLOCK];
                for (uint32_t k = 0; k < gn; k++) a[k] = _mm256_setzero_ps();
                for (; j < jend; j++) {
                    __m256 c = tq_lookup(t, cent, tq_group_idx(&pl, j, BITS), BITS);
                    for (uint32_t k = 0; k < gn; k++)
                        a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(qb + (size_t)k * d + 8 * j), c, a[k]);
                }
                for (uint32_t k = 0; k < gn; k++) tot[k] += tq_hsum_d(a[k]);
            }
            for (uint32_t jj = 8 * ng; jj < d; jj++) {
                float c = cent[tq_planes_index_at(&pl, jj)];
                for (uint32_t k = 0; k < gn; k++) tot[k] += (double)qb[(size_t)k * d + jj] * c;
            }
            for (uint32_t k = 0; k < gn; k++) dots[(size_t)(g0 + k) * n + i] = (float)tot[k];
        }
    }
}

TQ_AVX2_FMA static void kv_dots1_avx2(const float *q, uint32_t G, const float *cent, const uint8_t *rec, uint32_t d,
                          uint32_t bits, float *dots) {
    switch (bits) {
    case 1: tq_kv_dots_t(q, G, cent, rec, 0, 1, d, dots, 1); break;
    case 2: tq_kv_dots_t(q, G, cent, rec, 0, 1, d, dots, 2); break;
    case 3: tq_kv_dots_t(q, G, cent, rec, 0, 1, d, dots, 3); break;
    case 4: tq_kv_dots_t(q, G, cent, rec, 0, 1, d, dots, 4); break;
    case 5: tq_kv_dots_t(q, G, cent, rec, 0, 1, d, dots, 5); break;
    case 6: tq_kv_dots_t(q, G, cent, rec, 0, 1, d, dots, 6); break;
    case 7: tq_kv_dots_t(q, G, cent, rec, 0, 1, d, dots, 7); break;
    default: tq_kv_dots_t(q, G, cent, rec, 0, 1, d, dots, 8); break;
    }
}

/* The sums of a[0..GC) (GC <= 4) in lanes 0..GC-1. */
TQ_AVX2_FMA_INLINE __m128 tq_hsum4(const __m256 *a, uint32_t GC) {
    __m256 z = _mm256_setzero_ps();
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a[0], GC > 1 ? a[1] : z), _mm256_hadd_ps(GC > 2 ? a[2] : z, GC > 3 ? a[3] : z));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* One part's GC dot products with a record (indices at p), lanes not yet summed; d % 8 == 0. */
TQ_AVX2_FMA_INLINE void tq_part_dots(const float *restrict q, const uint8_t *p, uint32_t d, const __m256 *tab,
                                     const float *cent, __m256 *ap, uint32_t BITS, uint32_t GC) {
    tq_planes pl;
    tq_planes_init(&pl, p, d, BITS);
    for (uint32_t k = 0; k < GC; k++) ap[k] = _mm256_setzero_ps();
    for (uint32_t j = 0; j < d / 8; j++) {
        __m256 c = tq_lookup(tab, cent, tq_group_idx(&pl, j, BITS), BITS);
        for (uint32_t k = 0; k < GC; k++) ap[k] = _mm256_fmadd_ps(_mm256_loadu_ps(q + (size_t)k * d + 8 * j), c, ap[k]);
    }
}

/* Fused logits (as the AVX-512 table's): NP parts with B0 / B1 bits, GC (1..4) queries, part dims % 8 == 0;
 * the parts' fields in locals so that stores to out cannot force reloads. */
TQ_AVX2_FMA_INLINE void tq_kv_logits_t(const tq_kv_part *pp, const uint8_t *codes, size_t stride, size_t n,
                                       const float *bias, float *restrict out, size_t ostride, uint32_t NP,
                                       uint32_t B0, uint32_t B1, uint32_t GC) {
    __m256 t0[4], t1[4];
    tq_lookup_table(pp[0].cent, B0, t0);
    tq_lookup_table(NP > 1 ? pp[1].cent : pp[0].cent, B1, t1);
    const float *restrict q0 = pp[0].q, *restrict f0 = pp[0].f, *c0 = pp[0].cent;
    const float *restrict q1 = NP > 1 ? pp[1].q : q0, *restrict f1 = NP > 1 ? pp[1].f : f0;
    const float *c1 = NP > 1 ? pp[1].cent : c0;
    const size_t off0 = pp[0].off, off1 = NP > 1 ? pp[1].off : 0;
    const uint32_t d0 = pp[0].d, d1 = NP > 1 ? pp[1].d : 0;
    float b[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (uint32_t k = 0; k < GC; k++) b[k] = bias[k];
    for (size_t t = 0; t < n; t++) {
        const uint8_t *rec = codes + t * stride;
        __m256 a[4], ap[4];
        tq_part_dots(q0, rec + off0, d0, t0, c0, ap, B0, GC);
        __m256 s0 = _mm256_set1_ps(f0[t]);
        for (uint32_t k = 0; k < GC; k++) a[k] = _mm256_mul_ps(ap[k], s0);
        if (NP > 1) {
            tq_part_dots(q1, rec + off1, d1, t1, c1, ap, B1, GC);
            __m256 s1 = _mm256_set1_ps(f1[t]);
            for (uint32_t k = 0; k < GC; k++) a[k] = _mm256_fmadd_ps(ap[k], s1, a[k]);
        }
        float v[4];
        _mm_storeu_ps(v, _mm_add_ps(tq_hsum4(a, GC), _mm_loadu_ps(b)));
        for (uint32_t k = 0; k < GC; k++) out[k * ostride + t] = v[k];
    }
}

#define TQ_KV_LOGITS_G(NP, B0, B1)                                                                          \
    switch (G) {                                                                                            \
    case 1: tq_kv_logits_t(parts, codes, stride, n, bias, out, ostride, NP, B0, B1, 1); return 1;           \
    case 2: tq_kv_logits_t(parts, codes, stride, n, bias, out, ostride, NP, B0, B1, 2); return 1;           \
    case 3: tq_kv_logits_t(parts, codes, stride, n, bias, out, ostride, NP, B0, B1, 3); return 1;           \
    default: tq_kv_logits_t(parts, codes, stride, n, bias, out, ostride, NP, B0, B1, 4); return 1;          \
    }

/* The fused kernel for the shapes KV heads have: 1-4 query heads, part dims % 8 == 0, 1-4 bits, a second
 * part of one bit less (tq_config_set_bits' split). 1 when it ran. */
TQ_AVX2_FMA static int kv_logits_fast_avx2(const tq_kv_part *parts, uint32_t np, uint32_t G, const uint8_t *codes,
                                           size_t stride, size_t n, const float *bias, float *out, size_t ostride) {
    int fits = G >= 1 && G <= 4 && np >= 1 && np <= 2;
    for (uint32_t p = 0; p < np && fits; p++) fits = parts[p].d % 8 == 0 && parts[p].bits >= 1 && parts[p].bits <= 4;
    if (!fits) return 0;
    uint32_t b0 = parts[0].bits;
    if (np == 1) {
        switch (b0) {
        case 1: TQ_KV_LOGITS_G(1, 1, 1) break;
        case 2: TQ_KV_LOGITS_G(1, 2, 2) break;
        case 3: TQ_KV_LOGITS_G(1, 3, 3) break;
        default: TQ_KV_LOGITS_G(1, 4, 4) break;
        }
    }
    if (parts[1].bits + 1 == b0) {
        switch (b0) {
        case 2: TQ_KV_LOGITS_G(2, 2, 1) break;
        case 3: TQ_KV_LOGITS_G(2, 3, 2) break;
        case 4: TQ_KV_LOGITS_G(2, 4, 3) break;
        default: break;
        }
    }
    return 0;
}

/* Token by token: each part's G dots (one decode of the record shared by the G queries), then the factors. */
TQ_AVX2_FMA static void kv_logits_avx2(const tq_kv_part *parts, uint32_t np, uint32_t G, const uint8_t *codes,
                                       size_t stride, size_t n, const float *bias, uint8_t *scratch, float *out,
                                       size_t ostride) {
    (void)scratch;
    if (kv_logits_fast_avx2(parts, np, G, codes, stride, n, bias, out, ostride)) return;
    float dots[256];
    for (size_t t = 0; t < n; t++) {
        for (uint32_t g0 = 0; g0 < G; g0 += 128) {
            uint32_t gn = G - g0 < 128 ? G - g0 : 128;
            for (uint32_t g = 0; g < gn; g++) out[(g0 + g) * ostride + t] = bias[g0 + g];
            for (uint32_t p = 0; p < np; p++) {
                const tq_kv_part *pt = &parts[p];
                kv_dots1_avx2(pt->q + (size_t)g0 * pt->d, gn, pt->cent, codes + t * stride + pt->off, pt->d, pt->bits,
                              dots);
                for (uint32_t g = 0; g < gn; g++) out[(g0 + g) * ostride + t] += pt->f[t] * dots[g];
            }
        }
    }
}

TQ_AVX2_FMA_INLINE void tq_kv_accum_t(const float *w, uint32_t G, const float *cent, const uint8_t *codes,
                                      size_t stride, size_t n, uint32_t d, float *acc, uint32_t BITS) {
    __m256 t[4];
    tq_lookup_table(cent, BITS, t);
    const uint32_t ng = d / 8;
    for (size_t i = 0; i < n; i++) {
        tq_planes pl;
        tq_planes_init(&pl, codes + i * stride, d, BITS);
        for (uint32_t j = 0; j < ng; j++) {
            __m256 c = tq_lookup(t, cent, tq_group_idx(&pl, j, BITS), BITS);
            for (uint32_t g = 0; g < G; g++) {
                float *a = acc + (size_t)g * d + 8 * j;
                _mm256_storeu_ps(a, _mm256_fmadd_ps(_mm256_set1_ps(w[(size_t)g * n + i]), c, _mm256_loadu_ps(a)));
            }
        }
        for (uint32_t jj = 8 * ng; jj < d; jj++) {
            float c = cent[tq_planes_index_at(&pl, jj)];
            for (uint32_t g = 0; g < G; g++) acc[(size_t)g * d + jj] += w[(size_t)g * n + i] * c;
        }
    }
}

/* d % (8 * JB) == 0: JB coordinate groups x GC queries of accumulators in registers (<= 12 ymm), tokens inner,
 * so a token's GC * JB FMAs are independent of each other. */
TQ_AVX2_FMA_INLINE void tq_kv_accum_reg(const float *w, const float *cent, const uint8_t *codes, size_t stride,
                                        size_t n, uint32_t d, float *acc, uint32_t BITS, uint32_t GC, uint32_t JB) {
    __m256 tab[4];
    tq_lookup_table(cent, BITS, tab);
    for (uint32_t j0 = 0; j0 < d / 8; j0 += JB) {
        __m256 a[4][4];
        for (uint32_t k = 0; k < GC; k++)
            for (uint32_t jj = 0; jj < JB; jj++) a[k][jj] = _mm256_loadu_ps(acc + (size_t)k * d + 8 * (j0 + jj));
        for (size_t t = 0; t < n; t++) {
            tq_planes pl;
            tq_planes_init(&pl, codes + t * stride, d, BITS);
            __m256 wk[4];
            for (uint32_t k = 0; k < GC; k++) wk[k] = _mm256_set1_ps(w[(size_t)k * n + t]);
            for (uint32_t jj = 0; jj < JB; jj++) {
                __m256 c = tq_lookup(tab, cent, tq_group_idx(&pl, j0 + jj, BITS), BITS);
                for (uint32_t k = 0; k < GC; k++) a[k][jj] = _mm256_fmadd_ps(wk[k], c, a[k][jj]);
            }
        }
        for (uint32_t k = 0; k < GC; k++)
            for (uint32_t jj = 0; jj < JB; jj++) _mm256_storeu_ps(acc + (size_t)k * d + 8 * (j0 + jj), a[k][jj]);
    }
}

#define TQ_KV_ACCUM_G(BITS)                                                                                 \
    switch (G) {                                                                                            \
    case 1: tq_kv_accum_reg(w, cent, codes, stride, n, d, acc, BITS, 1, 4); return 1;                       \
    case 2: tq_kv_accum_reg(w, cent, codes, stride, n, d, acc, BITS, 2, 4); return 1;                       \
    case 3: tq_kv_accum_reg(w, cent, codes, stride, n, d, acc, BITS, 3, 4); return 1;                       \
    default: break;                                                                                         \
    }

/* 1-3 queries, 1-4 bits, d % 32 == 0 (64- and 128-channel heads and their halves). 1 when it ran. */
TQ_AVX2_FMA static int kv_accum_fast_avx2(const float *w, uint32_t G, const float *cent, const uint8_t *codes,
                                          size_t stride, size_t n, uint32_t d, uint32_t bits, float *acc) {
    if (G < 1 || G > 3 || d % 32 != 0 || bits < 1 || bits > 4) return 0;
    switch (bits) {
    case 1: TQ_KV_ACCUM_G(1) break;
    case 2: TQ_KV_ACCUM_G(2) break;
    case 3: TQ_KV_ACCUM_G(3) break;
    default: TQ_KV_ACCUM_G(4) break;
    }
    return 0;
}

TQ_AVX2_FMA static void kv_accum_avx2(const float *w, uint32_t G, const float *cent, const uint8_t *codes,
                                      size_t stride, size_t n, uint32_t d, uint32_t bits, uint8_t *scratch,
                                      float *acc) {
    (void)scratch;
    if (kv_accum_fast_avx2(w, G, cent, codes, stride, n, d, bits, acc)) return;
    switch (bits) {
    case 1: tq_kv_accum_t(w, G, cent, codes, stride, n, d, acc, 1); break;
    case 2: tq_kv_accum_t(w, G, cent, codes, stride, n, d, acc, 2); break;
    case 3: tq_kv_accum_t(w, G, cent, codes, stride, n, d, acc, 3); break;
    case 4: tq_kv_accum_t(w, G, cent, codes, stride, n, d, acc, 4); break;
    case 5: tq_kv_accum_t(w, G, cent, codes, stride, n, d, acc, 5); break;
    case 6: tq_kv_accum_t(w, G, cent, codes, stride, n, d, acc, 6); break;
    case 7: tq_kv_accum_t(w, G, cent, codes, stride, n, d, acc, 7); break;
    default: tq_kv_accum_t(w, G, cent, codes, stride, n, d, acc, 8); break;
    }
}

__attribute__((target("avx2,f16c"))) static void f16_load_avx2(const uint8_t *src, size_t stride, size_t n,
                                                                    float *out) {
    size_t t = 0;
    for (; t + 8 <= n; t += 8) {
        uint16_t h[8];
        for (int k = 0; k < 8; k++) memcpy(&h[k], src + (t + (size_t)k) * stride, 2);
        _mm256_storeu_ps(out + t, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)h)));
    }
    for (; t < n; t++) {
        uint16_t h;
        memcpy(&h, src + t * stride, 2);
        out[t] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
    }
}

/* exp(x) for x <= 0 (softmax weights): 2^k * p(r), r = x - k ln2 in two parts, a degree-6 polynomial; relative
 * error below 3e-7 down to x = -87, 0 below (exp underflows float there anyway). */
TQ_AVX2_FMA_INLINE __m256 tq_exp_neg(__m256 x) {
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

TQ_AVX2_FMA static float softmax_block_avx2(float *x, size_t n, float *m, double *sum) {
    __m256 vm = _mm256_set1_ps(*m);
    size_t t = 0;
    for (; t + 8 <= n; t += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + t));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    float mx = _mm_cvtss_f32(h);
    for (; t < n; t++) mx = x[t] > mx ? x[t] : mx;
    float rescale = *m == -INFINITY ? 0.0f : (float)exp((double)*m - (double)mx);
    __m256 bm = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
    for (t = 0; t + 8 <= n; t += 8) {
        __m256 e = tq_exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + t), bm));
        _mm256_storeu_ps(x + t, e);
        acc = _mm256_add_ps(acc, e);
    }
    double s = tq_hsum_d(acc);
    for (; t < n; t++) {
        x[t] = (float)exp((double)x[t] - (double)mx);
        s += x[t];
    }
    *m = mx;
    *sum = s;
    return rescale;
}

static const tq_kernel_table tq_avx2_table = {
    "avx2",       fwht_avx2,    dense_forward_avx2, nearest_avx2, ip_codes_avx2, ip_signs_avx2,
    dot_f64_avx2, div_f32_avx2, lookup_avx2,        kv_logits_avx2, kv_accum_avx2, f16_load_avx2, softmax_block_avx2,
    dot_f64_x4_avx2, absmax_bits_avx2,
};

const tq_kernel_table *tq_kernels_avx2(void) { return &tq_avx2_table; }

#else /* not x86-64 GCC/Clang */

const tq_kernel_table *tq_kernels_avx2(void) { return NULL; }

#endif
