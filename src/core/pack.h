/*
 * pack.h — byte-aligned bit packing of b-bit indices, b = 1..8.
 *
 * A b-bit index is split into planes of widths taken greedily from {4, 2, 1}
 * (b=3: 2+1, b=5: 4+1, b=6: 4+2, b=7: 4+2+1, b=8: one 8-bit plane; b=1,2,4: one
 * plane). Plane p holds bits [s_p, s_p + w_p) of every index, where s_p is the
 * sum of the earlier widths (the widest plane holds the lowest bits). Inside a
 * plane of width w, index j sits at byte (j*w)/8, bit (j*w)%8, least
 * significant bits first — so no value ever straddles a byte. Each plane is
 * padded to a whole byte with zero bits; planes follow one another.
 */
#ifndef TQ_PACK_H
#define TQ_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/** Bytes that n indices of `bits` bits take. */
TQ_INTERNAL size_t tq_pack_size(uint32_t n, uint32_t bits);
/** Plane widths of a bit count: fills widths[0..count) and returns count (1..3). */
TQ_INTERNAL int tq_pack_planes(uint32_t bits, uint32_t widths[3]);
/** Pack n indices (each < 2^bits) into tq_pack_size(n, bits) bytes. */
TQ_INTERNAL void tq_pack(const uint8_t *idx, uint32_t n, uint32_t bits, uint8_t *out);
/** Unpack n indices. */
TQ_INTERNAL void tq_unpack(const uint8_t *in, uint32_t n, uint32_t bits, uint8_t *idx);

#endif /* TQ_PACK_H */
