/*
 * kernels_avx512.c — the AVX-512 kernel table (x86-64, GCC or Clang): the
 * AVX2 table with the kernels that gain from 512-bit registers replaced.
 *
 * As for AVX2, every function carries its own target attribute and the build
 * adds no -mavx512*, so the file is in every x86-64 binary and its code runs
 * only after dispatch.c has seen AVX512F/BW/VL in CPUID and ZMM state enabled
 * by the OS (XCR0 bits 5-7).
 *
 * Replaced so far: the KV-cache kernels kv_logits and kv_accum for codes of 1
 * to 4 bits in parts whose dimension is a multiple of 16 (every KV head of
 * 64 or 128 channels, and the halves of their outlier splits). A 16-entry
 * codebook fits one register, so one vpermps looks up 16 coordinates with no
 * blend; indices come out of the packed planes with one variable shift.
 * Other shapes go to the AVX2 kernels. Scores and sums are float FMAs, within
 * the tolerances kernels.h states (the tests hold every table to them).
 */
#include "kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#define TQ_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define TQ_512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx2,fma")))

enum { KV512_ABLOCK = 8 };

/* Indices of coordinates 16g .. 16g+15 of a record whose planes start at p (pack.h layout), BITS <= 4, d the
 * part dimension (for where the second plane of 3-bit codes starts). vpermps reads only the low 4 bits of
 * a lane, and table16 repeats the 2^BITS centroids across its 16 entries, so the bits above an index
 * (its neighbours' bits after the shift) select the same centroid and need no mask: 1 and 2 bits are one
 * shift; 3 bits take the low 2 from the 2-bit plane and bit 2 (and a harmless bit 3) from the 1-bit plane,
 * merged by one ternary-logic op. */
TQ_512_INLINE __m512i idx16(const uint8_t *p, uint32_t d, uint32_t g, uint32_t BITS) {
    if (BITS == 4) {
        uint64_t v;
        memcpy(&v, p + 8 * (size_t)g, 8);
        const __m512i sel = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        const __m512i sh = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
        return _mm512_srlv_epi32(_mm512_permutexvar_epi32(sel, _mm512_set1_epi64((long long)v)), sh);
    }
    const __m512i sh2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i sh1 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    if (BITS == 2 || BITS == 3) {
        uint32_t v;
        memcpy(&v, p + 4 * (size_t)g, 4);
        __m512i lo = _mm512_srlv_epi32(_mm512_set1_epi32((int)v), sh2);
        if (BITS == 2) return lo;
        uint16_t u;
        memcpy(&u, p + (size_t)d / 4 + 2 * (size_t)g, 2);
        __m512i hi = _mm512_srlv_epi32(_mm512_set1_epi32((int)((uint32_t)u << 2)), sh1);
        /* bits 0-1 from lo, the rest from hi: (lo & 3) | (hi & ~3), imm8 0xE4 = "C ? A : B" with C = 3 */
        return _mm512_ternarylogic_epi32(lo, hi, _mm512_set1_epi32(3), 0xE4);
    }
    uint16_t u;
    memcpy(&u, p + 2 * (size_t)g, 2);
    return _mm512_srlv_epi32(_mm512_set1_epi32(u), sh1);
}

/* The 2^BITS centroids repeated across 16 entries: entry i is centroid i mod 2^BITS. */
TQ_512_INLINE __m512 table16(const float *cent, uint32_t BITS) {
    float t[16];
    for (uint32_t k = 0; k < 16; k++) t[k] = cent[k & ((1u << BITS) - 1u)];
    return _mm512_loadu_ps(t);
}

/* The sums of a[0..gn) (gn <= 4) in lanes 0..gn-1. */
TQ_512_INLINE __m128 hsum4(const __m512 *a, uint32_t gn) {
    __m256 y[4];
    for (uint32_t k = 0; k < 4; k++) {
        __m512 v = k < gn ? a[k] : _mm512_setzero_ps();
        y[k] = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    }
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(y[0], y[1]), _mm256_hadd_ps(y[2], y[3]));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* One part's GC dot products with a record (its indices at p), lanes not yet summed. */
TQ_512_INLINE void part_dots(const float *restrict q, const uint8_t *p, uint32_t d, __m512 tab, __m512 *ap,
                             uint32_t BITS, uint32_t GC) {
    for (uint32_t k = 0; k < GC; k++) ap[k] = _mm512_setzero_ps();
    for (uint32_t j = 0; j < d / 16; j++) {
        __m512 c = _mm512_permutexvar_ps(idx16(p, d, j, BITS), tab);
        for (uint32_t k = 0; k < GC; k++) ap[k] = _mm512_fmadd_ps(_mm512_loadu_ps(q + (size_t)k * d + 16 * j), c, ap[k]);
    }
}

