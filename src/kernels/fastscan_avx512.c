/*
 * fastscan_avx512.c — the AVX-512 sums kernel of fastscan.h (x86-64, GCC or
 * Clang). As in fastscan_avx2.c every function carries its own target
 * attribute and the build adds no -mavx512*; tq_fs_sums_active() hands it out
 * only while tq_kernels() is the AVX-512 table (so CPUID and XCR0 allow it).
 * Elsewhere tq_fs_sums_avx512() returns NULL.
 *
 * The layout puts the 32-byte loads of pairs p and p + 1 of a block next to
 * each other, and their tables too, so one 64-byte load carries both:
 *     lanes 0, 1: groups 2p, 2p + 1      lanes 2, 3: groups 2p + 2, 2p + 3
 * and one vpshufb on a ZMM register does the work of two on YMM registers
 * (vpshufb looks up within each 128-bit lane, as the AVX2 kernel relies on).
 * The 16-bit accumulation is the AVX2 kernel's: a0 += r, a1 += r >> 8, with
 * the even bytes recovered as a0 - (a1 << 8) (mod 2^16). Each 16-bit element
 * receives one byte (<= 255) per iteration, so the bound of fastscan_avx2.c
 * holds as long as a flush comes at least every 256 iterations (512 pairs
 * here). At a flush the four lanes are widened to 32 bits and added; the
 * uint32 sums never exceed 255 * 2P < 2^32 (P <= 32768). An odd last pair
 * is loaded with a mask: its upper half (code bytes and table) reads as
 * zero, and a zero table adds zero. The sums equal the ref's exactly.
 *
 * Blocks go two at a time, so each table load serves 64 vectors; an odd last
 * block goes alone.
 */
#include "fastscan.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define TQ_FS512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2")))
#define TQ_FS512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx2")))

enum { FS512_FLUSH = 256 };
 /* iterations (of two pairs each) between flushes: must stay <= 257 */

/* The 64 bytes of pairs p, p + 1 (or of pair p alone, upper half zero, when p is the last, odd pair). */
TQ_FS512_INLINE __m512i fs512_load(const uint8_t *src, int whole) {
    return whole ? _mm512_loadu_si512((const void *)src) : _mm512_maskz_loadu_epi8(0xFFFFFFFFull, src);
}

/* 16-bit sums of four lanes -> 16 uint32: [lane0 + lane2 | lane1 + lane3] (folded to 8 at the end). */
TQ_FS512_INLINE __m512i fs512_widen(__m512i v) {
    __m512i a = _mm512_cvtepu16_epi32(_mm512_castsi512_si256(v));
    __m512i b = _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(v, 1));
    return _mm512_add_epi32(a, b);
}

