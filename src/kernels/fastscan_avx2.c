/*
 * fastscan_avx2.c — the AVX2 sums kernel of fastscan.h (x86-64, GCC or
 * Clang). Like kernels_avx2.c, every function carries its own target
 * attribute and the build adds no -mavx2; the code runs only when
 * tq_fs_sums_active() has seen that tq_kernels() is the AVX2 table (so CPUID
 * and the OS allow it). Elsewhere tq_fs_sums_avx2() returns NULL.
 *
 * One pair of groups for 32 vectors is one 32-byte load c (fastscan.h):
 *     r0 = pshufb([T_2p | T_2p+1], c & 15)          vectors 0..15
 *     r1 = pshufb([T_2p | T_2p+1], (c >> 4) & 15)    vectors 16..31
 * (low lane: group 2p, high lane: group 2p+1; byte t of a lane = vector t).
 * The bytes are summed in 16-bit lanes without unpacking (the FAISS trick):
 *     a0 += r0 (as epi16)          a1 += r0 >> 8 (epi16 shift)
 * a1 holds the sums of the odd bytes (vectors 2w+1), a0 the even bytes plus
 * 256 times the odd ones, both mod 2^16.
 *
 * No overflow: between two flushes at most K = 256 pairs are added. Every
 * byte is <= 255, so a1 <= 255 * 256 = 65280 < 2^16 is exact, and the even
 * sum E <= 65280 as well; a0 = E + 256 * a1 (mod 2^16), hence
 * a0 - (a1 << 8) (mod 2^16) = E (mod 2^16) = E exactly. At each flush the
 * 16-bit sums are widened to 32 bits (vpmovzxwd) and the two lanes (the two
 * groups of a pair) added into uint32 accumulators, which hold at most
 * 255 * 2P <= 255 * 65536 < 2^32. So the sums equal the ref's exactly.
 *
 * Blocks go two at a time (fs_block2), so each table load serves 64 vectors;
 * an odd last block goes alone (fs_block1).
 */
#include "fastscan.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define TQ_AVX2 __attribute__((target("avx2")))
#define TQ_AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))

enum { FS_FLUSH = 256 }; /* pairs between flushes: must stay <= 257 (see above) */

/* Widen the two 128-bit lanes of 16-bit sums and add them: 8 uint32. */
TQ_AVX2_INLINE __m256i fs_widen_add(__m256i v) {
    __m256i a = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(v));
    __m256i b = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(v, 1));
    return _mm256_add_epi32(a, b);
}