/* Logits of records of NP (1 or 2) parts with B0 / B1 bits and GC query heads: each part's lanes are scaled
 * by its token factor and added before the one horizontal sum a token needs. The parts' fields are copied
 * to locals first: stores to out could otherwise alias them and force reloads in the loop. */
TQ_512_INLINE void kv_logits_t(const tq_kv_part *pp, const uint8_t *codes, size_t stride, size_t n, const float *bias,
                               float *restrict out, size_t ostride, uint32_t NP, uint32_t B0, uint32_t B1, uint32_t GC) {
    const __m512 tab0 = table16(pp[0].cent, B0), tab1 = NP > 1 ? table16(pp[1].cent, B1) : tab0;
    const float *restrict q0 = pp[0].q, *restrict f0 = pp[0].f;
    const float *restrict q1 = NP > 1 ? pp[1].q : q0, *restrict f1 = NP > 1 ? pp[1].f : f0;
    const size_t off0 = pp[0].off, off1 = NP > 1 ? pp[1].off : 0;
    const uint32_t d0 = pp[0].d, d1 = NP > 1 ? pp[1].d : 0;
    float b[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (uint32_t k = 0; k < GC; k++) b[k] = bias[k];
    for (size_t t = 0; t < n; t++) {
        const uint8_t *rec = codes + t * stride;
        __m512 a[4], ap[4];
        part_dots(q0, rec + off0, d0, tab0, ap, B0, GC);
        __m512 s0 = _mm512_set1_ps(f0[t]);
        for (uint32_t k = 0; k < GC; k++) a[k] = _mm512_mul_ps(ap[k], s0);
        if (NP > 1) {
            part_dots(q1, rec + off1, d1, tab1, ap, B1, GC);
            __m512 s1 = _mm512_set1_ps(f1[t]);
            for (uint32_t k = 0; k < GC; k++) a[k] = _mm512_fmadd_ps(ap[k], s1, a[k]);
        }
        float v[4];
        _mm_storeu_ps(v, _mm_add_ps(hsum4(a, GC), _mm_loadu_ps(b)));
        for (uint32_t k = 0; k < GC; k++) out[k * ostride + t] = v[k];
    }
}

/* Any shape: coordinate group outer, tokens inner (each accumulator is one FMA chain across tokens). */
TQ_512_INLINE void kv_accum_t(const float *w, uint32_t G, const float *cent, const uint8_t *codes, size_t stride,
                              size_t n, uint32_t d, float *acc, uint32_t BITS, uint32_t GC) {
    const __m512 tab = table16(cent, BITS);
    const uint32_t ng = d / 16;
    if (GC) G = GC;
    for (uint32_t j = 0; j < ng; j++) {
        for (uint32_t g0 = 0; g0 < G; g0 += KV512_ABLOCK) {
            uint32_t gn = GC ? GC : (G - g0 < KV512_ABLOCK ? G - g0 : KV512_ABLOCK);
            __m512 a[KV512_ABLOCK];
            for (uint32_t k = 0; k < gn; k++) a[k] = _mm512_loadu_ps(acc + (size_t)(g0 + k) * d + 16 * j);
            for (size_t t = 0; t < n; t++) {
                __m512 c = _mm512_permutexvar_ps(idx16(codes + t * stride, d, j, BITS), tab);
                for (uint32_t k = 0; k < gn; k++)
                    a[k] = _mm512_fmadd_ps(_mm512_set1_ps(w[(size_t)(g0 + k) * n + t]), c, a[k]);
            }
            for (uint32_t k = 0; k < gn; k++) _mm512_storeu_ps(acc + (size_t)(g0 + k) * d + 16 * j, a[k]);
        }
    }
}

/* d = 16 * NG with GC * NG <= 24: every accumulator in a register for the whole run, tokens outer, so the
 * GC * NG FMAs of a token are independent of each other (no latency chain within a token). */
TQ_512_INLINE void kv_accum_reg(const float *w, const float *cent, const uint8_t *codes, size_t stride, size_t n,
                                float *acc, uint32_t BITS, uint32_t GC, uint32_t NG) {
    const __m512 tab = table16(cent, BITS);
    const uint32_t d = 16 * NG;
    __m512 a[4][8];
    for (uint32_t k = 0; k < GC; k++)
        for (uint32_t j = 0; j < NG; j++) a[k][j] = _mm512_loadu_ps(acc + (size_t)k * d + 16 * j);
    for (size_t t = 0; t < n; t++) {
        const uint8_t *rec = codes + t * stride;
        __m512 wk[4];
        for (uint32_t k = 0; k < GC; k++) wk[k] = _mm512_set1_ps(w[(size_t)k * n + t]);
        for (uint32_t j = 0; j < NG; j++) {
            __m512 c = _mm512_permutexvar_ps(idx16(rec, d, j, BITS), tab);
            for (uint32_t k = 0; k < GC; k++) a[k][j] = _mm512_fmadd_ps(wk[k], c, a[k][j]);
        }
    }
    for (uint32_t k = 0; k < GC; k++)
        for (uint32_t j = 0; j < NG; j++) _mm512_storeu_ps(acc + (size_t)k * d + 16 * j, a[k][j]);
}

/* The register kernel for the shapes KV heads have (part dims 32, 64, 128; 1-4 query heads per KV head). */
#define KV512_ACCUM_REG(BITS)                                                                                \
    do {                                                                                                     \
        uint32_t key_ = G * 16 + d / 16;                                                                     \
        switch (key_) {                                                                                      \
        case 16 + 2: kv_accum_reg(w, cent, codes, stride, n, acc, BITS, 1, 2); return;                       \
        case 16 + 4: kv_accum_reg(w, cent, codes, stride, n, acc, BITS, 1, 4); return;                       \
        case 16 + 8: kv_accum_reg(w, cent, codes, stride, n, acc, BITS, 1, 8); return;                       \
        case 32 + 2: kv_accum_reg(w, cent, codes, stride, n, acc, BITS, 2, 2); return;                       \
        case 32 + 4: kv_accum_reg(w, cent, codes, stride, n, acc, BITS, 2, 4); return;                       \
        case 32 + 8: kv_accum_reg(w, cent, codes, stride, n, acc, BITS, 2, 8); return;                       \
        case 48 + 2: kv_accum_reg(w, cent, codes, stride, n, acc, BITS, 3, 2); return;                       \
        case 48 + 4: kv_accum_reg(w, cent, codes, stride, n, acc, BITS, 3, 4); return;                       \
        case 64 + 2: kv_accum_reg(w, cent, codes, stride, n, acc, BITS, 4, 2); return;                       \
        case 64 + 4: kv_accum_reg(w, cent, codes, stride, n, acc, BITS, 4, 4); return;                       \
        default: break;                                                                                      \
        }                                                                                                    \
    } while (0)

#define KV512_BY_G(fn, BITS, ...)                                          \
    switch (G) {                                                           \
    case 1: fn(__VA_ARGS__, BITS, 1); break;                               \
    case 2: fn(__VA_ARGS__, BITS, 2); break;                               \
    case 3: fn(__VA_ARGS__, BITS, 3); break;                               \
    case 4: fn(__VA_ARGS__, BITS, 4); break;                               \
    default: fn(__VA_ARGS__, BITS, 0); break;                              \
    }

static const tq_kernel_table *avx2_table;

#define KV512_LOGITS_G(NP, B0, B1)                                                                         \
    switch (G) {                                                                                             \
    case 1: kv_logits_t(parts, codes, stride, n, bias, out, ostride, NP, B0, B1, 1); return;                 \
    case 2: kv_logits_t(parts, codes, stride, n, bias, out, ostride, NP, B0, B1, 2); return;                 \
    case 3: kv_logits_t(parts, codes, stride, n, bias, out, ostride, NP, B0, B1, 3); return;                 \
    default: kv_logits_t(parts, codes, stride, n, bias, out, ostride, NP, B0, B1, 4); return;                \
    }

/* Fused for 1-4 query heads, parts of 16k channels, 1-4 bits, and a second part of one bit less (the outlier
 * split tq_config_set_bits makes); every other shape goes to the AVX2 kernel. */
TQ_512 static void kv_logits_avx512(const tq_kv_part *parts, uint32_t np, uint32_t G, const uint8_t *codes,
                                    size_t stride, size_t n, const float *bias, uint8_t *scratch, float *out,
                                    size_t ostride) {
    int fits = G >= 1 && G <= 4 && np >= 1 && np <= 2;
    for (uint32_t p = 0; p < np && fits; p++) fits = parts[p].d % 16 == 0 && parts[p].bits >= 1 && parts[p].bits <= 4;
    uint32_t b0 = parts[0].bits;
    if (fits && np == 1) {
        switch (b0) {
        case 1: KV512_LOGITS_G(1, 1, 1) break;
        case 2: KV512_LOGITS_G(1, 2, 2) break;
        case 3: KV512_LOGITS_G(1, 3, 3) break;
        default: KV512_LOGITS_G(1, 4, 4) break;
        }
    }
    if (fits && np == 2 && parts[1].bits + 1 == b0) {
        switch (b0) {
        case 2: KV512_LOGITS_G(2, 2, 1) break;
        case 3: KV512_LOGITS_G(2, 3, 2) break;
        default: KV512_LOGITS_G(2, 4, 3) break;
        }
    }
    avx2_table->kv_logits(parts, np, G, codes, stride, n, bias, scratch, out, ostride);
}

TQ_512 static void kv_accum_avx512(const float *w, uint32_t G, const float *cent, const uint8_t *codes,
                                   size_t stride, size_t n, uint32_t d, uint32_t bits, uint8_t *scratch, float *acc) {
    if (d % 16 != 0 || bits > 4) {
        avx2_table->kv_accum(w, G, cent, codes, stride, n, d, bits, scratch, acc);
        return;
    }
    switch (bits) {
    case 1: KV512_ACCUM_REG(1); break;
    case 2: KV512_ACCUM_REG(2); break;
    case 3: KV512_ACCUM_REG(3); break;
    default: KV512_ACCUM_REG(4); break;
    }
    switch (bits) {
    case 1: KV512_BY_G(kv_accum_t, 1, w, G, cent, codes, stride, n, d, acc) break;
    case 2: KV512_BY_G(kv_accum_t, 2, w, G, cent, codes, stride, n, d, acc) break;
    case 3: KV512_BY_G(kv_accum_t, 3, w, G, cent, codes, stride, n, d, acc) break;
    default: KV512_BY_G(kv_accum_t, 4, w, G, cent, codes, stride, n, d, acc) break;
    }
}

/* ---- fwht: the same stages as the ref (h = 1, 2, 4, ...: u + v, u - v), so bit-identical ---- */

/* Stage h < 16 inside one register, p the lanes' partners: lanes without bit h get x_i + x_{i+h}, lanes with
 * it x_{i-h} - x_i, computed as (-x_i) + x_{i-h} (IEEE: a - b and (-b) + a are the same number). The partners
 * come from in-lane and 128-bit-block shuffles, the cheapest there are. */
TQ_512_INLINE __m512 fwht_lane_stage(__m512 v, __m512 p, __m512i neg_upper) {
    return _mm512_add_ps(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), neg_upper)), p);
}

