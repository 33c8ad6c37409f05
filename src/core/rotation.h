/*
 * rotation.h — the random orthogonal maps Pi of TurboQuant.
 *
 * TQ_ROTATION_DENSE: a Haar-random d x d orthogonal matrix, made by Householder
 * QR of a d x d matrix of tq_rng_gauss draws, with Q's columns multiplied by
 * sign(R_ii) (Mezzadri, "How to generate random matrices from the classical
 * compact groups", 2007). Computed in double, stored as float32 row-major; the
 * stored matrix IS the rotation (serialization writes it, loading reads it back
 * rather than regenerating it).
 *
 * TQ_ROTATION_HADAMARD: `rounds` rounds, each   x <- P_r H_blocks D_r x
 * where D_r is a diagonal of random signs, H_blocks applies an orthonormal
 * Walsh-Hadamard transform (scaled by 1/sqrt(len)) to each block of a greedy
 * power-of-two split of d (784 = 512 + 256 + 16; a block of 1 is the identity),
 * and P_r is a uniformly random permutation (Fisher-Yates). No padding: any d.
 * Exactly orthogonal, so the inverse is the transpose, applied in reverse order.
 *
 * TQ_ROTATION_NONE: the identity.
 *
 * All randomness comes from tq_rng(seed, stream).
 */
#ifndef TQ_ROTATION_H
#define TQ_ROTATION_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef struct tq_rotation {
    tq_rotation_kind kind;
    uint32_t dim;
    uint32_t rounds;   /* HADAMARD only */
    float *matrix;     /* DENSE only: dim*dim, row-major; y = matrix * x */
    uint32_t *signs;   /* HADAMARD only: rounds*dim sign-bit masks, 0 => +1, 0x80000000 => -1 */
    uint32_t *perms;   /* HADAMARD only: rounds*dim; round r: out[i] = in[perm[i]] */
} tq_rotation;

/** Build a rotation; on failure *rot is left zeroed (safe to release). */
TQ_INTERNAL tq_status tq_rotation_init(tq_rotation *rot, tq_rotation_kind kind, uint32_t dim,
                                       uint32_t rounds, uint64_t seed, uint64_t stream);
/** Free what init allocated and zero the struct; NULL and zeroed structs are fine. */
TQ_INTERNAL void tq_rotation_release(tq_rotation *rot);

/**
 * y = Pi x for n rows (each dim floats, contiguous). in and out may alias
 * (in == out) but must not otherwise overlap. scratch holds >= dim floats.
 */
TQ_INTERNAL void tq_rotation_forward(const tq_rotation *rot, const float *in, float *out, size_t n,
                                     float *scratch);
/** x = Pi^T y for n rows; same aliasing rules. */
TQ_INTERNAL void tq_rotation_inverse(const tq_rotation *rot, const float *in, float *out, size_t n,
                                     float *scratch);

/** In-place orthonormal Walsh-Hadamard transform of len (power of two) floats. */
TQ_INTERNAL void tq_fwht(float *x, uint32_t len);

#endif /* TQ_ROTATION_H */
