/*
 * common.h — internal helpers shared by every layer of libtq: the error
 * machinery (a status plus a thread-local message, never a print or an abort),
 * overflow-checked size arithmetic, and little-endian byte access.
 *
 * Error paths stay one line long:
 *     TQ_RETURN_IF(dim == 0, TQ_ERR_DIM, "dim must be >= 1");
 *     TQ_FORWARD(tq_rotation_init(...));
 */
#ifndef TQ_COMMON_H
#define TQ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tq.h"

#if defined(__GNUC__)
#define TQ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TQ_INTERNAL __attribute__((visibility("hidden")))
#else
#define TQ_PRINTF(a, b)
#define TQ_INTERNAL
#endif

#define TQ_PI 3.14159265358979323846

/** Record a failure: sets the thread-local message and returns s. */
TQ_INTERNAL tq_status tq_fail(tq_status s, const char *fmt, ...) TQ_PRINTF(2, 3);
/** Clear the thread-local message (called at the start of public entry points). */
TQ_INTERNAL void tq_clear_error(void);

#define TQ_RETURN_IF(cond, status, ...)          \
    do {                                         \
        if (cond) return tq_fail((status), __VA_ARGS__); \
    } while (0)

#define TQ_FORWARD(call)                 \
    do {                                 \
        tq_status tq_fwd_s_ = (call);    \
        if (tq_fwd_s_ != TQ_OK) return tq_fwd_s_; \
    } while (0)

/** a*b into *out; returns 0 on overflow. */
static inline int tq_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}
static inline int tq_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

/* Little-endian access, independent of host byte order and alignment. */
static inline void tq_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void tq_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tq_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t tq_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t tq_get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t tq_get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline void tq_put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    tq_put_u32(p, u);
}
static inline float tq_get_f32(const uint8_t *p) {
    uint32_t u = tq_get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The largest |x[j]| (j < n; 0 for n = 0) as its bit pattern. Bit patterns of non-negative floats order as the
 * floats do, with Inf above every finite value and NaN above Inf, so one integer max per value (vectorizable)
 * tells at once whether a row is finite and whether some value is above a bound. */
static inline uint32_t tq_abs_bits_max(const float *x, size_t n) {
    /* 16 running maxima: independent chains the compiler keeps in vector registers */
    uint32_t m[16] = {0}, r = 0;
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (size_t k = 0; k < 16; k++) {
            uint32_t u;
            memcpy(&u, &x[j + k], 4);
            u &= 0x7fffffffu;
            m[k] = u > m[k] ? u : m[k];
        }
    for (; j < n; j++) {
        uint32_t u;
        memcpy(&u, &x[j], 4);
        u &= 0x7fffffffu;
        r = u > r ? u : r;
    }
    for (size_t k = 0; k < 16; k++) r = m[k] > r ? m[k] : r;
    return r;
}

static inline uint32_t tq_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/** IEEE half <-> float, round to nearest even; portable, no F16C needed. */
TQ_INTERNAL uint16_t tq_f32_to_f16(float f);
TQ_INTERNAL float tq_f16_to_f32(uint16_t h);

#endif /* TQ_COMMON_H */