TQ_AVX2_INLINE void fs_store_interleaved(uint32_t *dst, __m256i even, __m256i odd) {
    __m256i lo = _mm256_unpacklo_epi32(even, odd), hi = _mm256_unpackhi_epi32(even, odd);
    _mm256_storeu_si256((__m256i *)dst, _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256((__m256i *)(dst + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
}

/* One pair of groups of one block into the 16-bit accumulators a0..a3 of prefix A. */
#define FS_STEP(c, L, A)                                                        \
    do {                                                                        \
        __m256i lo_ = _mm256_and_si256((c), m4);                                \
        __m256i hi_ = _mm256_and_si256(_mm256_srli_epi16((c), 4), m4);          \
        __m256i r0_ = _mm256_shuffle_epi8((L), lo_);                            \
        __m256i r1_ = _mm256_shuffle_epi8((L), hi_);                            \
        A##0 = _mm256_add_epi16(A##0, r0_);                                     \
        A##1 = _mm256_add_epi16(A##1, _mm256_srli_epi16(r0_, 8));               \
        A##2 = _mm256_add_epi16(A##2, r1_);                                     \
        A##3 = _mm256_add_epi16(A##3, _mm256_srli_epi16(r1_, 8));               \
    } while (0)

/* Flush the 16-bit accumulators of prefix A into the uint32 sums E (even
 * vectors) and O (odd vectors): even bytes = a0 - (a1 << 8) mod 2^16, exact
 * (see the top comment). */
#define FS_FLUSH_ACC(A, E0, O0, E1, O1)                                                            \
    do {                                                                                            \
        E0 = _mm256_add_epi32(E0, fs_widen_add(_mm256_sub_epi16(A##0, _mm256_slli_epi16(A##1, 8)))); \
        O0 = _mm256_add_epi32(O0, fs_widen_add(A##1));                                              \
        E1 = _mm256_add_epi32(E1, fs_widen_add(_mm256_sub_epi16(A##2, _mm256_slli_epi16(A##3, 8)))); \
        O1 = _mm256_add_epi32(O1, fs_widen_add(A##3));                                              \
    } while (0)

/* One block on its own. */
TQ_AVX2_INLINE void fs_block1(const uint8_t *blk, uint32_t npairs, const uint8_t *lut, uint32_t *s) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i e0 = _mm256_setzero_si256(), o0 = e0, e1 = e0, o1 = e0;
    for (uint32_t p0 = 0; p0 < npairs; p0 += FS_FLUSH) {
        uint32_t p1 = npairs - p0 < FS_FLUSH ? npairs : p0 + FS_FLUSH;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (uint32_t p = p0; p < p1; p++) {
            __m256i c = _mm256_loadu_si256((const __m256i *)(blk + (size_t)p * 32));
            __m256i L = _mm256_loadu_si256((const __m256i *)(lut + (size_t)p * 32));
            FS_STEP(c, L, a);
        }
        FS_FLUSH_ACC(a, e0, o0, e1, o1);
    }
    fs_store_interleaved(s, e0, o0);      /* vectors 0..15: 2w from e0, 2w+1 from o0 */
    fs_store_interleaved(s + 16, e1, o1); /* vectors 16..31 */
}

/* Two blocks at once: each table load serves both. */
TQ_AVX2_INLINE void fs_block2(const uint8_t *blk, const uint8_t *blk2, uint32_t npairs, const uint8_t *lut,
                              uint32_t *s) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    /* the two blocks after these, prefetched as these are read (a prefetch never faults, so running past the
     * end of the array is harmless): one thread then scans at about the memory's read bandwidth */
    const size_t stride = (size_t)npairs * 32;
    const uint8_t *next = blk2 + stride;
    __m256i e0 = _mm256_setzero_si256(), o0 = e0, e1 = e0, o1 = e0;
    __m256i f0 = e0, q0 = e0, f1 = e0, q1 = e0;
    for (uint32_t p0 = 0; p0 < npairs; p0 += FS_FLUSH) {
        uint32_t p1 = npairs - p0 < FS_FLUSH ? npairs : p0 + FS_FLUSH;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        __m256i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (uint32_t p = p0; p < p1; p++) {
            if (!(p & 1)) {
                _mm_prefetch((const char *)(next + (size_t)p * 32), _MM_HINT_T0);
                _mm_prefetch((const char *)(next + stride + (size_t)p * 32), _MM_HINT_T0);
            }
            __m256i L = _mm256_loadu_si256((const __m256i *)(lut + (size_t)p * 32));
            __m256i c = _mm256_loadu_si256((const __m256i *)(blk + (size_t)p * 32));
            __m256i c2 = _mm256_loadu_si256((const __m256i *)(blk2 + (size_t)p * 32));
            FS_STEP(c, L, a);
            FS_STEP(c2, L, b);
        }
        FS_FLUSH_ACC(a, e0, o0, e1, o1);
        FS_FLUSH_ACC(b, f0, q0, f1, q1);
    }
    fs_store_interleaved(s, e0, o0);
    fs_store_interleaved(s + 16, e1, o1);
    fs_store_interleaved(s + 32, f0, q0);
    fs_store_interleaved(s + 48, f1, q1);
}

TQ_AVX2 static void fs_sums_avx2(const uint8_t *packed, size_t nblocks, uint32_t npairs, const uint8_t *lut,
                                 uint32_t *sums) {
    size_t stride = (size_t)npairs * 32, b = 0;
    for (; b + 2 <= nblocks; b += 2)
        fs_block2(packed + b * stride, packed + (b + 1) * stride, npairs, lut, sums + b * TQ_FS_BLOCK);
    if (b < nblocks) fs_block1(packed + b * stride, npairs, lut, sums + b * TQ_FS_BLOCK);
}

tq_fs_sums_fn tq_fs_sums_avx2(void) { return fs_sums_avx2; }

#else

tq_fs_sums_fn tq_fs_sums_avx2(void) { return NULL; }

#endif
