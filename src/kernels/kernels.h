/*
 * kernels.h — the hot loops of tq behind one table of function pointers,
 * chosen once per process (dispatch.c) from what the CPU and OS support.
 *
 * The scalar table ("ref", kernels_ref.c) is the specification. Every other
 * table must give:
 *   - bit-identical results for everything that decides a code: fwht,
 *     dense_forward (its documented summation order), nearest (a NaN output
 *     need only be a NaN: compilers do not keep NaN payloads);
 *   - results within a stated tolerance for scores: ip_codes and ip_signs
 *     (the ref sums in double; a SIMD table may sum in float; tests hold it to
 *     |fast - ref| <= 1e-5 * sum_j |q_j| * max|c|, see tests/test_kernels.c).
 * TQ_FORCE_ISA=ref|avx2|avx512|neon (environment, read once) forces a table;
 * asking for one the CPU cannot run, or one not compiled in (neon on x86-64,
 * avx2 on AArch64), falls back to ref, and tq_kernel_name() tells which table
 * actually runs. On AArch64 the NEON table runs by default: NEON is part of
 * every AArch64 CPU, so it needs no CPU check.
 *
 * Layering: kernels depend only on common.h; core (rotations) and quant
 * (encode, score) call them through tq_kernels().
 */
#ifndef TQ_KERNELS_H
#define TQ_KERNELS_H

#include <stdint.h>

#include "../core/common.h"

/** One part of a KV record for kv_logits: G x d rotated queries, its codebook, the n per-token factors of the
 *  records being scored, and where its packed indices sit in a record. */
typedef struct tq_kv_part {
    const float *q;
    const float *cent;
    const float *f;
    size_t off;
    uint32_t d, bits;
} tq_kv_part;

