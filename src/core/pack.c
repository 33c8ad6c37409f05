/*
 * pack.c — byte-aligned bit packing (layout in pack.h).
 *
 * Why planes of 4, 2 and 1 bits: a scanner then extracts every index with a
 * shift and a mask inside one byte (a 3-bit code that straddles bytes cost one
 * llama.cpp fork 58% of its decode time, DESIGN §2), and a 4-bit plane is the
 * natural input of in-register lookup-table scans (pshufb / tbl).
 */
#include "pack.h"

int tq_pack_planes(uint32_t bits, uint32_t widths[3]) {
    if (bits == 8) {
        widths[0] = 8;
        return 1;
    }
    int n = 0;
    for (uint32_t w = 4; w >= 1; w >>= 1) {
        if (bits & w) widths[n++] = w;
    }
    return n;
}

size_t tq_pack_size(uint32_t n, uint32_t bits) {
    uint32_t widths[3];
    int np = tq_pack_planes(bits, widths);
    size_t total = 0;
    for (int p = 0; p < np; p++) total += ((size_t)n * widths[p] + 7) / 8;
    return total;
}

/* One plane of constant width W: bits [shift, shift+W) of each index. Whole
 * bytes are assembled in a register and stored once (the compiler vectorizes
 * this); the last, partial byte keeps its zero padding. */
#define TQ_PACK_PLANE(W)                                                                     \
    do {                                                                                     \
        const uint32_t per = 8u / (W), mask = (1u << (W)) - 1u;                              \
        uint32_t full = n / per, j = 0;                                                      \
        for (uint32_t b = 0; b < full; b++) {                                                \
            uint32_t v = 0;                                                                  \
            for (uint32_t k = 0; k < per; k++) v |= (((uint32_t)idx[b * per + k] >> shift) & mask) << (k * (W)); \
            out[b] = (uint8_t)v;                                                             \
        }                                                                                    \
        for (j = full * per; j < n; j++)                                                     \
            out[j / per] |= (uint8_t)((((uint32_t)idx[j] >> shift) & mask) << ((j % per) * (W))); \
    } while (0);

void tq_pack(const uint8_t *idx, uint32_t n, uint32_t bits, uint8_t *out) {
    if (bits == 8) {
        memcpy(out, idx, n);
        return;
    }
    uint32_t widths[3];
    int np = tq_pack_planes(bits, widths);
    uint32_t shift = 0;
    for (int p = 0; p < np; p++) {
        size_t bytes = ((size_t)n * widths[p] + 7) / 8;
        memset(out, 0, bytes);
        switch (widths[p]) {
        case 4: TQ_PACK_PLANE(4u) break;
        case 2: TQ_PACK_PLANE(2u) break;
        default: TQ_PACK_PLANE(1u) break;
        }
        out += bytes;
        shift += widths[p];
    }
}

/*
 * One plane of width w (1, 2, 4 or 8) into bits [shift, shift+w) of idx. The
 * width is a compile-time constant inside each case so that the position
 * arithmetic is shifts and masks (a run-time division per index made scoring
 * several times slower).
 */
#define TQ_UNPACK_PLANE(W)                                                               \
    do {                                                                                 \
        /* whole bytes first, 8/W indices each (a loop the compiler vectorizes), then the tail */ \
        const uint32_t per = 8u / (W), full = n / per;                                   \
        for (uint32_t b = 0; b < full; b++) {                                            \
            uint32_t byte = in[b];                                                       \
            for (uint32_t k = 0; k < per; k++)                                           \
                idx[b * per + k] = (uint8_t)(idx[b * per + k] |                          \
                                             (((byte >> (k * (W))) & ((1u << (W)) - 1u)) << shift)); \
        }                                                                                \
        for (uint32_t j = full * per; j < n; j++) {                                      \
            uint32_t v = ((uint32_t)in[(j * (W)) >> 3] >> ((j * (W)) & 7u)) & ((1u << (W)) - 1u); \
            idx[j] = (uint8_t)(idx[j] | (v << shift));                                  \
        }                                                                                \
    } while (0)

void tq_unpack(const uint8_t *in, uint32_t n, uint32_t bits, uint8_t *idx) {
    if (bits == 8) {
        memcpy(idx, in, n);
        return;
    }
    uint32_t widths[3];
    int np = tq_pack_planes(bits, widths);
    uint32_t shift = 0;
    memset(idx, 0, n);
    for (int p = 0; p < np; p++) {
        switch (widths[p]) {
        case 4: TQ_UNPACK_PLANE(4u); break;
        case 2: TQ_UNPACK_PLANE(2u); break;
        default: TQ_UNPACK_PLANE(1u); break;
        }
        in += ((size_t)n * widths[p] + 7) / 8;
        shift += widths[p];
    }
}
