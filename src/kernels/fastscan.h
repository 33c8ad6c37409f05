/*
 * fastscan.h — FAISS-style "fast scan" of 2- and 4-bit MSE codes: indices
 * regrouped into blocks of 32 vectors, scored with per-query uint8 lookup
 * tables held in registers (AVX2/AVX-512 pshufb, NEON tbl). INTERNAL: the
 * vector index (src/index) is its user.
 *
 * Groups. A group is a 4-bit nibble of one vector's indices: with bits = 4
 * one coordinate (gs = 1), with bits = 2 two neighbouring coordinates
 * (gs = 2; nibble = idx[2g] | idx[2g+1] << 2). G = ceil(d / gs) groups; a
 * missing coordinate (odd d at 2 bits) counts as index 0 and its table is
 * built as if its query value were 0. Groups are processed in pairs:
 * P = ceil(G / 2) pairs, the missing group of an odd G has index 0 and an
 * all-zero table.
 *
 * Packed layout (tq_fs_pack). Vectors are cut into B = ceil(n / 32) blocks of
 * 32; block b holds vectors 32b .. 32b+31, those past n are all-zero indices
 * (their scores are computed and never written). Block b occupies bytes
 * [b * P * 32, (b+1) * P * 32); inside it, pair p (groups 2p, 2p+1) occupies
 * 32 bytes at p * 32, where for t = 0..15 (v = vector inside the block):
 *     byte t      = nib(v = t, group 2p)     | nib(v = t + 16, group 2p)     << 4
 *     byte 16 + t = nib(v = t, group 2p + 1) | nib(v = t + 16, group 2p + 1) << 4
 * so one 32-byte load gives both groups of the pair for all 32 vectors: the
 * low 128-bit lane is group 2p, the high lane group 2p+1, low nibbles vectors
 * 0..15, high nibbles vectors 16..31 — exactly what one 256-bit pshufb with
 * table [T_2p | T_2p+1] looks up. tq_fs_size = B * P * 32 bytes.
 *
 * Lookup table (tq_fs_lut). For group g with coordinates J_g, entry k of the
 * exact table is e_g[k] = sum_{j in J_g} qrot_j * c[digit_j(k)] (double).
 * With lo_g = min_k e_g[k], r_g = max_k e_g[k] - lo_g, one per-query step
 *     delta = (float)(max_g r_g / 255)
 * and T_g[k] = floor((e_g[k] - lo_g) / delta + 1/2) capped at 255 (every T is
 * 0 when delta is 0), offset = (float)sum_g lo_g. The table is 16 bytes per
 * group, 2P groups (tq_fs_lut_size = 32 P; padding groups all zero).
 *
 * Scan (tq_fs_scan). For every vector i, S_i = sum_g T_g[nib(i, g)] is an
 * exact integer (S_i <= 255 * 2P <= 255 * 65536 < 2^24, so (float)S_i is
 * exact too), and
 *     out[i] = offset + delta * (float)S_i     (float mul, then float add)
 * The scalar code (tq_fs_sums_ref) is the specification; the SIMD kernels
 * (AVX2, AVX-512, NEON) give the same integer sums, and the float step is
 * shared, so outputs are bit-identical whichever runs. A SIMD kernel runs
 * only when tq_kernels() is a table of its ISA (TQ_FORCE_ISA=ref forces the
 * scalar code here too). tq_fs_scan_multi scores several queries over the
 * same blocks; with the AVX-512 table one code load serves four queries.
 *
 * Error bound. Each table entry is within delta/2 of its exact value
 * (|delta * T_g[k] - (e_g[k] - lo_g)| <= delta/2: rounding to nearest, and
 * e - lo <= 255 * delta up to the rounding of delta to float), so
 *     |out[i] - sum_j qrot_j * c[idx_ij]| <= G * delta / 2  (+ float rounding:
 *     offset and delta to float, the final mul/add, ~1e-6 relative of
 *     |offset| + delta * S_i)
 * before the per-vector factor. For unit-norm rotated queries the total
 * error stays well below the spread of the scores; see tests/test_fastscan.c.
 *
 * Records (single-part MSE quantizers only: no outlier split, mse_bits 2
 * or 4). tq_fs_pack_records unpacks each record's indices (tq_unpack at the
 * part's off_idx) into the layout above and copies the per-vector scale (the
 * record's first float32). tq_fs_query_lut rotates a query with the part's
 * rotation and builds its table. The inner-product estimate that tq_score
 * computes (scale * sum_j qrot_j c[idx_j], metric IP) is then approximated by
 *     ip[i] ~= scales[i] * out[i]
 * (for TQ_NORM_UNBIASED as well: its first factor is the scale). L2 needs the
 * norms too and is left to the caller.
 */
#ifndef TQ_FASTSCAN_H
#define TQ_FASTSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "../core/common.h"

enum { TQ_FS_BLOCK = 32 };

/** Number of 4-bit groups G of a d-dimensional code at `bits` (2 or 4); 0 if invalid. */
TQ_INTERNAL uint32_t tq_fs_groups(uint32_t d, uint32_t bits);
/** Bytes of the packed layout for n vectors (0 when bits is not 2 or 4, d is 0 or above
 *  TQ_MAX_DIM, or the size overflows size_t). */
TQ_INTERNAL size_t tq_fs_size(size_t n, uint32_t d, uint32_t bits);
/** Bytes of one query's lookup table: 32 * ceil(G / 2) (0 when invalid). */
TQ_INTERNAL size_t tq_fs_lut_size(uint32_t d, uint32_t bits);

