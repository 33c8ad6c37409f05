/*
 * test_pack.c — bit packing: round trips for every width and odd lengths, the
 * exact byte layout docs/format.md promises, zero padding, and the fp16
 * conversion used by uniform group factors.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/common.h"
#include "core/pack.h"

static void test_roundtrip(void) {
    const uint32_t lens[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 100, 784, 1536};
    uint32_t seed = 12345;
    for (uint32_t bits = 1; bits <= 8; bits++) {
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            uint32_t n = lens[li];
            uint8_t *idx = malloc(n), *back = malloc(n);
            size_t sz = tq_pack_size(n, bits);
            uint8_t *buf = malloc(sz + 1);
            for (uint32_t j = 0; j < n; j++) {
                seed = seed * 1664525u + 1013904223u;
                idx[j] = (uint8_t)((seed >> 24) & ((1u << bits) - 1u));
            }
            buf[sz] = 0x5A; /* guard byte: nothing is written past the packed size */
            tq_pack(idx, n, bits, buf);
            tq_unpack(buf, n, bits, back);
            CHECK(memcmp(idx, back, n) == 0, "round trip bits=%u n=%u", bits, n);
            CHECK(buf[sz] == 0x5A, "wrote past the end bits=%u n=%u", bits, n);
            free(idx);
            free(back);
            free(buf);
        }
    }
}

static void test_layout(void) {
    uint32_t w[3];
    CHECK(tq_pack_planes(3, w) == 2 && w[0] == 2 && w[1] == 1, "3 bits = 2 + 1");
    CHECK(tq_pack_planes(7, w) == 3 && w[0] == 4 && w[1] == 2 && w[2] == 1, "7 bits = 4 + 2 + 1");
    CHECK(tq_pack_planes(8, w) == 1 && w[0] == 8, "8 bits = one byte plane");
    CHECK(tq_pack_planes(5, w) == 2 && w[0] == 4 && w[1] == 1, "5 bits = 4 + 1");
    CHECK(tq_pack_size(10, 3) == 3 + 2, "10 x 3 bits: 3 bytes of 2-bit plane + 2 of 1-bit plane");
    CHECK(tq_pack_size(128, 4) == 64, "nibbles");
    /* indices 0..4 at 3 bits: low 2 bits 0,1,2,3,0 -> byte0 = 0b11100100, byte1 = 0;
     * high bit 0,0,0,0,1 -> byte = 0b00010000 */
    const uint8_t idx[5] = {0, 1, 2, 3, 4};
    uint8_t out[3];
    memset(out, 0xFF, sizeof out);
    tq_pack(idx, 5, 3, out);
    CHECK(out[0] == 0xE4 && out[1] == 0x00 && out[2] == 0x10, "layout %02x %02x %02x", out[0], out[1], out[2]);
    /* 4-bit: index j in the low nibble when j is even */
    const uint8_t nib[3] = {0x1, 0xA, 0x7};
    tq_pack(nib, 3, 4, out);
    CHECK(out[0] == 0xA1 && out[1] == 0x07, "nibbles %02x %02x (padding zero)", out[0], out[1]);
}

static void test_f16(void) {
    const float exact[] = {0.0f, 1.0f, -2.0f, 0.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f, -0.375f};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        CHECK(tq_f16_to_f32(tq_f32_to_f16(exact[i])) == exact[i], "f16 exact %g", exact[i]);
    CHECK(tq_f32_to_f16(1.0f) == 0x3C00, "1.0 = 0x3C00");
    CHECK(tq_f32_to_f16(65520.0f) == 0x7C00, "overflow to Inf");
    CHECK(tq_f32_to_f16(1.0f + 1.0f / 2048.0f) == 0x3C00, "ties to even (down)");
    CHECK(tq_f32_to_f16(1.0f + 3.0f / 2048.0f) == 0x3C02, "ties to even (up)");
    /* every half converts to float and back unchanged (NaNs stay NaN) */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = tq_f16_to_f32((uint16_t)h);
        uint16_t back = tq_f32_to_f16(f);
        int is_nan = ((h & 0x7C00u) == 0x7C00u) && (h & 0x3FFu);
        if (is_nan ? !(f != f) : back != h) bad++;
    }
    CHECK(bad == 0, "%d halves do not round trip", bad);
}

int main(void) {
    test_roundtrip();
    test_layout();
    test_f16();
    return CHECK_DONE();
}
