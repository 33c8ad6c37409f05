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

#define FS512_STEP(c, L, A)                                                     \
    do {                                                                        \
        __m512i lo_ = _mm512_and_si512((c), m4);                                \
        __m512i hi_ = _mm512_and_si512(_mm512_srli_epi16((c), 4), m4);          \
        __m512i r0_ = _mm512_shuffle_epi8((L), lo_);                            \
        __m512i r1_ = _mm512_shuffle_epi8((L), hi_);                            \
        A##0 = _mm512_add_epi16(A##0, r0_);                                     \
        A##1 = _mm512_add_epi16(A##1, _mm512_srli_epi16(r0_, 8));               \
        A##2 = _mm512_add_epi16(A##2, r1_);                                     \
        A##3 = _mm512_add_epi16(A##3, _mm512_srli_epi16(r1_, 8));               \
    } while (0)

#define FS512_FLUSH_ACC(A, E0, O0, E1, O1)                                                             \
    do {                                                                                                \
        E0 = _mm512_add_epi32(E0, fs512_widen(_mm512_sub_epi16(A##0, _mm512_slli_epi16(A##1, 8))));  \
        O0 = _mm512_add_epi32(O0, fs512_widen(A##1));                                                  \
        E1 = _mm512_add_epi32(E1, fs512_widen(_mm512_sub_epi16(A##2, _mm512_slli_epi16(A##3, 8))));  \
        O1 = _mm512_add_epi32(O1, fs512_widen(A##3));                                                  \
    } while (0)

TQ_FS512_INLINE void fs512_block1(const uint8_t *blk, uint32_t npairs, const uint8_t *lut, uint32_t *s) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const uint32_t iters = (npairs + 1) / 2;
    __m512i e0 = _mm512_setzero_si512(), o0 = e0, e1 = e0, o1 = e0;
    for (uint32_t i0 = 0; i0 < iters; i0 += FS512_FLUSH) {
        uint32_t i1 = iters - i0 < FS512_FLUSH ? iters : i0 + FS512_FLUSH;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (uint32_t i = i0; i < i1; i++) {
            int whole = 2 * i + 1 < npairs;
            __m512i c = fs512_load(blk + (size_t)i * 64, whole);
            __m512i L = fs512_load(lut + (size_t)i * 64, whole);
            FS512_STEP(c, L, a);
        }
        FS512_FLUSH_ACC(a, e0, o0, e1, o1);
    }
    fs512_store(s, e0, o0);
    fs512_store(s + 16, e1, o1);
}

TQ_FS512_INLINE void fs512_block2(const uint8_t *blk, const uint8_t *blk2, uint32_t npairs, const uint8_t *lut,
                                  uint32_t *s) {
    /* the two blocks after these, 64 bytes of each per step: a prefetch is only a hint and never faults, so
     * running past the end of the array is harmless */
    const size_t stride = (size_t)npairs * 32;
    const uint8_t *next = blk2 + stride;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const uint32_t iters = (npairs + 1) / 2;
    __m512i e0 = _mm512_setzero_si512(), o0 = e0, e1 = e0, o1 = e0;
    __m512i f0 = e0, q0 = e0, f1 = e0, q1 = e0;
    for (uint32_t i0 = 0; i0 < iters; i0 += FS512_FLUSH) {
        uint32_t i1 = iters - i0 < FS512_FLUSH ? iters : i0 + FS512_FLUSH;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        __m512i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (uint32_t i = i0; i < i1; i++) {
            int whole = 2 * i + 1 < npairs;
            _mm_prefetch((const char *)(next + (size_t)i * 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(next + stride + (size_t)i * 64), _MM_HINT_T0);
            __m512i L = fs512_load(lut + (size_t)i * 64, whole);
            __m512i c = fs512_load(blk + (size_t)i * 64, whole);
            __m512i c2 = fs512_load(blk2 + (size_t)i * 64, whole);
            FS512_STEP(c, L, a);
            FS512_STEP(c2, L, b);
        }
        FS512_FLUSH_ACC(a, e0, o0, e1, o1);
        FS512_FLUSH_ACC(b, f0, q0, f1, q1);
    }
    fs512_store(s, e0, o0);
    fs512_store(s + 16, e1, o1);
    fs512_store(s + 32, f0, q0);
    fs512_store(s + 48, f1, q1);
}

TQ_FS512 static void fs_sums_avx512(const uint8_t *packed, size_t nblocks, uint32_t npairs, const uint8_t *lut,
                                    uint32_t *sums) {
    size_t stride = (size_t)npairs * 32, b = 0;
    for (; b + 2 <= nblocks; b += 2)
        fs512_block2(packed + b * stride, packed + (b + 1) * stride, npairs, lut, sums + b * TQ_FS_BLOCK);
    if (b < nblocks) fs512_block1(packed + b * stride, npairs, lut, sums + b * TQ_FS_BLOCK);
}

tq_fs_sums_fn tq_fs_sums_avx512(void) { return fs_sums_avx512; }

#else

tq_fs_sums_fn tq_fs_sums_avx512(void) { return NULL; }

#endif
