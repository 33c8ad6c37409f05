/*
 * codebook.h — Lloyd-Max codebooks for the coordinate law of the sphere.
 *
 * For x uniform on S^{d-1}, one coordinate t has density
 *     f_d(t) = (1 - t^2)^((d-3)/2) / B(1/2, (d-1)/2)   on [-1, 1].
 * The codebook for (d, b) is the Lloyd-Max quantizer of f_d with 2^b levels:
 * boundaries are midpoints of neighbouring centroids, each centroid the
 * conditional mean of its cell, iterated to a fixed point. It is symmetric
 * (c[k] = -c[2^b-1-k]), exact for every d >= 2 (no Gaussian approximation),
 * computed at run time in double and rounded to float32, and cached per (d, b)
 * for the life of the process (thread-safe).
 */
#ifndef TQ_CODEBOOK_H
#define TQ_CODEBOOK_H

#include <stdint.h>

#include "../kernels/kernels.h"
#include "common.h"

typedef struct tq_codebook {
    uint32_t dim;
    uint32_t bits;
    uint32_t levels;        /* 2^bits */
    float centroids[256];   /* sorted ascending; first `levels` used */
    float bounds[255];      /* bounds[k] = (c[k] + c[k+1]) / 2 in float32; levels-1 used */
    double mse_unit;        /* predicted E||x - x~||^2 for unit x: 1 - d * sum p_k c_k^2 */
} tq_codebook;

/**
 * The codebook for (dim, bits), 2 <= dim <= TQ_MAX_DIM, 1 <= bits <= 8.
 * The pointer stays valid until the process ends.
 */
TQ_INTERNAL tq_status tq_codebook_lookup(uint32_t dim, uint32_t bits, const tq_codebook **out);

/** Compute (uncached) into *cb. */
TQ_INTERNAL tq_status tq_codebook_compute(uint32_t dim, uint32_t bits, tq_codebook *cb);

/**
 * E|u_1| for u uniform on S^{d-1}, d >= 1: Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))
 * (-> sqrt(2 / (pi d))). Accurate to ~1e-15 relative for every d; no lgamma
 * (whose signgam global is not thread-safe).
 */
TQ_INTERNAL double tq_sphere_abs_mean(uint32_t d);

/** Index of the nearest centroid to v (float32 decisions on cb->bounds): the
 *  encoder's own rule, the kernel table's nearest, for one value. */
static inline uint32_t tq_codebook_nearest(const tq_codebook *cb, float v) {
    uint8_t idx;
    tq_kernels()->nearest(cb->bounds, cb->levels, &v, 1, &idx);
    return idx;
}

#endif /* TQ_CODEBOOK_H */
