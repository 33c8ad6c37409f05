/*
 * fastscan_neon.c — the NEON sums kernel of fastscan.h (little-endian
 * AArch64, GCC or Clang; elsewhere tq_fs_sums_neon() returns NULL). It runs
 * when tq_fs_sums_active() sees that tq_kernels() is the NEON table.
 *
 * One pair of groups for 32 vectors is two 16-byte loads (fastscan.h):
 * c0 = group 2p, c1 = group 2p+1, byte t = vector t in the low nibble and
 * vector t+16 in the high one. tbl (vqtbl1q_u8) looks each nibble up in its
 * group's 16-byte table:
 *     r0 = T_2p[c0 & 15]   r1 = T_2p+1[c1 & 15]     vectors 0..15
 *     r2 = T_2p[c0 >> 4]   r3 = T_2p+1[c1 >> 4]     vectors 16..31
 * and the two groups' bytes are added, widened, into 16-bit lanes (uaddl):
 * at most 2 * 255 = 510 per pair. After FS_FLUSH_NEON = 128 pairs a lane
 * holds at most 128 * 510 = 65280 < 2^16, so the 16-bit sums are exact; they
 * are then widened into uint32 sums (uaddw), which hold at most
 * 255 * 2P <= 255 * 65536 < 2^32. So every sum equals the ref's exactly.
 */
#include "fastscan.h"

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__

#include <arm_neon.h>

enum { FS_FLUSH_NEON = 128 }; /* pairs between flushes: must stay <= 128 (see above) */

static void fs_sums_neon(const uint8_t *packed, size_t nblocks, uint32_t npairs, const uint8_t *lut,
                         uint32_t *sums) {
    const uint8x16_t m4 = vdupq_n_u8(15);
    for (size_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = packed + b * (size_t)npairs * 32;
        uint32x4_t s[8]; /* vectors 4k .. 4k+3 */
        for (int k = 0; k < 8; k++) s[k] = vdupq_n_u32(0);
        for (uint32_t p0 = 0; p0 < npairs; p0 += FS_FLUSH_NEON) {
            uint32_t p1 = npairs - p0 < FS_FLUSH_NEON ? npairs : p0 + FS_FLUSH_NEON;
            uint16x8_t a0 = vdupq_n_u16(0), a1 = a0, a2 = a0, a3 = a0; /* vectors 0-7, 8-15, 16-23, 24-31 */
            for (uint32_t p = p0; p < p1; p++) {
                const uint8_t *pr = blk + (size_t)p * 32, *tp = lut + (size_t)p * 32;
                uint8x16_t c0 = vld1q_u8(pr), c1 = vld1q_u8(pr + 16);
                uint8x16_t t0 = vld1q_u8(tp), t1 = vld1q_u8(tp + 16);
                uint8x16_t r0 = vqtbl1q_u8(t0, vandq_u8(c0, m4)), r1 = vqtbl1q_u8(t1, vandq_u8(c1, m4));
                uint8x16_t r2 = vqtbl1q_u8(t0, vshrq_n_u8(c0, 4)), r3 = vqtbl1q_u8(t1, vshrq_n_u8(c1, 4));
                a0 = vaddq_u16(a0, vaddl_u8(vget_low_u8(r0), vget_low_u8(r1)));
                a1 = vaddq_u16(a1, vaddl_high_u8(r0, r1));
                a2 = vaddq_u16(a2, vaddl_u8(vget_low_u8(r2), vget_low_u8(r3)));
                a3 = vaddq_u16(a3, vaddl_high_u8(r2, r3));
            }
            s[0] = vaddw_u16(s[0], vget_low_u16(a0));
            s[1] = vaddw_high_u16(s[1], a0);
            s[2] = vaddw_u16(s[2], vget_low_u16(a1));
            s[3] = vaddw_high_u16(s[3], a1);
            s[4] = vaddw_u16(s[4], vget_low_u16(a2));
            s[5] = vaddw_high_u16(s[5], a2);
            s[6] = vaddw_u16(s[6], vget_low_u16(a3));
            s[7] = vaddw_high_u16(s[7], a3);
        }
        for (int k = 0; k < 8; k++) vst1q_u32(sums + b * TQ_FS_BLOCK + 4 * (size_t)k, s[k]);
    }
}

tq_fs_sums_fn tq_fs_sums_neon(void) { return fs_sums_neon; }

#else

tq_fs_sums_fn tq_fs_sums_neon(void) { return NULL; }

#endif
