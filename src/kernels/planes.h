/*
 * planes.h — where the bit planes of one packed record start (pack.h's
 * layout: planes of width 4, 2 and 1 for the bits set in `bits`, one byte
 * plane for 8 bits), and the index of one coordinate read from them. Shared
 * by the SIMD tables, which decode whole groups of indices with their own
 * instructions and use tq_planes_index_at for the coordinates past the last
 * whole group. Plain C, inlined into the ISA-specific callers.
 */
#ifndef TQ_PLANES_H
#define TQ_PLANES_H

#include <stddef.h>
#include <stdint.h>

typedef struct tq_planes {
    const uint8_t *p[3]; /* start of each plane */
    uint32_t w[3], s[3]; /* its width and the bit position of its bits in an index */
    int n;
} tq_planes;

/* The planes of a record of d indices of `bits` (1..8) bits starting at packed. */
static inline void tq_planes_init(tq_planes *pl, const uint8_t *packed, uint32_t d, uint32_t bits) {
    pl->n = 0;
    uint32_t shift = 0;
    for (uint32_t w = bits == 8 ? 8 : 4; w >= 1; w >>= 1) {
        if (!(bits & w)) continue;
        pl->p[pl->n] = packed;
        pl->w[pl->n] = w;
        pl->s[pl->n] = shift;
        pl->n++;
        packed += ((size_t)d * w + 7) / 8;
        shift += w;
    }
}

/* The index of coordinate j (scalar). */
static inline uint32_t tq_planes_index_at(const tq_planes *pl, uint32_t j) {
    uint32_t v = 0;
    for (int k = 0; k < pl->n; k++) {
        uint32_t w = pl->w[k];
        if (w == 8) return pl->p[k][j];
        uint32_t bit = j * w;
        v |= (((uint32_t)pl->p[k][bit >> 3] >> (bit & 7u)) & ((1u << w) - 1u)) << pl->s[k];
    }
    return v;
}

#endif /* TQ_PLANES_H */
