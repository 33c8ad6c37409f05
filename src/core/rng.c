/*
 * rng.c — Philox4x32-10 and the few distributions tq draws from it.
 *
 * Why Philox: it is counter-based, so block i of any stream can be computed
 * directly (no hidden state to carry between threads or machines), it passes
 * BigCrush, and it is fully specified by the Random123 paper and its published
 * known-answer vectors, which the tests check. Stream layout (fixed forever,
 * because rotations and codes depend on it):
 *     block i of (seed, stream) = Philox4x32-10(counter = {lo32(i), hi32(i),
 *     lo32(stream), hi32(stream)}, key = {lo32(seed), hi32(seed)})
 * and its four output words are consumed in order 0, 1, 2, 3.
 *
 * Why no libm: a value that decides a rotation must be the same bits on every
 * machine. IEEE 754 makes + - * / and sqrt correctly rounded, but log/exp/sin
 * differ between libm builds by an ulp here and there. So the Gaussian sampler
 * is Marsaglia's polar method (needs only a log, no sin/cos) and the log is
 * tq_det_log below, built from + - * / and bit manipulation. This relies on
 * FLT_EVAL_METHOD == 0 (SSE2/NEON doubles, not x87 extended precision) and on
 * -ffp-contract=off (no FMA contraction), both of which the build sets up.
 */
#include "rng.h"

#include <math.h>
#include <string.h>

/* ---- Philox4x32-10 (Salmon et al. 2011, Random123 reference) ---- */

#define TQ_PHILOX_M0 0xD2511F53u
#define TQ_PHILOX_M1 0xCD9E8D57u
#define TQ_PHILOX_W0 0x9E3779B9u
#define TQ_PHILOX_W1 0xBB67AE85u

void tq_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) { /* the key schedule bumps before rounds 2..10 */
            k0 += TQ_PHILOX_W0;
            k1 += TQ_PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)TQ_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)TQ_PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* ---- the stream ---- */

void tq_rng_init(tq_rng *r, uint64_t seed, uint64_t stream) {
    r->seed = seed;
    r->stream = stream;
    r->block = 0;
    memset(r->buf, 0, sizeof r->buf);
    r->pos = 4;
}

