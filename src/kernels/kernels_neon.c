/*
 * kernels_neon.c — the NEON (Advanced SIMD) kernel table, AArch64 with GCC or
 * Clang, little-endian.
 *
 * Advanced SIMD is part of every AArch64 CPU, so there is no CPU check: an
 * aarch64 build compiles this file with no extra flags and dispatch.c runs
 * its table unless TQ_FORCE_ISA=ref. On any other target (and on big-endian
 * AArch64, where the byte tricks below would read the wrong ends of floats)
 * the file is reduced to a NULL table.
 *
 * Rounding. AArch64 vector float instructions honour FPCR exactly as the
 * scalar ones do (unlike 32-bit NEON, which always flushed subnormals), and
 * Linux starts a process with round-to-nearest and FZ clear; so a vaddq_f32
 * rounds lane by lane as the ref's `a + b` does. AArch64 also has fused
 * multiply-add, and GCC writes vmulq / vaddq as plain C operators that
 * -ffp-contract=fast would fuse: the build passes -ffp-contract=off
 * (CMakeLists.txt), and the bit-identical kernels below use separate vmulq
 * and vaddq only, never vfmaq. (Where they multiply, the operands are floats
 * widened to double, whose product is exact, so even a fused add would round
 * the same; the rule is kept anyway.)
 *
 * What kernels.h requires bit for bit is computed with the ref's operations
 * on the same operands in the same order, more of them at once:
 *   - fwht: stages 1, 2, 4 of a block of 8 with three rounds of uzp1/uzp2
 *     (each pairs the lower element u with the upper v, then u + v, u - v),
 *     stages 8, 16, 32 across sixteen registers, later stages two per pass
 *     over memory; the same final float multiply by (float)(1/sqrt(len)).
 *   - dense_forward and dot_f64: two float64x2 accumulators are the ref's
 *     partial sums s0 s1 | s2 s3 (element j to sum j mod 4), the tail goes
 *     to s0.. as the ref does, and the sums combine as (s0+s1)+(s2+s3).
 *   - nearest: a count of bounds below y (an integer) by compare-and-count
 *     up to 32 levels, a branchless search above; both equal the ref's
 *     binary search on sorted bounds, NaN counting 0.
 *   - div_f32: double division and one rounding to float per lane (fdiv,
 *     fcvtn), the ref's expression.
 *   - lookup: a table of up to 64 floats is split into four byte planes (one
 *     vld4q_u8) and looked up with tbl: the bytes are copied, not computed.
 *   - f16_load: fcvtl converts every half exactly.
 * Scores (ip_codes, ip_signs, kv_logits) sum in float with FMA in blocks of
 * at most 512 coordinates, each block added to a double, so the tolerance of
 * kernels.h does not grow with d; kv_accum uses FMA per token; softmax_block
 * uses a polynomial exp (relative error below 3e-7) and sums in double.
 *
 * Indices are decoded straight from the packed planes (pack.h), 16
 * coordinates at a time, and centroids of codes up to 6 bits are looked up
 * by tbl from byte planes; 7- and 8-bit codes load their centroids one by
 * one. A coordinate past the last whole group of 16 takes the scalar path.
 */
#include "kernels.h"
#include "planes.h"

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define TQ_NEON_INLINE static inline __attribute__((always_inline))

/* ---- fwht ---- */

/* Stages h = 1, 2, 4 of the ref on x[0..8), held in *a (elements 0-3) and *b (4-7). */
TQ_NEON_INLINE void tq_fwht8(float32x4_t *a, float32x4_t *b) {
    float32x4_t u = vuzp1q_f32(*a, *b), v = vuzp2q_f32(*a, *b); /* x0 x2 x4 x6 | x1 x3 x5 x7 */
    float32x4_t s = vaddq_f32(u, v), d = vsubq_f32(u, v);       /* y0 y2 y4 y6 | y1 y3 y5 y7 */
    u = vuzp1q_f32(s, d);                                       /* y0 y4 y1 y5 */
    v = vuzp2q_f32(s, d);                                       /* y2 y6 y3 y7 */
    s = vaddq_f32(u, v);                                        /* z0 z4 z1 z5 */
    d = vsubq_f32(u, v);                                        /* z2 z6 z3 z7 */
    u = vuzp1q_f32(s, d);                                       /* z0 z1 z2 z3 */
    v = vuzp2q_f32(s, d);                                       /* z4 z5 z6 z7 */
    *a = vaddq_f32(u, v);
    *b = vsubq_f32(u, v);
}

/* The ref's butterfly: a <- a + b, b <- a - b. */
#define TQ_NBFLY(a, b)                \
    do {                              \
        float32x4_t t_ = (a);         \
        (a) = vaddq_f32(t_, (b));     \
        (b) = vsubq_f32(t_, (b));     \
    } while (0)