/** Regroup n x d indices (one byte each, row-major, each < 2^bits) into the blocked layout
 *  (tq_fs_size bytes; padding written as zeros). TQ_ERR_INVALID_ARG for bad arguments. */
TQ_INTERNAL tq_status tq_fs_pack(const uint8_t *idx_rows, size_t n, uint32_t d, uint32_t bits, uint8_t *out);
/** Inverse of tq_fs_pack (for tests): n x d indices back. */
TQ_INTERNAL tq_status tq_fs_unpack(const uint8_t *packed, size_t n, uint32_t d, uint32_t bits, uint8_t *idx_rows);

/** Write one vector (row of d indices) into slot i of a blocked layout, replacing what was there
 *  (no argument checks: the caller owns a layout holding slot i). */
TQ_INTERNAL void tq_fs_set_row(uint8_t *packed, size_t i, uint32_t d, uint32_t bits, const uint8_t *row);
/** Read slot i of a blocked layout back into a row of d indices. */
TQ_INTERNAL void tq_fs_get_row(const uint8_t *packed, size_t i, uint32_t d, uint32_t bits, uint8_t *row);

/** Build one query's table (tq_fs_lut_size bytes) from qrot (d floats) and the 2^bits
 *  centroids. TQ_ERR_NONFINITE if a table value is not finite. */
TQ_INTERNAL tq_status tq_fs_lut(const float *qrot, uint32_t d, uint32_t bits, const float *centroids,
                                uint8_t *lut, float *offset, float *delta);

/** out[i] = offset + delta * S_i for i < n (dispatching as tq_kernels() does). */
TQ_INTERNAL tq_status tq_fs_scan(const uint8_t *packed, size_t n, uint32_t d, uint32_t bits, const uint8_t *lut,
                                 float offset, float delta, float *out);

/** A sums kernel: for each of nblocks blocks (each P pairs = 32 * P bytes) the 32 integer
 *  sums S into sums[32 * b + v]. */
typedef void (*tq_fs_sums_fn)(const uint8_t *packed, size_t nblocks, uint32_t npairs, const uint8_t *lut,
                              uint32_t *sums);
/** The scalar specification. */
TQ_INTERNAL void tq_fs_sums_ref(const uint8_t *packed, size_t nblocks, uint32_t npairs, const uint8_t *lut,
                                uint32_t *sums);
/** The AVX2 kernel, or NULL when not compiled in (call only when tq_cpu_has_avx2()). */
TQ_INTERNAL tq_fs_sums_fn tq_fs_sums_avx2(void);
/** The AVX-512 kernel, or NULL when not compiled in (call only when tq_cpu_has_avx512()). */
TQ_INTERNAL tq_fs_sums_fn tq_fs_sums_avx512(void);
/** The NEON kernel, or NULL when not compiled in (builds other than little-endian AArch64). */
TQ_INTERNAL tq_fs_sums_fn tq_fs_sums_neon(void);
/** Sums for nq <= TQ_FS_MAX_QUERIES queries over the same blocks: table luts[q] -> sums[q] (as tq_fs_sums_fn),
 *  each code load shared by the queries. */
enum { TQ_FS_MAX_QUERIES = 8 };
typedef void (*tq_fs_sums4_fn)(const uint8_t *packed, size_t nblocks, uint32_t npairs, const uint8_t *const *luts,
                               uint32_t nq, uint32_t *const *sums);
/** The AVX-512 several-query kernel (queries four, then two, at a time), or NULL when not compiled in. */
TQ_INTERNAL tq_fs_sums4_fn tq_fs_sums4_avx512(void);
/** The several-query kernel of the running table, or NULL where there is none (then one query at a time). */
TQ_INTERNAL tq_fs_sums4_fn tq_fs_sums4_active(void);
/** tq_fs_scan for nq <= TQ_FS_MAX_QUERIES queries at once: out[q][i] = offset[q] + delta[q] * S_i(luts[q]),
 *  bit-identical to nq calls of tq_fs_scan. */
TQ_INTERNAL tq_status tq_fs_scan_multi(const uint8_t *packed, size_t n, uint32_t d, uint32_t bits, uint32_t nq,
                                       const uint8_t *const *luts, const float *offset, const float *delta,
                                       float *const *out);
/** The kernel tq_fs_scan uses: AVX-512 when tq_kernels() is the AVX-512 table, AVX2 when it is the AVX2
 *  table, NEON when it is the NEON table, else the ref. */
TQ_INTERNAL tq_fs_sums_fn tq_fs_sums_active(void);

struct tq_quantizer;
/** Blocked layout straight from n records of q (single-part MSE, mse_bits 2 or 4; others
 *  TQ_ERR_INVALID_ARG): out gets tq_fs_size(n, dim, bits) bytes, scales (may be NULL) n floats. */
TQ_INTERNAL tq_status tq_fs_pack_records(const struct tq_quantizer *q, const uint8_t *codes, size_t n,
                                         uint8_t *out, float *scales);
/** Rotate a query (dim floats) with q's rotation and build its table (same restrictions). */
TQ_INTERNAL tq_status tq_fs_query_lut(const struct tq_quantizer *q, const float *query, uint8_t *lut,
                                      float *offset, float *delta);

#endif /* TQ_FASTSCAN_H */
