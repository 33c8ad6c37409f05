/*
 * fuzz_common.h — what the fuzz targets share: a scratch file per process
 * (the loaders read paths, not buffers), a little reader over the input
 * bytes, and checksum repair for tq's own formats.
 *
 * Why repair checksums: every tq file carries CRC-32C over its header and
 * payload, so almost every random mutation is refused at the first CRC check
 * and the parser behind it is never reached. The targets therefore take a
 * mode byte: with its low bit set, the harness recomputes the CRCs of the
 * mutated file (the layout of docs/format.md §2, §3, §6) before the library
 * sees it, so the fuzzer explores every field check that follows; with the
 * bit clear the bytes go in untouched and the CRC checks themselves are
 * exercised. The library is built unchanged either way.
 */
#ifndef TQ_FUZZ_COMMON_H
#define TQ_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tq.h"
#include "io/crc32c.h"

/* Abort (a finding for libFuzzer) when a property the library promises fails. */
#define FUZZ_ASSERT(cond, ...)                                                   \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: FUZZ_ASSERT(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* Every failure must carry a message (the library's contract: a clear error). */
#define FUZZ_CHECK_FAIL_MSG(s)                                                   \
    FUZZ_ASSERT((s) == TQ_OK || tq_last_error()[0] != '\0', "status %s without a message", tq_status_str(s))

/* A per-process scratch path with the given suffix (".npy", ".tqi", ...). */
static inline const char *fuzz_path(const char *suffix) {
    static char buf[8][256];
    static const char *suffixes[8];
    for (int i = 0; i < 8; i++) {
        if (suffixes[i] && strcmp(suffixes[i], suffix) == 0) return buf[i];
        if (!suffixes[i]) {
            const char *dir = getenv("TMPDIR");
            if (!dir || !*dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
            snprintf(buf[i], sizeof buf[i], "%s/tq-fuzz-%ld-%d%s", dir, (long)getpid(), i, suffix);
            suffixes[i] = suffix;
            return buf[i];
        }
    }
    abort(); /* more than 8 suffixes: a harness bug */
}

static inline void fuzz_write(const char *path, const uint8_t *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(d, 1, n, f) != n) abort();
    if (fclose(f) != 0) abort();
}

/* The input as a stream of small decisions; reads past the end give zeros. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t n, at;
} fuzz_in;

static inline uint8_t fz_u8(fuzz_in *in) { return in->at < in->n ? in->p[in->at++] : 0; }
static inline uint32_t fz_u32(fuzz_in *in) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fz_u8(in) << (8 * i);
    return v;
}
static inline uint32_t fz_range(fuzz_in *in, uint32_t lo, uint32_t hi) { /* inclusive */
    uint32_t span = hi - lo + 1u;
    uint32_t v = span <= 256u ? fz_u8(in) : fz_u32(in);
    return lo + v % span;
}
static inline size_t fz_left(const fuzz_in *in) { return in->n - in->at; }

static inline uint32_t fz_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t fz_rd64(const uint8_t *p) { return fz_rd32(p) | (uint64_t)fz_rd32(p + 4) << 32; }
static inline void fz_wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A file of [header (its CRC in its last 4 bytes)][payload][payload CRC]: TQQZ (§2, header >= 96 bytes) and
 * TQCA (§3, header >= 40 bytes; the payload is the records). header_size is the u32 at offset 8. */
static inline void fuzz_fix_header_payload(uint8_t *b, size_t n, const char magic[4], uint32_t min_header) {
    if (n < (size_t)min_header || memcmp(b, magic, 4) != 0) return;
    uint32_t hs = fz_rd32(b + 8);
    if (hs < min_header || hs > n - 4) hs = min_header;
    fz_wr32(b + hs - 4, tq_crc32c(0, b, hs - 4));
    if (n >= (size_t)hs + 4) fz_wr32(b + n - 4, tq_crc32c(0, b + hs, n - 4 - hs));
}
static inline void fuzz_fix_tqqz(uint8_t *b, size_t n) { fuzz_fix_header_payload(b, n, "TQQZ", 96); }
static inline void fuzz_fix_tqca(uint8_t *b, size_t n) { fuzz_fix_header_payload(b, n, "TQCA", 40); }

/* TQIX (§6): the embedded quantizers of sections 0 and 1 first, then the payload and header CRCs. */
static inline void fuzz_fix_tqix(uint8_t *b, size_t n) {
    if (n < 192 || memcmp(b, "TQIX", 4) != 0) return;
    for (int s = 0; s < 2; s++) {
        uint64_t off = fz_rd64(b + 48 + 16 * s), len = fz_rd64(b + 56 + 16 * s);
        if (off <= n && len <= n - off) fuzz_fix_tqqz(b + off, (size_t)len);
    }
    fz_wr32(b + 184, tq_crc32c(0, b + 192, n - 192));
    fz_wr32(b + 188, tq_crc32c(0, b, 188));
}

/* The quantizers fuzz_codes reads code files for (make_seeds writes files for the same ones). */
enum { FUZZ_CODES_QUANTIZERS = 4 };
static inline tq_status fuzz_codes_quantizer(unsigned which, tq_quantizer **out) {
    static const uint32_t dims[FUZZ_CODES_QUANTIZERS] = {16, 8, 33, 64};
    static const uint32_t bits[FUZZ_CODES_QUANTIZERS] = {4, 2, 3, 1};
    tq_config c;
    which %= FUZZ_CODES_QUANTIZERS;
    tq_config_init(&c, dims[which], bits[which]);
    if (which == 2) c.variant = TQ_VARIANT_PROD;
    if (which == 3) c.variant = TQ_VARIANT_QJL, c.qjl = TQ_QJL_STRUCTURED;
    c.seed = 42;
    return tq_quantizer_create(&c, out);
}

#endif /* TQ_FUZZ_COMMON_H */