static void fwht_neon(float *x, uint32_t len) {
    if (len < 8) {
        tq_kernels_ref()->fwht(x, len);
        return;
    }
    const float scale = (float)(1.0 / sqrt((double)len)); /* the ref's expression */
    const float32x4_t vs = vdupq_n_f32(scale);
    if (len < 64) {
        for (uint32_t i = 0; i < len; i += 8) {
            float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + i + 4);
            tq_fwht8(&a, &b);
            if (len == 8) {
                a = vmulq_f32(a, vs);
                b = vmulq_f32(b, vs);
            }
            vst1q_f32(x + i, a);
            vst1q_f32(x + i + 4, b);
        }
        for (uint32_t h = 8; h < len; h *= 2) {
            int last = 2 * h == len;
            for (uint32_t i = 0; i < len; i += 2 * h) {
                for (uint32_t j = i; j < i + h; j += 4) {
                    float32x4_t a = vld1q_f32(x + j), b = vld1q_f32(x + j + h);
                    TQ_NBFLY(a, b);
                    if (last) {
                        a = vmulq_f32(a, vs);
                        b = vmulq_f32(b, vs);
                    }
                    vst1q_f32(x + j, a);
                    vst1q_f32(x + j + h, b);
                }
            }
        }
        return;
    }
    /* stages 1 .. 32 on chunks of 64 in sixteen registers (h = 8, 16, 32 are 2, 4, 8 registers apart) */
    for (uint32_t i = 0; i < len; i += 64) {
        float *p = x + i;
        float32x4_t r[16];
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++) r[k] = vld1q_f32(p + 4 * k);
#pragma GCC unroll 8
        for (int k = 0; k < 16; k += 2) tq_fwht8(&r[k], &r[k + 1]);
#pragma GCC unroll 4
        for (int k = 0; k < 16; k += 4) {
            TQ_NBFLY(r[k], r[k + 2]);
            TQ_NBFLY(r[k + 1], r[k + 3]);
        }
#pragma GCC unroll 2
        for (int k0 = 0; k0 < 16; k0 += 8) {
#pragma GCC unroll 4
            for (int k = k0; k < k0 + 4; k++) TQ_NBFLY(r[k], r[k + 4]);
        }
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) TQ_NBFLY(r[k], r[k + 8]);
        if (len == 64) {
#pragma GCC unroll 16
            for (int k = 0; k < 16; k++) r[k] = vmulq_f32(r[k], vs);
        }
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++) vst1q_f32(p + 4 * k, r[k]);
    }
    /* the remaining stages two at a time (h and 2h), or the last one alone */
    uint32_t h = 64;
    while (h < len) {
        if (4 * h <= len) {
            int last = 4 * h == len;
            for (uint32_t i = 0; i < len; i += 4 * h) {
                float *pa = x + i, *pb = pa + h, *pc = pb + h, *pd = pc + h;
                for (uint32_t j = 0; j < h; j += 4) {
                    float32x4_t a = vld1q_f32(pa + j), b = vld1q_f32(pb + j);
                    float32x4_t c = vld1q_f32(pc + j), d = vld1q_f32(pd + j);
                    TQ_NBFLY(a, b); /* stage h */
                    TQ_NBFLY(c, d);
                    TQ_NBFLY(a, c); /* stage 2h */
                    TQ_NBFLY(b, d);
                    if (last) {
                        a = vmulq_f32(a, vs);
                        b = vmulq_f32(b, vs);
                        c = vmulq_f32(c, vs);
                        d = vmulq_f32(d, vs);
                    }
                    vst1q_f32(pa + j, a);
                    vst1q_f32(pb + j, b);
                    vst1q_f32(pc + j, c);
                    vst1q_f32(pd + j, d);
                }
            }
            h *= 4;
        } else { /* 2h == len */
            for (uint32_t j = 0; j < h; j += 4) {
                float32x4_t a = vld1q_f32(x + j), b = vld1q_f32(x + h + j);
                TQ_NBFLY(a, b);
                vst1q_f32(x + j, vmulq_f32(a, vs));
                vst1q_f32(x + h + j, vmulq_f32(b, vs));
            }
            h *= 2;
        }
    }
}

/* ---- dense_forward, dot_f64 ---- */

/* lo += (double)r[0..2) * xl, hi += (double)r[2..4) * xh: partial sums s0 s1 | s2 s3, mul then add. */
TQ_NEON_INLINE void tq_acc4(float64x2_t *lo, float64x2_t *hi, const float *r, float64x2_t xl, float64x2_t xh) {
    float32x4_t v = vld1q_f32(r);
    *lo = vaddq_f64(*lo, vmulq_f64(vcvt_f64_f32(vget_low_f32(v)), xl));
    *hi = vaddq_f64(*hi, vmulq_f64(vcvt_high_f64_f32(v), xh));
}

/* The accumulators are the ref's s0..s3 after the whole groups of four; add the tail elements j..dim-1
 * to s0, s1, s2 and combine as the ref does. */