TQ_512_INLINE __m512 fwht16(__m512 v) {
    /* the sign bit of the lanes with bit h of their index set */
    const __m512i n1 = _mm512_set1_epi64((long long)0x8000000000000000ull);
    const __m512i n2 = _mm512_set1_epi64((long long)0x8000000080000000ull);
    const __m512i n2x = _mm512_maskz_mov_epi64(0xAA, n2); /* 64-bit lanes 1, 3, 5, 7: floats 2-3, 6-7, ... */
    const __m512i n4 = _mm512_maskz_mov_epi64(0xCC, n2);  /* floats 4-7, 12-15 */
    const __m512i n8 = _mm512_maskz_mov_epi64(0xF0, n2);  /* floats 8-15 */
    v = fwht_lane_stage(v, _mm512_permute_ps(v, 0xB1), n1);       /* h = 1: swap neighbours */
    v = fwht_lane_stage(v, _mm512_permute_ps(v, 0x4E), n2x);      /* h = 2: swap pairs */
    v = fwht_lane_stage(v, _mm512_shuffle_f32x4(v, v, 0xB1), n4); /* h = 4: swap 128-bit blocks */
    return fwht_lane_stage(v, _mm512_shuffle_f32x4(v, v, 0x4E), n8); /* h = 8: swap 256-bit halves */
}

