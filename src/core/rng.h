/*
 * rng.h — tq's portable, counter-based random numbers.
 *
 * Everything random in tq (rotation signs and permutations, Haar and Gaussian
 * matrices) comes from here, so that the same (seed, stream) gives
 * bit-identical results on every machine, compiler and thread count. The core
 * is Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC'11): block i of stream (seed, stream) is Philox(key = seed, counter =
 * (i, stream)). Floating-point draws use only IEEE-exact operations (+ - * /
 * sqrt) and a logarithm built from them (tq_det_log), never libm's
 * transcendental functions; build with -ffp-contract=off so no FMA changes a
 * rounding.
 */
#ifndef TQ_RNG_H
#define TQ_RNG_H

#include <stdint.h>

#include "common.h"

/* Stream ids: independent streams for independent uses of one seed. A
 * quantizer part p (0, or 0 and 1 with an outlier split) draws its rotation
 * from stream TQ_STREAM_ROTATION + 16*p and its QJL projection from
 * TQ_STREAM_QJL + 16*p, so the QJL seed is independent of the rotation. */
enum {
    TQ_STREAM_ROTATION = 1,
    TQ_STREAM_QJL = 2,
    TQ_STREAM_PART_STRIDE = 16
};

typedef struct tq_rng {
    uint64_t seed;
    uint64_t stream;
    uint64_t block;   /* next Philox block index */
    uint32_t buf[4];  /* current block's output */
    int pos;          /* next unread word of buf; 4 = empty */
} tq_rng;

/** The raw Philox4x32-10 bijection: ctr[4] encrypted under key[2]. */
TQ_INTERNAL void tq_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/** Start stream `stream` of `seed`. The first word drawn is word 0 of block 0. */
TQ_INTERNAL void tq_rng_init(tq_rng *r, uint64_t seed, uint64_t stream);
TQ_INTERNAL uint32_t tq_rng_u32(tq_rng *r);
/** Two words: low word first. */
TQ_INTERNAL uint64_t tq_rng_u64(tq_rng *r);
/** Uniform integer in [0, n), n >= 1, without modulo bias (Lemire's method with rejection). */
TQ_INTERNAL uint32_t tq_rng_below(tq_rng *r, uint32_t n);
/** Uniform double in [0, 1) with 53 random bits: (u64 >> 11) * 2^-53. */
TQ_INTERNAL double tq_rng_uniform(tq_rng *r);
/** Standard normal, Marsaglia polar method with tq_det_log; bit-reproducible. */
TQ_INTERNAL double tq_rng_gauss(tq_rng *r);
/** Natural log for x > 0 from + - * / only (to ~1 ulp); deterministic everywhere. */
TQ_INTERNAL double tq_det_log(double x);

#endif /* TQ_RNG_H */