TQ_FS512_INLINE __m256i fs512_fold(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

TQ_FS512_INLINE void fs512_store(uint32_t *dst, __m512i even, __m512i odd) {
    __m256i e = fs512_fold(even), o = fs512_fold(odd);
    __m256i lo = _mm256_unpacklo_epi32(e, o), hi = _mm256_unpackhi_epi32(e, o);
    _mm256_storeu_si256((__m256i *)dst, _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256((__m256i *)(dst + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
}

/* One step of one query: the shared nibble masks lo_c / hi_c of a code load looked up in table L, the
 * bytes summed into the 16-bit accumulators A0..A3 (A1, A3: odd bytes; A0, A2: all bytes, see the top). */
#define FS512_STEPQ(L, A)                                                       \
    do {                                                                        \
        __m512i r0_ = _mm512_shuffle_epi8((L), lo_c);                           \
        __m512i r1_ = _mm512_shuffle_epi8((L), hi_c);                           \
        A##0 = _mm512_add_epi16(A##0, r0_);                                     \
        A##1 = _mm512_add_epi16(A##1, _mm512_srli_epi16(r0_, 8));               \
        A##2 = _mm512_add_epi16(A##2, r1_);                                     \
        A##3 = _mm512_add_epi16(A##3, _mm512_srli_epi16(r1_, 8));               \
    } while (0)

/* The same with the code load c's nibble masks made here (one query per load). */
#define FS512_STEP(c, L, A)                                                     \
    do {                                                                        \
        __m512i lo_c = _mm512_and_si512((c), m4);                               \
        __m512i hi_c = _mm512_and_si512(_mm512_srli_epi16((c), 4), m4);         \
        FS512_STEPQ(L, A);                                                      \
    } while (0)

#define FS512_ZERO4(A) __m512i A##0 = _mm512_setzero_si512(), A##1 = A##0, A##2 = A##0, A##3 = A##0

/* The 32-bit sums of one query in memory (acc[4]: even 0..15, odd 0..15, even 16..31, odd 16..31 as 16-lane
 * partial sums): they change only at a flush, so they need not hold registers through the loop. */
TQ_FS512_INLINE void fs512_flush_mem(__m512i *acc, __m512i a0, __m512i a1, __m512i a2, __m512i a3) {
    acc[0] = _mm512_add_epi32(acc[0], fs512_widen(_mm512_sub_epi16(a0, _mm512_slli_epi16(a1, 8))));
    acc[1] = _mm512_add_epi32(acc[1], fs512_widen(a1));
    acc[2] = _mm512_add_epi32(acc[2], fs512_widen(_mm512_sub_epi16(a2, _mm512_slli_epi16(a3, 8))));
    acc[3] = _mm512_add_epi32(acc[3], fs512_widen(a3));
}

TQ_FS512_INLINE void fs512_store_mem(uint32_t *dst, const __m512i *acc) {
    fs512_store(dst, acc[0], acc[1]);
    fs512_store(dst + 16, acc[2], acc[3]);
}

TQ_FS512_INLINE void fs512_block1(const uint8_t *blk, uint32_t npairs, const uint8_t *lut, uint32_t *s) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const uint32_t full = npairs / 2; /* whole 64-byte steps; an odd last pair is one masked step after them */
    __m512i acc[4];
    for (int r = 0; r < 4; r++) acc[r] = _mm512_setzero_si512();
    for (uint32_t i0 = 0; i0 < full; i0 += FS512_FLUSH) {
        uint32_t i1 = full - i0 < FS512_FLUSH ? full : i0 + FS512_FLUSH;
        FS512_ZERO4(a);
        for (uint32_t i = i0; i < i1; i++) {
            __m512i c = fs512_load(blk + (size_t)i * 64, 1);
            __m512i L = fs512_load(lut + (size_t)i * 64, 1);
            FS512_STEP(c, L, a);
        }
        fs512_flush_mem(acc, a0, a1, a2, a3);
    }
    if (npairs & 1) {
        FS512_ZERO4(a);
        __m512i c = fs512_load(blk + (size_t)full * 64, 0);
        __m512i L = fs512_load(lut + (size_t)full * 64, 0);
        FS512_STEP(c, L, a);
        fs512_flush_mem(acc, a0, a1, a2, a3);
    }
    fs512_store_mem(s, acc);
}

TQ_FS512_INLINE void fs512_block2(const uint8_t *blk, const uint8_t *blk2, uint32_t npairs, const uint8_t *lut,
                                  uint32_t *s) {
    /* the two blocks after these, 64 bytes of each per step: a prefetch is only a hint and never faults, so
     * running past the end of the array is harmless */
    const size_t stride = (size_t)npairs * 32;
    const uint8_t *next = blk2 + stride;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const uint32_t full = npairs / 2;
    __m512i acc[2][4];
    for (int q = 0; q < 2; q++)
        for (int r = 0; r < 4; r++) acc[q][r] = _mm512_setzero_si512();
    for (uint32_t i0 = 0; i0 < full; i0 += FS512_FLUSH) {
        uint32_t i1 = full - i0 < FS512_FLUSH ? full : i0 + FS512_FLUSH;
        FS512_ZERO4(a);
        FS512_ZERO4(b);
        for (uint32_t i = i0; i < i1; i++) {
            _mm_prefetch((const char *)(next + (size_t)i * 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + stride + (size_t)i * 64), _MM_HINT_T0);
            __m512i L = fs512_load(lut + (size_t)i * 64, 1);
            __m512i c = fs512_load(blk + (size_t)i * 64, 1);
            __m512i c2 = fs512_load(blk2 + (size_t)i * 64, 1);
            FS512_STEP(c, L, a);
            FS512_STEP(c2, L, b);
        }
        fs512_flush_mem(acc[0], a0, a1, a2, a3);
        fs512_flush_mem(acc[1], b0, b1, b2, b3);
    }
    if (npairs & 1) {
        FS512_ZERO4(a);
        FS512_ZERO4(b);
        __m512i L = fs512_load(lut + (size_t)full * 64, 0);
        __m512i c = fs512_load(blk + (size_t)full * 64, 0);
        __m512i c2 = fs512_load(blk2 + (size_t)full * 64, 0);
        FS512_STEP(c, L, a);
        FS512_STEP(c2, L, b);
        fs512_flush_mem(acc[0], a0, a1, a2, a3);
        fs512_flush_mem(acc[1], b0, b1, b2, b3);
    }
    fs512_store_mem(s, acc[0]);
    fs512_store_mem(s + 32, acc[1]);
}

TQ_FS512 static void fs_sums_avx512(const uint8_t *packed, size_t nblocks, uint32_t npairs, const uint8_t *lut,
                                    uint32_t *sums) {
    size_t stride = (size_t)npairs * 32, b = 0;
    for (; b + 2 <= nblocks; b += 2)
        fs512_block2(packed + b * stride, packed + (b + 1) * stride, npairs, lut, sums + b * TQ_FS_BLOCK);
    if (b < nblocks) fs512_block1(packed + b * stride, npairs, lut, sums + b * TQ_FS_BLOCK);
}

/*
 * Several queries at once (tq_fs_sums4_fn): one block at a time, each 64-byte
 * load of codes and its two nibble masks shared by Q = 2 or 4 queries, which
 * then cost one table load, two vpshufb, two shifts and four adds each. The
 * 32-bit sums of the queries are touched only at a flush (the compiler may
 * keep them in memory); the 16-bit accumulators stay in registers (4 per
 * query). Same arithmetic per query as fs512_block1, so the same sums.
 */
#define FS512_LOADC(whole)                                               \
    __m512i c = fs512_load(blk + (size_t)i * 64, whole);                 \
    _mm_prefetch((const char *)(next + (size_t)i * 64), _MM_HINT_T0);    \
    __m512i lo_c = _mm512_and_si512(c, m4);                              \
    __m512i hi_c = _mm512_and_si512(_mm512_srli_epi16(c, 4), m4)

TQ_FS512_INLINE void fs512_multi2(const uint8_t *blk, uint32_t npairs, const uint8_t *const *lut, uint32_t *const *s,
                                  size_t at) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const uint8_t *next = blk + (size_t)npairs * 32;
    const uint32_t full = npairs / 2;
    __m512i acc[2][4];
    for (int q = 0; q < 2; q++)
        for (int r = 0; r < 4; r++) acc[q][r] = _mm512_setzero_si512();
    for (uint32_t j0 = 0; j0 < full; j0 += FS512_FLUSH) {
        uint32_t j1 = full - j0 < FS512_FLUSH ? full : j0 + FS512_FLUSH;
        FS512_ZERO4(a);
        FS512_ZERO4(b);
        for (uint32_t i = j0; i < j1; i++) {
            FS512_LOADC(1);
            FS512_STEPQ(fs512_load(lut[0] + (size_t)i * 64, 1), a);
            FS512_STEPQ(fs512_load(lut[1] + (size_t)i * 64, 1), b);
        }
        fs512_flush_mem(acc[0], a0, a1, a2, a3);
        fs512_flush_mem(acc[1], b0, b1, b2, b3);
    }
    if (npairs & 1) {
        uint32_t i = full;
        FS512_ZERO4(a);
        FS512_ZERO4(b);
        FS512_LOADC(0);
        FS512_STEPQ(fs512_load(lut[0] + (size_t)i * 64, 0), a);
        FS512_STEPQ(fs512_load(lut[1] + (size_t)i * 64, 0), b);
        fs512_flush_mem(acc[0], a0, a1, a2, a3);
        fs512_flush_mem(acc[1], b0, b1, b2, b3);
    }
    fs512_store_mem(s[0] + at, acc[0]);
    fs512_store_mem(s[1] + at, acc[1]);
}

TQ_FS512_INLINE void fs512_multi4(const uint8_t *blk, uint32_t npairs, const uint8_t *const *lut, uint32_t *const *s,
                                  size_t at) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const uint8_t *next = blk + (size_t)npairs * 32;
    const uint32_t full = npairs / 2;
    __m512i acc[4][4];
    for (int q = 0; q < 4; q++)
        for (int r = 0; r < 4; r++) acc[q][r] = _mm512_setzero_si512();
    for (uint32_t j0 = 0; j0 < full; j0 += FS512_FLUSH) {
        uint32_t j1 = full - j0 < FS512_FLUSH ? full : j0 + FS512_FLUSH;
        FS512_ZERO4(a);
        FS512_ZERO4(b);
        FS512_ZERO4(c);
        FS512_ZERO4(d);
        for (uint32_t i = j0; i < j1; i++) {
            FS512_LOADC(1);
            FS512_STEPQ(fs512_load(lut[0] + (size_t)i * 64, 1), a);
            FS512_STEPQ(fs512_load(lut[1] + (size_t)i * 64, 1), b);
            FS512_STEPQ(fs512_load(lut[2] + (size_t)i * 64, 1), c);
            FS512_STEPQ(fs512_load(lut[3] + (size_t)i * 64, 1), d);
        }
        fs512_flush_mem(acc[0], a0, a1, a2, a3);
        fs512_flush_mem(acc[1], b0, b1, b2, b3);
        fs512_flush_mem(acc[2], c0, c1, c2, c3);
        fs512_flush_mem(acc[3], d0, d1, d2, d3);
    }
    if (npairs & 1) {
        uint32_t i = full;
        FS512_ZERO4(a);
        FS512_ZERO4(b);
        FS512_ZERO4(c);
        FS512_ZERO4(d);
        FS512_LOADC(0);
        FS512_STEPQ(fs512_load(lut[0] + (size_t)i * 64, 0), a);
        FS512_STEPQ(fs512_load(lut[1] + (size_t)i * 64, 0), b);
        FS512_STEPQ(fs512_load(lut[2] + (size_t)i * 64, 0), c);
        FS512_STEPQ(fs512_load(lut[3] + (size_t)i * 64, 0), d);
        fs512_flush_mem(acc[0], a0, a1, a2, a3);
        fs512_flush_mem(acc[1], b0, b1, b2, b3);
        fs512_flush_mem(acc[2], c0, c1, c2, c3);
        fs512_flush_mem(acc[3], d0, d1, d2, d3);
    }
    fs512_store_mem(s[0] + at, acc[0]);
    fs512_store_mem(s[1] + at, acc[1]);
    fs512_store_mem(s[2] + at, acc[2]);
    fs512_store_mem(s[3] + at, acc[3]);
}

TQ_FS512 static void fs_sums4_avx512(const uint8_t *packed, size_t nblocks, uint32_t npairs,
                                     const uint8_t *const *luts, uint32_t nq, uint32_t *const *sums) {
    size_t stride = (size_t)npairs * 32;
    uint32_t q = 0;
    for (; q + 4 <= nq; q += 4)
        for (size_t b = 0; b < nblocks; b++)
            fs512_multi4(packed + b * stride, npairs, luts + q, sums + q, b * TQ_FS_BLOCK);
    for (; q + 2 <= nq; q += 2)
        for (size_t b = 0; b < nblocks; b++)
            fs512_multi2(packed + b * stride, npairs, luts + q, sums + q, b * TQ_FS_BLOCK);
    if (q < nq) fs_sums_avx512(packed, nblocks, npairs, luts[q], sums[q]);
}

tq_fs_sums4_fn tq_fs_sums4_avx512(void) { return fs_sums4_avx512; }

tq_fs_sums_fn tq_fs_sums_avx512(void) { return fs_sums_avx512; }

#else

tq_fs_sums_fn tq_fs_sums_avx512(void) { return NULL; }
tq_fs_sums4_fn tq_fs_sums4_avx512(void) { return NULL; }

#endif