/* All stages of NV registers (16 * NV floats at p, NV a power of two <= 16) in registers; scaled when they are
 * the whole transform. */
TQ_512_INLINE void fwht_regs(float *p, int NV, int scale_now, __m512 vs) {
    __m512 v[16]; /* fully unrolled (NV is a constant at every call), so v lives in registers */
#pragma GCC unroll 16
    for (int i = 0; i < NV; i++) v[i] = fwht16(_mm512_loadu_ps(p + 16 * i));
#pragma GCC unroll 4
    for (int h = 1; h < NV; h *= 2)
#pragma GCC unroll 16
        for (int k = 0; k < NV; k++)
            if (!(k & h)) { /* the pair k, k + h of stage 16 h */
                __m512 a = v[k], b = v[k | h];
                v[k] = _mm512_add_ps(a, b);
                v[k | h] = _mm512_sub_ps(a, b);
            }
#pragma GCC unroll 16
    for (int i = 0; i < NV; i++) _mm512_storeu_ps(p + 16 * i, scale_now ? _mm512_mul_ps(v[i], vs) : v[i]);
}

TQ_512 static void fwht_avx512(float *x, uint32_t len) {
    if (len < 16) {
        avx2_table->fwht(x, len);
        return;
    }
    const __m512 vs = _mm512_set1_ps((float)(1.0 / sqrt((double)len))); /* the ref's expression */
    switch (len) { /* stages 1 .. 128 on chunks of up to 256 floats in registers */
    case 16: fwht_regs(x, 1, 1, vs); return;
    case 32: fwht_regs(x, 2, 1, vs); return;
    case 64: fwht_regs(x, 4, 1, vs); return;
    case 128: fwht_regs(x, 8, 1, vs); return;
    case 256: fwht_regs(x, 16, 1, vs); return;
    default:
        for (uint32_t i = 0; i < len; i += 256) fwht_regs(x + i, 16, 0, vs);
    }
    /* the remaining stages two at a time (h and 2h), or one when one is left; the last one scales */
    for (uint32_t h = 256; h < len;) {
        if (4 * h <= len) {
            int last = 4 * h == len;
            for (uint32_t i = 0; i < len; i += 4 * h) {
                float *pa = x + i, *pb = pa + h, *pc = pb + h, *pd = pc + h;
                for (uint32_t j = 0; j < h; j += 16) {
                    __m512 a = _mm512_loadu_ps(pa + j), b = _mm512_loadu_ps(pb + j);
                    __m512 c = _mm512_loadu_ps(pc + j), d = _mm512_loadu_ps(pd + j);
                    __m512 a1 = _mm512_add_ps(a, b), b1 = _mm512_sub_ps(a, b); /* stage h */
                    __m512 c1 = _mm512_add_ps(c, d), d1 = _mm512_sub_ps(c, d);
                    a = _mm512_add_ps(a1, c1); /* stage 2h */
                    c = _mm512_sub_ps(a1, c1);
                    b = _mm512_add_ps(b1, d1);
                    d = _mm512_sub_ps(b1, d1);
                    if (last) {
                        a = _mm512_mul_ps(a, vs); b = _mm512_mul_ps(b, vs);
                        c = _mm512_mul_ps(c, vs); d = _mm512_mul_ps(d, vs);
                    }
                    _mm512_storeu_ps(pa + j, a); _mm512_storeu_ps(pb + j, b);
                    _mm512_storeu_ps(pc + j, c); _mm512_storeu_ps(pd + j, d);
                }
            }
            h *= 4;
        } else { /* 2h == len: the last stage */
            for (uint32_t j = 0; j < h; j += 16) {
                __m512 a = _mm512_loadu_ps(x + j), b = _mm512_loadu_ps(x + h + j);
                _mm512_storeu_ps(x + j, _mm512_mul_ps(_mm512_add_ps(a, b), vs));
                _mm512_storeu_ps(x + h + j, _mm512_mul_ps(_mm512_sub_ps(a, b), vs));
            }
            h *= 2;
        }
    }
}

static tq_kernel_table avx512_table;
static pthread_once_t avx512_once = PTHREAD_ONCE_INIT;

static void avx512_fill(void) {
    avx2_table = tq_kernels_avx2();
    avx512_table = *avx2_table;
    avx512_table.name = "avx512";
    avx512_table.fwht = fwht_avx512;
    avx512_table.kv_logits = kv_logits_avx512;
    avx512_table.kv_accum = kv_accum_avx512;
}

const tq_kernel_table *tq_kernels_avx512(void) {
    pthread_once(&avx512_once, avx512_fill);
    return &avx512_table;
}

#else

const tq_kernel_table *tq_kernels_avx512(void) { return NULL; }

#endif