TQ_NEON_INLINE float tq_dense_finish(float64x2_t lo, float64x2_t hi, const float *row, const float *x, uint32_t j,
                                     uint32_t dim) {
    double s0 = vgetq_lane_f64(lo, 0), s1 = vgetq_lane_f64(lo, 1);
    double s2 = vgetq_lane_f64(hi, 0), s3 = vgetq_lane_f64(hi, 1);
    if (j < dim) s0 += (double)row[j] * (double)x[j];
    if (j + 1 < dim) s1 += (double)row[j + 1] * (double)x[j + 1];
    if (j + 2 < dim) s2 += (double)row[j + 2] * (double)x[j + 2];
    return (float)((s0 + s1) + (s2 + s3));
}

static void dense_forward_neon(const float *M, uint32_t dim, const float *x, float *y) {
    const uint32_t j4 = dim & ~3u;
    const float64x2_t z = vdupq_n_f64(0.0);
    uint32_t i = 0;
    /* four rows share each load and widening of x */
    for (; i + 4 <= dim; i += 4) {
        const float *r0 = M + (size_t)i * dim, *r1 = r0 + dim, *r2 = r1 + dim, *r3 = r2 + dim;
        float64x2_t l0 = z, h0 = z, l1 = z, h1 = z, l2 = z, h2 = z, l3 = z, h3 = z;
        for (uint32_t j = 0; j < j4; j += 4) {
            float32x4_t xv = vld1q_f32(x + j);
            float64x2_t xl = vcvt_f64_f32(vget_low_f32(xv)), xh = vcvt_high_f64_f32(xv);
            tq_acc4(&l0, &h0, r0 + j, xl, xh);
            tq_acc4(&l1, &h1, r1 + j, xl, xh);
            tq_acc4(&l2, &h2, r2 + j, xl, xh);
            tq_acc4(&l3, &h3, r3 + j, xl, xh);
        }
        y[i] = tq_dense_finish(l0, h0, r0, x, j4, dim);
        y[i + 1] = tq_dense_finish(l1, h1, r1, x, j4, dim);
        y[i + 2] = tq_dense_finish(l2, h2, r2, x, j4, dim);
        y[i + 3] = tq_dense_finish(l3, h3, r3, x, j4, dim);
    }
    for (; i < dim; i++) {
        const float *r0 = M + (size_t)i * dim;
        float64x2_t l0 = z, h0 = z;
        for (uint32_t j = 0; j < j4; j += 4) {
            float32x4_t xv = vld1q_f32(x + j);
            tq_acc4(&l0, &h0, r0 + j, vcvt_f64_f32(vget_low_f32(xv)), vcvt_high_f64_f32(xv));
        }
        y[i] = tq_dense_finish(l0, h0, r0, x, j4, dim);
    }
}

/* The ref's order exactly: b's lanes widened (its `(double)a[j] * b[j]`), mul then add, tail to s0. */
static double dot_f64_neon(const float *a, const float *b, uint32_t d) {
    float64x2_t lo = vdupq_n_f64(0.0), hi = lo;
    uint32_t j = 0;
    for (; j + 4 <= d; j += 4) {
        float32x4_t vb = vld1q_f32(b + j);
        tq_acc4(&lo, &hi, a + j, vcvt_f64_f32(vget_low_f32(vb)), vcvt_high_f64_f32(vb));
    }
    double s0 = vgetq_lane_f64(lo, 0), s1 = vgetq_lane_f64(lo, 1);
    double s2 = vgetq_lane_f64(hi, 0), s3 = vgetq_lane_f64(hi, 1);
    for (; j < d; j++) s0 += (double)a[j] * b[j];
    return (s0 + s1) + (s2 + s3);
}

/* Four dot_f64_neon sums, one after another (bit-identical by construction). */
static void dot_f64_x4_neon(const float *const a[4], const float *const b[4], uint32_t d, double out[4]) {
    for (int r = 0; r < 4; r++) out[r] = dot_f64_neon(a[r], b[r], d);
}

static uint32_t absmax_bits_neon(const float *x, size_t n) {
    const uint32x4_t mask = vdupq_n_u32(0x7fffffffu);
    uint32x4_t m0 = vdupq_n_u32(0), m1 = m0;
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        m0 = vmaxq_u32(m0, vandq_u32(vld1q_u32((const uint32_t *)(x + j)), mask));
        m1 = vmaxq_u32(m1, vandq_u32(vld1q_u32((const uint32_t *)(x + j + 4)), mask));
    }
    uint32_t r = vmaxvq_u32(vmaxq_u32(m0, m1)), t = tq_abs_bits_max(x + j, n - j);
    return t > r ? t : r;
}

/* ---- div_f32 ---- */

