/*
 * common.c — status strings, the thread-local error message, version and
 * build information, and portable fp16 conversion.
 *
 * The error message is a fixed thread-local buffer: setting it never
 * allocates, so even an out-of-memory failure can be described.
 */
#include "common.h"

#include <stdarg.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local char tq_error_buf[512];

tq_status tq_fail(tq_status s, const char *fmt, ...) {
    /* format into a local buffer first: an argument may be tq_last_error() itself */
    char tmp[sizeof tq_error_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(tq_error_buf, tmp, sizeof tmp);
    return s;
}

void tq_clear_error(void) { tq_error_buf[0] = '\0'; }

const char *tq_last_error(void) { return tq_error_buf; }

const char *tq_status_str(tq_status s) {
    switch (s) {
    case TQ_OK: return "ok";
    case TQ_ERR_INVALID_ARG: return "invalid argument";
    case TQ_ERR_DIM: return "bad dimension";
    case TQ_ERR_BITS: return "bad bit count";
    case TQ_ERR_NONFINITE: return "NaN or Inf in input";
    case TQ_ERR_SIZE: return "size mismatch or overflow";
    case TQ_ERR_NOMEM: return "out of memory";
    case TQ_ERR_IO: return "I/O error";
    case TQ_ERR_FORMAT: return "bad file format";
    case TQ_ERR_CHECKSUM: return "checksum mismatch";
    case TQ_ERR_VERSION: return "unsupported format version";
    case TQ_ERR_STATE: return "invalid state";
    case TQ_ERR_MISMATCH: return "belongs to another quantizer";
    }
    return "unknown status";
}

#define TQ_STR2(x) #x
#define TQ_STR(x) TQ_STR2(x)

const char *tq_version_string(void) {
    return "tq " TQ_STR(TQ_VERSION_MAJOR) "." TQ_STR(TQ_VERSION_MINOR) "." TQ_STR(TQ_VERSION_PATCH);
}

void tq_free(void *p) { free(p); }

uint16_t tq_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xffu) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0u)); /* Inf / NaN */
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u); /* overflow -> Inf */
    if (e <= 0) {                                   /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1u);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++; /* may carry into exponent: fine */
    return (uint16_t)half;
}

float tq_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        if (man == 0) {
            x = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        x = sign | 0x7f800000u | (man << 13);
    } else {
        x = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}