uint32_t tq_rng_u32(tq_rng *r) {
    if (r->pos >= 4) {
        const uint32_t ctr[4] = {(uint32_t)r->block, (uint32_t)(r->block >> 32), (uint32_t)r->stream,
                                 (uint32_t)(r->stream >> 32)};
        const uint32_t key[2] = {(uint32_t)r->seed, (uint32_t)(r->seed >> 32)};
        tq_philox4x32_10(ctr, key, r->buf);
        r->block++; /* 2^64 blocks per stream: wrap-around is unreachable in practice */
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

uint64_t tq_rng_u64(tq_rng *r) {
    uint64_t lo = tq_rng_u32(r);
    uint64_t hi = tq_rng_u32(r);
    return lo | (hi << 32);
}

/*
 * Lemire, "Fast random integer generation in an interval" (2019): the high
 * word of x*n is the answer; the low word tells whether x fell in the short
 * final stripe that would bias it, and those x are redrawn. The threshold
 * 2^32 mod n is computed only when the cheap test (low < n) says it may matter.
 * n = 0 is outside the contract; it returns 0 rather than looping.
 */
uint32_t tq_rng_below(tq_rng *r, uint32_t n) {
    if (n == 0) return 0;
    uint64_t m = (uint64_t)tq_rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n; /* = 2^32 mod n */
        while (low < threshold) {
            m = (uint64_t)tq_rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double tq_rng_uniform(tq_rng *r) {
    return (double)(tq_rng_u64(r) >> 11) * 0x1.0p-53; /* exact: a 53-bit integer times a power of two */
}

/*
 * Marsaglia polar method. u and v are uniform on [-1, 1) (2*U - 1 is exact for
 * a 53-bit U); pairs outside the unit disc, or at its centre, are redrawn. The
 * method yields two independent normals, u*f and v*f; we return only u*f and
 * discard v*f so that the generator has no hidden cached value: the state is
 * just the Philox position, and the k-th gauss of a stream never depends on
 * whether other kinds of draws were interleaved before it. It costs one extra
 * log per draw, which is nothing next to what the draws are used for.
 */
double tq_rng_gauss(tq_rng *r) {
    for (;;) {
        double u = 2.0 * tq_rng_uniform(r) - 1.0;
        double v = 2.0 * tq_rng_uniform(r) - 1.0;
        double s = u * u + v * v;
        if (s >= 1.0 || s == 0.0) continue;
        return u * sqrt(-2.0 * tq_det_log(s) / s);
    }
}

/*
 * Natural log from + - * / only, following the structure of fdlibm's e_log.c
 * (Sun Microsystems), with Taylor coefficients of atanh instead of fdlibm's
 * minimax ones (more terms, but every constant is an exact ratio anyone can
 * re-derive):
 *   1. x = 2^e * m with m in [sqrt(1/2), sqrt(2)), split from the bit pattern;
 *      subnormal x is first scaled by 2^54 so it has a full mantissa.
 *   2. f = m - 1 (exact, Sterbenz), s = f / (2 + f), so log(m) = 2 atanh(s)
 *      = 2s + s*R(z), z = s^2, R = sum_k 2 z^k / (2k+1). |s| <= 0.1716, z <=
 *      0.0295; 11 terms leave a truncation error below 2^-62 relative.
 *   3. 2s is not formed directly (its rounding would cost up to an ulp);
 *      instead, with hfsq = f^2/2, log(m) = f - hfsq + s*(hfsq + R) exactly,
 *      so the big term f is exact and only small corrections carry rounding.
 *   4. e*ln2 is added in two parts: ln2_hi has 21 trailing zero bits in its
 *      mantissa, so e*ln2_hi is exact for every |e| <= 1100 (11 bits), and
 *      ln2_lo carries the rest.
 * Measured against glibc 2.36 log: at most 1 ulp apart over 1e6 random inputs
 * in (1e-300, 1e300), near 1, and over the subnormals (tests/test_rng.c). x = 0 gives -inf, x = +inf gives +inf,
 * x < 0 or NaN gives NaN.
 */
double tq_det_log(double x) {
    static const double ln2_hi = 6.93147180369123816490e-01; /* 0x3FE62E42FEE00000 */
    static const double ln2_lo = 1.90821492927058770002e-10; /* 0x3DEA39EF35793C76 */
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    if (x != x) return x;                       /* NaN */
    if (bits >> 63) return (x == 0.0) ? -INFINITY : (x - x) / (x - x); /* -0 -> -inf; x < 0 -> NaN */
    if (x == 0.0) return -INFINITY;
    if (x == INFINITY) return x;

    int64_t e = 0;
    if ((bits >> 52) == 0) { /* subnormal: give it a full mantissa first */
        x *= 0x1.0p54;
        memcpy(&bits, &x, sizeof bits);
        e = -54;
    }
    e += (int64_t)(bits >> 52) - 1023;
    uint64_t mant = bits & 0x000FFFFFFFFFFFFFull;
    /* 0x6A09E667F3BCD is the mantissa field of sqrt(2): at or above it, halve m. */
    if (mant >= 0x6A09E667F3BCDull) {
        bits = mant | (1022ull << 52);
        e += 1;
    } else {
        bits = mant | (1023ull << 52);
    }
    double m;
    memcpy(&m, &bits, sizeof m);

    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    /* Horner from the smallest term: R = z*(2/3 + z*(2/5 + ... + z*(2/23))). */
    double R = 2.0 / 23.0;
    R = 2.0 / 21.0 + z * R;
    R = 2.0 / 19.0 + z * R;
    R = 2.0 / 17.0 + z * R;
    R = 2.0 / 15.0 + z * R;
    R = 2.0 / 13.0 + z * R;
    R = 2.0 / 11.0 + z * R;
    R = 2.0 / 9.0 + z * R;
    R = 2.0 / 7.0 + z * R;
    R = 2.0 / 5.0 + z * R;
    R = 2.0 / 3.0 + z * R;
    R = z * R;
    double hfsq = 0.5 * f * f;
    double de = (double)e;
    return de * ln2_hi - ((hfsq - (s * (hfsq + R) + de * ln2_lo)) - f);
}