static void div_f32_neon(const float *x, double s, uint32_t d, float *out) {
    const float64x2_t vs = vdupq_n_f64(s);
    uint32_t j = 0;
    for (; j + 4 <= d; j += 4) { /* all four read before any is written: in place is fine */
        float32x4_t v = vld1q_f32(x + j);
        float32x2_t lo = vcvt_f32_f64(vdivq_f64(vcvt_f64_f32(vget_low_f32(v)), vs));
        vst1q_f32(out + j, vcvt_high_f32_f64(lo, vdivq_f64(vcvt_high_f64_f32(v), vs)));
    }
    for (; j < d; j++) out[j] = (float)((double)x[j] / s);
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

enum { TQ_NEON_COUNT_LEVELS = 32 }; /* compare-and-count up to here: 4 lanes, so half of AVX2's 64 (not measured) */

static void nearest_neon(const float *bounds, uint32_t levels, const float *y, uint32_t d, uint8_t *idx) {
    const uint32_t nb = levels - 1; /* bounds in use */
    uint32_t j = 0;
    if (levels <= TQ_NEON_COUNT_LEVELS) {
        /* bound < y is all ones in a lane (NaN: false); subtracting the mask adds 1 */
        for (; j + 8 <= d; j += 8) {
            float32x4_t v0 = vld1q_f32(y + j), v1 = vld1q_f32(y + j + 4);
            uint32x4_t c0 = vdupq_n_u32(0), c1 = c0;
            for (uint32_t k = 0; k < nb; k++) {
                float32x4_t b = vld1q_dup_f32(bounds + k);
                c0 = vsubq_u32(c0, vcltq_f32(b, v0));
                c1 = vsubq_u32(c1, vcltq_f32(b, v1));
            }
            vst1_u8(idx + j, vmovn_u16(vcombine_u16(vmovn_u32(c0), vmovn_u32(c1))));
        }
        for (; j < d; j++) idx[j] = tq_nearest1(bounds, levels, y[j]);
        return;
    }
    /* branchless search over the bounds padded with +inf to 2*top - 1 entries (+inf is below no value, and
     * no bound is below NaN): pos counts the bounds known to be below v and tries pos + step for
     * step = top .. 1. For sorted bounds this is the ref's count. */
    float tab[256];
    uint32_t top = 1;
    while (2 * top <= nb) top *= 2;
    memcpy(tab, bounds, nb * sizeof(float));
    for (uint32_t k = nb; k < 2 * top - 1; k++) tab[k] = INFINITY;
    for (; j < d; j++) {
        float v = y[j];
        uint32_t pos = 0;
        for (uint32_t step = top; step; step >>= 1) pos += tab[pos + step - 1] < v ? step : 0;
        idx[j] = (uint8_t)pos;
    }
}

/* ---- packed indices and centroid lookup, 16 coordinates at a time ---- */

/* The planes of a record's packed indices (pack.h: widths taken greedily from 4, 2, 1, or one plane of 8;
 * the widest holds the lowest bits). */
/* The W-bit values of coordinates 16g .. 16g+15 in one plane, one per byte. A group takes 2W whole bytes,
 * so nothing past the plane is read. */
TQ_NEON_INLINE uint8x16_t tq_plane16(const uint8_t *plane, uint32_t g, uint32_t W) {
    if (W == 8) return vld1q_u8(plane + 16 * (size_t)g);
    if (W == 4) { /* byte k: coordinate 2k in the low nibble, 2k+1 in the high */
        uint8x8_t b = vld1_u8(plane + 8 * (size_t)g);
        uint8x8_t lo = vand_u8(b, vdup_n_u8(15)), hi = vshr_n_u8(b, 4);
        return vcombine_u8(vzip1_u8(lo, hi), vzip2_u8(lo, hi));
    }
    if (W == 2) { /* each of 4 bytes copied to 4 lanes, shifted right by 0, 2, 4, 6 */
        static const uint8_t spread[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
        static const int8_t sh[16] = {0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6};
        uint32_t v;
        memcpy(&v, plane + 4 * (size_t)g, 4);
        uint8x16_t r = vqtbl1q_u8(vreinterpretq_u8_u32(vdupq_n_u32(v)), vld1q_u8(spread));
        return vandq_u8(vshlq_u8(r, vld1q_s8(sh)), vdupq_n_u8(3));
    }
    /* W == 1: each of 2 bytes copied to 8 lanes, shifted right by 0 .. 7 */
    static const uint8_t spread1[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    static const int8_t sh1[16] = {0, -1, -2, -3, -4, -5, -6, -7, 0, -1, -2, -3, -4, -5, -6, -7};
    uint16_t u;
    memcpy(&u, plane + 2 * (size_t)g, 2);
    uint8x16_t r = vqtbl1q_u8(vreinterpretq_u8_u16(vdupq_n_u16(u)), vld1q_u8(spread1));
    return vandq_u8(vshlq_u8(r, vld1q_s8(sh1)), vdupq_n_u8(1));
}

/* The indices of group g for a constant BITS (plane widths as in tq_planes_init). */
TQ_NEON_INLINE uint8x16_t tq_group16(const tq_planes *pl, uint32_t g, uint32_t BITS) {
    if (BITS == 1 || BITS == 2 || BITS == 4 || BITS == 8) return tq_plane16(pl->p[0], g, BITS);
    if (BITS == 3) return vorrq_u8(tq_plane16(pl->p[0], g, 2), vshlq_n_u8(tq_plane16(pl->p[1], g, 1), 2));
    if (BITS == 5) return vorrq_u8(tq_plane16(pl->p[0], g, 4), vshlq_n_u8(tq_plane16(pl->p[1], g, 1), 4));
    if (BITS == 6) return vorrq_u8(tq_plane16(pl->p[0], g, 4), vshlq_n_u8(tq_plane16(pl->p[1], g, 2), 4));
    /* 7 */
    return vorrq_u8(vorrq_u8(tq_plane16(pl->p[0], g, 4), vshlq_n_u8(tq_plane16(pl->p[1], g, 2), 4)),
                    vshlq_n_u8(tq_plane16(pl->p[2], g, 1), 6));
}

/* Up to 64 floats as four byte planes: b[k].val[c] holds byte k of entries 16c .. 16c+15. */
typedef struct tq_ntab {
    uint8x16x4_t b[4];
} tq_ntab;

/* The planes of the first `levels` (<= 64) floats of src, zero above: entries 16, 32 or 64 (the least
 * of them >= levels) are set, those that tq_ntab_lookup with that ENTRIES reads. */
TQ_NEON_INLINE void tq_ntab_init(tq_ntab *t, const float *src, uint32_t levels) {
    float f[64];
    int chunks = levels <= 16 ? 1 : levels <= 32 ? 2 : 4;
    memset(f, 0, (size_t)chunks * 16 * sizeof(float));
    memcpy(f, src, levels * sizeof(float));
    for (int c = 0; c < chunks; c++) {
        uint8x16x4_t v = vld4q_u8((const uint8_t *)(f + 16 * c)); /* v.val[k]: byte k of 16 floats */
        for (int k = 0; k < 4; k++) t->b[k].val[c] = v.val[k];
    }
}

/* The 16 floats src[idx[i]] (ENTRIES = 16, 32 or 64, all idx < ENTRIES) from the byte planes: four table
 * lookups, then the bytes interleaved back into floats. */
TQ_NEON_INLINE void tq_ntab_lookup(const tq_ntab *t, uint8x16_t idx, float32x4_t c[4], uint32_t ENTRIES) {
    uint8x16_t y[4];
    for (int k = 0; k < 4; k++) {
        if (ENTRIES <= 16) {
            y[k] = vqtbl1q_u8(t->b[k].val[0], idx);
        } else if (ENTRIES <= 32) {
            uint8x16x2_t tb = {{t->b[k].val[0], t->b[k].val[1]}};
            y[k] = vqtbl2q_u8(tb, idx);
        } else {
            y[k] = vqtbl4q_u8(t->b[k], idx);
        }
    }
    uint16x8_t lo01 = vreinterpretq_u16_u8(vzip1q_u8(y[0], y[1])), hi01 = vreinterpretq_u16_u8(vzip2q_u8(y[0], y[1]));
    uint16x8_t lo23 = vreinterpretq_u16_u8(vzip1q_u8(y[2], y[3])), hi23 = vreinterpretq_u16_u8(vzip2q_u8(y[2], y[3]));
    c[0] = vreinterpretq_f32_u16(vzip1q_u16(lo01, lo23));
    c[1] = vreinterpretq_f32_u16(vzip2q_u16(lo01, lo23));
    c[2] = vreinterpretq_f32_u16(vzip1q_u16(hi01, hi23));
    c[3] = vreinterpretq_f32_u16(vzip2q_u16(hi01, hi23));
}

/* cent[idx] for the 16 indices of a group: from the byte planes up to 6 bits, one load each above. */
TQ_NEON_INLINE void tq_cent16(const tq_ntab *t, const float *cent, uint8x16_t idx, float32x4_t c[4], uint32_t BITS) {
    if (BITS <= 6) {
        tq_ntab_lookup(t, idx, c, BITS <= 4 ? 16 : BITS == 5 ? 32 : 64);
        return;
    }
    uint8_t k[16];
    float f[16];
    vst1q_u8(k, idx);
    for (int i = 0; i < 16; i++) f[i] = cent[k[i]];
    for (int i = 0; i < 4; i++) c[i] = vld1q_f32(f + 4 * i);
}

TQ_NEON_INLINE void tq_cent_table(tq_ntab *t, const float *cent, uint32_t BITS) {
    if (BITS <= 6) tq_ntab_init(t, cent, 1u << BITS);
}

/* The sum of a float32x4 in double. */
TQ_NEON_INLINE double tq_hsum_d(float32x4_t a) {
    float64x2_t s = vaddq_f64(vcvt_f64_f32(vget_low_f32(a)), vcvt_high_f64_f32(a));
    return vgetq_lane_f64(s, 0) + vgetq_lane_f64(s, 1);
}

enum { TQ_NEON_BLOCK = 32 }; /* groups of 16 per float block: 512 coordinates */

/* ---- ip_codes ---- */

TQ_NEON_INLINE double tq_ip_codes_t(const float *q, const float *cent, const uint8_t *packed, uint32_t d,
                                    uint32_t BITS) {
    tq_planes pl;
    tq_planes_init(&pl, packed, d, BITS);
    tq_ntab t;
    tq_cent_table(&t, cent, BITS);
    const uint32_t ng = d / 16;
    double total = 0.0;
    uint32_t g = 0;
    while (g < ng) {
        uint32_t gend = ng - g > TQ_NEON_BLOCK ? g + TQ_NEON_BLOCK : ng;
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (; g < gend; g++) {
            float32x4_t c[4];
            tq_cent16(&t, cent, tq_group16(&pl, g, BITS), c, BITS);
            const float *qg = q + 16 * (size_t)g;
            a0 = vfmaq_f32(a0, vld1q_f32(qg), c[0]);
            a1 = vfmaq_f32(a1, vld1q_f32(qg + 4), c[1]);
            a2 = vfmaq_f32(a2, vld1q_f32(qg + 8), c[2]);
            a3 = vfmaq_f32(a3, vld1q_f32(qg + 12), c[3]);
        }
        total += tq_hsum_d(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    }
    for (uint32_t j = 16 * ng; j < d; j++) total += (double)q[j] * cent[tq_planes_index_at(&pl, j)];
    return total;
}

static double ip_codes_neon(const float *q, const float *cent, const uint8_t *packed, uint32_t d, uint32_t bits,
                            uint8_t *scratch) {
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

/* p[0..8) with the sign flipped where bit i of byte b is clear. */
TQ_NEON_INLINE void tq_signed8(const float *p, uint32_t b, float32x4_t *lo, float32x4_t *hi) {
    static const uint32_t bit[8] = {1, 2, 4, 8, 16, 32, 64, 128};
    const uint32x4_t sign = vdupq_n_u32(0x80000000u), vb = vdupq_n_u32(b);
    uint32x4_t f0 = vbicq_u32(sign, vtstq_u32(vb, vld1q_u32(bit)));
    uint32x4_t f1 = vbicq_u32(sign, vtstq_u32(vb, vld1q_u32(bit + 4)));
    *lo = vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(vld1q_f32(p)), f0));
    *hi = vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(vld1q_f32(p + 4)), f1));
}

static double ip_signs_neon(const float *p, const uint8_t *signs, uint32_t d) {
    const uint32_t ng = d / 16; /* 16 coordinates (two sign bytes) per step */
    double total = 0.0;
    uint32_t g = 0;
    while (g < ng) {
        uint32_t gend = ng - g > TQ_NEON_BLOCK ? g + TQ_NEON_BLOCK : ng;
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (; g < gend; g++) {
            float32x4_t v0, v1, v2, v3;
            tq_signed8(p + 16 * (size_t)g, signs[2 * (size_t)g], &v0, &v1);
            tq_signed8(p + 16 * (size_t)g + 8, signs[2 * (size_t)g + 1], &v2, &v3);
            a0 = vaddq_f32(a0, v0);
            a1 = vaddq_f32(a1, v1);
            a2 = vaddq_f32(a2, v2);
            a3 = vaddq_f32(a3, v3);
        }
        total += tq_hsum_d(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    }
    for (uint32_t i = 16 * ng; i < d; i++) {
        double v = p[i];
        total += ((signs[i >> 3] >> (i & 7)) & 1u) ? v : -v;
    }
    return total;
}

/* ---- lookup ---- */

static void lookup_neon(const float *table, const uint8_t *idx, uint32_t d, float *out) {
    uint32_t j = 0;
    if (d >= 16) {
        /* the largest index decides which byte-plane table fits; table holds max(16, max + 1) floats */
        uint8x16_t m = vld1q_u8(idx);
        for (uint32_t k = 16; k + 16 <= d; k += 16) m = vmaxq_u8(m, vld1q_u8(idx + k));
        uint32_t mx = vmaxvq_u8(m);
        for (uint32_t k = d & ~15u; k < d; k++) mx = idx[k] > mx ? idx[k] : mx;
        if (mx < 64) {
            tq_ntab t;
            tq_ntab_init(&t, table, mx < 16 ? 16 : mx + 1);
            for (; j + 16 <= d; j += 16) {
                float32x4_t c[4];
                uint8x16_t v = vld1q_u8(idx + j);
                if (mx < 16) tq_ntab_lookup(&t, v, c, 16);
                else if (mx < 32) tq_ntab_lookup(&t, v, c, 32);
                else tq_ntab_lookup(&t, v, c, 64);
                for (int k = 0; k < 4; k++) vst1q_f32(out + j + 4 * k, c[k]);
            }
        }
    }
    for (; j < d; j++) out[j] = table[idx[j]];
}

/* ---- KV attention: G queries share each decoded record ---- */

enum { TQ_NEON_QBLOCK = 8 }; /* queries whose accumulators are live at once */

/* dots[k] = sum_j q[k * d + j] * cent[idx_j] (k < gn <= TQ_NEON_QBLOCK) for one record whose planes start at
 * rec; float blocks of 512 coordinates summed in double, then rounded to float as the ref's dot. */
TQ_NEON_INLINE void tq_kv_dots_t(const float *q, uint32_t gn, const float *cent, const tq_ntab *t,
                                 const uint8_t *rec, uint32_t d, float *dots, uint32_t BITS) {
    tq_planes pl;
    tq_planes_init(&pl, rec, d, BITS);
    const uint32_t ng = d / 16;
    double tot[TQ_NEON_QBLOCK];
    for (uint32_t k = 0; k < gn; k++) tot[k] = 0.0;
    uint32_t j = 0;
    while (j < ng) {
        uint32_t jend = ng - j > TQ_NEON_BLOCK ? j + TQ_NEON_BLOCK : ng;
        float32x4_t a[TQ_NEON_QBLOCK];
        for (uint32_t k = 0; k < gn; k++) a[k] = vdupq_n_f32(0.0f);
        for (; j < jend; j++) {
            float32x4_t c[4];
            tq_cent16(t, cent, tq_group16(&pl, j, BITS), c, BITS);
            for (uint32_t k = 0; k < gn; k++) {
                const float *qk = q + (size_t)k * d + 16 * (size_t)j;
                float32x4_t s = vmulq_f32(vld1q_f32(qk), c[0]);
                s = vfmaq_f32(s, vld1q_f32(qk + 4), c[1]);
                s = vfmaq_f32(s, vld1q_f32(qk + 8), c[2]);
                s = vfmaq_f32(s, vld1q_f32(qk + 12), c[3]);
                a[k] = vaddq_f32(a[k], s);
            }
        }
        for (uint32_t k = 0; k < gn; k++) tot[k] += tq_hsum_d(a[k]);
    }
    for (uint32_t jj = 16 * ng; jj < d; jj++) {
        float c = cent[tq_planes_index_at(&pl, jj)];
        for (uint32_t k = 0; k < gn; k++) tot[k] += (double)q[(size_t)k * d + jj] * c;
    }
    for (uint32_t k = 0; k < gn; k++) dots[k] = (float)tot[k];
}

/* One part of every record: out[g * ostride + t] = (bias ? bias[g] : out[...]) + f[t] * dot_g(t), the
 * ref's float step for that part. */
TQ_NEON_INLINE void tq_kv_part_t(const tq_kv_part *pt, uint32_t G, const uint8_t *codes, size_t stride, size_t n,
                                 const float *bias, float *out, size_t ostride, uint32_t BITS) {
    tq_ntab t;
    tq_cent_table(&t, pt->cent, BITS);
    float dots[TQ_NEON_QBLOCK];
    for (size_t i = 0; i < n; i++) {
        const uint8_t *rec = codes + i * stride + pt->off;
        for (uint32_t g0 = 0; g0 < G; g0 += TQ_NEON_QBLOCK) {
            uint32_t gn = G - g0 < TQ_NEON_QBLOCK ? G - g0 : TQ_NEON_QBLOCK;
            tq_kv_dots_t(pt->q + (size_t)g0 * pt->d, gn, pt->cent, &t, rec, pt->d, dots, BITS);
            for (uint32_t k = 0; k < gn; k++) {
                float *o = out + (size_t)(g0 + k) * ostride + i;
                *o = (bias ? bias[g0 + k] : *o) + pt->f[i] * dots[k];
            }
        }
    }
}

static void kv_part_neon(const tq_kv_part *pt, uint32_t G, const uint8_t *codes, size_t stride, size_t n,
                         const float *bias, float *out, size_t ostride) {
    switch (pt->bits) {
    case 1: tq_kv_part_t(pt, G, codes, stride, n, bias, out, ostride, 1); break;
    case 2: tq_kv_part_t(pt, G, codes, stride, n, bias, out, ostride, 2); break;
    case 3: tq_kv_part_t(pt, G, codes, stride, n, bias, out, ostride, 3); break;
    case 4: tq_kv_part_t(pt, G, codes, stride, n, bias, out, ostride, 4); break;
    case 5: tq_kv_part_t(pt, G, codes, stride, n, bias, out, ostride, 5); break;
    case 6: tq_kv_part_t(pt, G, codes, stride, n, bias, out, ostride, 6); break;
    case 7: tq_kv_part_t(pt, G, codes, stride, n, bias, out, ostride, 7); break;
    default: tq_kv_part_t(pt, G, codes, stride, n, bias, out, ostride, 8); break;
    }
}

/* Part by part over all records: (bias + f_0 dot_0) + f_1 dot_1 in float, the ref's order. */
static void kv_logits_neon(const tq_kv_part *parts, uint32_t np, uint32_t G, const uint8_t *codes, size_t stride,
                           size_t n, const float *bias, uint8_t *scratch, float *out, size_t ostride) {
    (void)scratch;
    if (np == 0) {
        for (uint32_t g = 0; g < G; g++)
            for (size_t i = 0; i < n; i++) out[(size_t)g * ostride + i] = bias[g];
        return;
    }
    for (uint32_t p = 0; p < np; p++) kv_part_neon(&parts[p], G, codes, stride, n, p == 0 ? bias : NULL, out, ostride);
}

TQ_NEON_INLINE void tq_kv_accum_t(const float *w, uint32_t G, const float *cent, const uint8_t *codes, size_t stride,
                                  size_t n, uint32_t d, float *acc, uint32_t BITS) {
    tq_ntab t;
    tq_cent_table(&t, cent, BITS);
    const uint32_t ng = d / 16;
    for (size_t i = 0; i < n; i++) {
        tq_planes pl;
        tq_planes_init(&pl, codes + i * stride, d, BITS);
        for (uint32_t j = 0; j < ng; j++) {
            float32x4_t c[4];
            tq_cent16(&t, cent, tq_group16(&pl, j, BITS), c, BITS);
            for (uint32_t g = 0; g < G; g++) {
                float wg = w[(size_t)g * n + i];
                float *a = acc + (size_t)g * d + 16 * (size_t)j;
                for (int k = 0; k < 4; k++) vst1q_f32(a + 4 * k, vfmaq_n_f32(vld1q_f32(a + 4 * k), c[k], wg));
            }
        }
        for (uint32_t jj = 16 * ng; jj < d; jj++) {
            float c = cent[tq_planes_index_at(&pl, jj)];
            for (uint32_t g = 0; g < G; g++) acc[(size_t)g * d + jj] += w[(size_t)g * n + i] * c;
        }
    }
}

static void kv_accum_neon(const float *w, uint32_t G, const float *cent, const uint8_t *codes, size_t stride, size_t n,
                          uint32_t d, uint32_t bits, uint8_t *scratch, float *acc) {
    (void)scratch;
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

/* ---- f16_load, softmax_block ---- */

static void f16_load_neon(const uint8_t *src, size_t stride, size_t n, float *out) {
    size_t t = 0;
    for (; t + 8 <= n; t += 8) {
        uint16_t h[8];
        for (int k = 0; k < 8; k++) h[k] = tq_get_u16(src + (t + (size_t)k) * stride);
        uint16x8_t v = vld1q_u16(h);
        vst1q_f32(out + t, vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(v))));
        vst1q_f32(out + t + 4, vcvt_high_f32_f16(vreinterpretq_f16_u16(v)));
    }
    for (; t < n; t++) out[t] = tq_f16_to_f32(tq_get_u16(src + t * stride));
}

/* exp(x) for x <= 0: 2^k * p(r), k = round(x / ln2), r = x - k ln2 (ln2 in two parts), p of degree 7 in r;
 * relative error below 3e-7 down to x = -87, 0 below (where exp underflows float anyway). */
TQ_NEON_INLINE float32x4_t tq_exp_neg(float32x4_t x) {
    uint32x4_t under = vcltq_f32(x, vdupq_n_f32(-87.0f));
    x = vmaxq_f32(x, vdupq_n_f32(-87.0f));
    float32x4_t k = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, k, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, k, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), vmulq_f32(p, r), r);
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127)), 23);
    float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), under));
}