typedef struct tq_kernel_table {
    const char *name;
    /** In-place orthonormal Walsh-Hadamard transform, len a power of two:
     *  stages h = 1, 2, 4, ... (u+v, u-v), then one multiply by (float)(1/sqrt(len)). */
    void (*fwht)(float *x, uint32_t len);
    /** y = M x for a dim x dim row-major M: per row four double partial sums
     *  (element j to sum j mod 4), combined (s0+s1)+(s2+s3), rounded to float once. */
    void (*dense_forward)(const float *M, uint32_t dim, const float *x, float *y);
    /** idx[j] = number of bounds[0..levels-2] strictly below y[j] (nearest centroid);
     *  bounds sorted ascending, no NaN, 2 <= levels <= 256. */
    void (*nearest)(const float *bounds, uint32_t levels, const float *y, uint32_t d, uint8_t *idx);
    /** sum_j q[j] * cent[idx_j] where idx is packed at `bits` (pack.h layout).
     *  scratch holds >= d bytes (tables may ignore it). */
    double (*ip_codes)(const float *q, const float *cent, const uint8_t *packed, uint32_t d, uint32_t bits,
                       uint8_t *scratch);
    /** sum_i (bit i of signs set ? +p[i] : -p[i]) (bit i = byte i/8, bit i%8). */
    double (*ip_signs)(const float *p, const uint8_t *signs, uint32_t d);
    /* Encode helpers; all three bit-identical to ref (they decide stored factors). */
    /** sum_j (double)a[j]*(double)b[j]: element j < 4*floor(d/4) to partial sum j % 4, the tail
     *  j >= 4*floor(d/4) added to s0 in order, result (s0+s1)+(s2+s3). */
    double (*dot_f64)(const float *a, const float *b, uint32_t d);
    /** out[j] = (float)((double)x[j] / s): IEEE division, correctly rounded on every ISA. */
    void (*div_f32)(const float *x, double s, uint32_t d, float *out);
    /** out[j] = table[idx[j]]; table holds at least max(16, max(idx)+1) floats (a SIMD table may read
     *  16 entries). */
    void (*lookup)(const float *table, const uint8_t *idx, uint32_t d, float *out);
    /* KV-cache attention (src/kv): n records at codes + t * stride, each d indices packed at `bits`;
     * G queries share every decoded record. scratch holds >= d bytes. Scores within the ip_codes
     * tolerance (per query), accumulations within 1e-5 * sum_t |w| * max|c| per element. */
    /** Logits of n records of np <= 2 parts: out[g * ostride + t] = bias[g] + sum_p f_p[t] * dot_p, dot_p =
     *  sum_j q_p[g * d_p + j] * cent_p[idx_t,j] with part p's indices at codes + t * stride + off_p (ref: dot_p
     *  as ip_codes_ref, rounded to float; then (bias + f_0 dot_0) + f_1 dot_1 in float). */
    void (*kv_logits)(const tq_kv_part *parts, uint32_t np, uint32_t G, const uint8_t *codes, size_t stride,
                      size_t n, const float *bias, uint8_t *scratch, float *out, size_t ostride);
    /** acc[g * d + j] += sum_t w[g * n + t] * cent[idx_t,j] (ref: float, token by token, in order). */
    void (*kv_accum)(const float *w, uint32_t G, const float *cent, const uint8_t *codes, size_t stride, size_t n,
                     uint32_t d, uint32_t bits, uint8_t *scratch, float *acc);
    /** out[t] = the IEEE half at src + t * stride (little-endian), as float: exact, bit-identical to ref. */
    void (*f16_load)(const uint8_t *src, size_t stride, size_t n, float *out);
    /** One online-softmax step of one query over n logits x: with M = max(*m, max_t x[t]), x[t] becomes
     *  exp(x[t] - M) (ref: exp in double, rounded; SIMD tables within (1e-6 + 2^-23 |x[t] - M|) relative -- the
     *  float subtraction -- or 1e-30 absolute where exp underflows), *sum receives the sum of
     *  the new x, *m becomes M; returns exp(old *m - M), the factor for what was accumulated before (0 when
     *  the old *m is -inf). n >= 1, x finite. */
    float (*softmax_block)(float *x, size_t n, float *m, double *sum);
    /** out[r] = dot_f64(a[r], b[r], d) for r < 4, bit for bit: four independent sums at once (one dot_f64
     *  is a chain of dependent additions; four hide each other's latency). */
    void (*dot_f64_x4)(const float *const a[4], const float *const b[4], uint32_t d, double out[4]);
    /** The largest |x[j]| (j < n; 0 for n = 0) as its bit pattern, sign cleared (tq_abs_bits_max): >= 0x7f800000
     *  means a NaN or Inf; the scan behind every finiteness and norm check of input rows. */
    uint32_t (*absmax_bits)(const float *x, size_t n);
} tq_kernel_table;

/** The table in use (selected on first call; thread-safe). */
TQ_INTERNAL const tq_kernel_table *tq_kernels(void);
/** Tests and fuzzing only: make t the table every later call uses (t = NULL: back to the one chosen at start).
 *  Not thread-safe: call it while no other thread is inside the library, with tq_set_threads(1). */
TQ_INTERNAL void tq_kernels_override(const tq_kernel_table *t);
/** The scalar reference table. */
TQ_INTERNAL const tq_kernel_table *tq_kernels_ref(void);
/** The AVX2 table, or NULL when not compiled in (non-x86 builds). */
TQ_INTERNAL const tq_kernel_table *tq_kernels_avx2(void);
/** The AVX-512 table (the AVX2 one with some kernels replaced), or NULL when not compiled in. */
TQ_INTERNAL const tq_kernel_table *tq_kernels_avx512(void);
/** The NEON table (kernels_neon.c), or NULL when not compiled in (builds other than little-endian
 *  AArch64). */
TQ_INTERNAL const tq_kernel_table *tq_kernels_neon(void);
/** Whether the CPU and OS can run AVX2 code (CPUID leaf 7 AVX2, FMA, F16C + OSXSAVE + XGETBV YMM state). */
TQ_INTERNAL int tq_cpu_has_avx2(void);
/** Whether they can run the AVX-512 table (AVX2 as above, AVX512F/BW/VL, XGETBV opmask and ZMM state). */
TQ_INTERNAL int tq_cpu_has_avx512(void);

#endif /* TQ_KERNELS_H */