static float softmax_block_neon(float *x, size_t n, float *m, double *sum) {
    float32x4_t vm = vdupq_n_f32(*m);
    size_t t = 0;
    for (; t + 4 <= n; t += 4) vm = vmaxq_f32(vm, vld1q_f32(x + t));
    float mx = vmaxvq_f32(vm);
    for (; t < n; t++) mx = x[t] > mx ? x[t] : mx;
    float rescale = *m == -INFINITY ? 0.0f : (float)exp((double)*m - (double)mx);
    const float32x4_t bm = vdupq_n_f32(mx);
    float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0; /* the weights summed in double */
    for (t = 0; t + 4 <= n; t += 4) {
        float32x4_t e = tq_exp_neg(vsubq_f32(vld1q_f32(x + t), bm));
        vst1q_f32(x + t, e);
        s0 = vaddq_f64(s0, vcvt_f64_f32(vget_low_f32(e)));
        s1 = vaddq_f64(s1, vcvt_high_f64_f32(e));
    }
    float64x2_t s2 = vaddq_f64(s0, s1);
    double s = vgetq_lane_f64(s2, 0) + vgetq_lane_f64(s2, 1);
    for (; t < n; t++) {
        x[t] = (float)exp((double)x[t] - (double)mx);
        s += x[t];
    }
    *m = mx;
    *sum = s;
    return rescale;
}

static const tq_kernel_table tq_neon_table = {
    "neon",       fwht_neon,    dense_forward_neon, nearest_neon,   ip_codes_neon, ip_signs_neon,
    dot_f64_neon, div_f32_neon, lookup_neon,        kv_logits_neon, kv_accum_neon, f16_load_neon, softmax_block_neon,
    dot_f64_x4_neon, absmax_bits_neon,
};

const tq_kernel_table *tq_kernels_neon(void) { return &tq_neon_table; }

#else /* not little-endian AArch64 with GCC/Clang */

const tq_kernel_table *tq_kernels_neon(void) { return NULL; }

#endif
