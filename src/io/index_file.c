/*
 * index_file.c — the index file TQIX (docs/format.md §6): atomic save, load,
 * and a memory-mapped open.
 *
 * Layout: a 192-byte header, then up to eight sections, each starting at a
 * multiple of 64 bytes (zero padding between), in this order:
 *   0 the quantizer (a TQQZ serialization), 1 the rerank quantizer,
 *   2 ids (int64), 3 records or blocked indices, 4 factors (float32),
 *   5 rerank data (float32 rows or rerank records), 6 the center (float32),
 *   7 <x, center> per vector (float32).
 * The header holds every section's offset and length, which must be exactly
 * the canonical ones the header's own fields imply; a CRC-32C covers the
 * header and another everything after it. A loader checks the file size
 * against the header before it maps or allocates anything, then both
 * checksums, then the quantizers (their own loader), then the ids (>= 0,
 * distinct, below next_id) and the zero padding of the last block.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../index/index.h"
#include "../kernels/fastscan.h"
#include "../quant/quantizer.h"
#include "crc32c.h"
#include "fileio.h"

enum { IX_HEADER = 192, IX_ALIGN = 64, IX_SECTIONS = 8 };
#define IX_MAJOR 1u
#define IX_MINOR 0u

static uint64_t round_up(uint64_t v) { return (v + IX_ALIGN - 1) / IX_ALIGN * IX_ALIGN; }

/* Canonical section lengths for n vectors; 0 when a size overflows. */
static int section_lengths(const tq_index *ix, uint64_t n, uint64_t qlen, uint64_t rqlen, int has_center,
                           uint64_t len[IX_SECTIONS]) {
    uint64_t d = ix->cfg.quant.dim;
    const uint64_t lim = (uint64_t)1 << 60;
    if (n > lim / 8 || d > TQ_MAX_DIM) return 0;
    len[0] = qlen;
    len[1] = rqlen;
    len[2] = n * 8;
    len[3] = 0;
    len[4] = 0;
    len[5] = 0;
    len[6] = has_center ? d * 4 : 0;
    len[7] = has_center && ix->cfg.metric != TQ_INDEX_L2 ? n * 4 : 0;
    if (ix->fs) {
        size_t b = tq_index_blocks_bytes(ix, (size_t)n);
        if (n && !b) return 0;
        len[3] = b;
        len[4] = n * ix->nf * 4;
    } else {
        if (ix->code_size && n > lim / ix->code_size) return 0;
        len[3] = n * ix->code_size;
    }
    if (ix->cfg.rerank == TQ_RERANK_FLOAT) {
        if (n > lim / (d * 4)) return 0;
        len[5] = n * d * 4;
    } else if (ix->cfg.rerank == TQ_RERANK_CODE) {
        if (ix->rcode_size && n > lim / ix->rcode_size) return 0;
        len[5] = n * ix->rcode_size;
    }
    return 1;
}

/* Offsets from lengths: an empty section has offset 0. Returns the file size. */
static uint64_t section_offsets(const uint64_t len[IX_SECTIONS], uint64_t off[IX_SECTIONS]) {
    uint64_t pos = IX_HEADER;
    for (int s = 0; s < IX_SECTIONS; s++) {
        if (!len[s]) {
            off[s] = 0;
            continue;
        }
        off[s] = round_up(pos);
        pos = off[s] + len[s];
    }
    return pos;
}

/* ----------------------------------------------------------------- save */

typedef struct {
    const tq_index *ix;
    uint8_t *qblob, *rqblob;
    uint64_t len[IX_SECTIONS], off[IX_SECTIONS], size;
} save_ctx;

static const void *section_data(const save_ctx *c, int s) {
    const tq_index *ix = c->ix;
    switch (s) {
    case 0: return c->qblob;
    case 1: return c->rqblob;
    case 2: return ix->ids;
    case 3: return ix->fs ? (const void *)ix->blocks : (const void *)ix->records;
    case 4: return ix->factors;
    case 5: return ix->rerank_f ? (const void *)ix->rerank_f : (const void *)ix->rerank_c;
    case 6: return ix->center;
    default: return ix->xc;
    }
}

/* The ids and float arrays are written little-endian (byte by byte on other hosts). */
static int host_is_le(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static tq_status write_section(const save_ctx *c, int s, FILE *f, uint32_t *crc) {
    const uint8_t *p = section_data(c, s);
    uint64_t len = c->len[s];
    int swap = !host_is_le() && (s == 2 || s == 4 || s >= 6 || (s == 5 && c->ix->rerank_f));
    size_t elem = s == 2 ? 8 : 4;
    uint8_t buf[4096];
    for (uint64_t done = 0; done < len;) {
        size_t m = len - done < sizeof buf ? (size_t)(len - done) : sizeof buf;
        memcpy(buf, p + done, m);
        if (swap)
            for (size_t i = 0; i + elem <= m; i += elem)
                for (size_t a = 0, b = elem - 1; a < b; a++, b--) {
                    uint8_t t = buf[i + a];
                    buf[i + a] = buf[i + b];
                    buf[i + b] = t;
                }
        if (crc) *crc = tq_crc32c(*crc, buf, m);
        if (f && fwrite(buf, 1, m, f) != m) return tq_fail(TQ_ERR_IO, "write failed");
        done += m;
    }
    return TQ_OK;
}

static void make_header(const save_ctx *c, uint32_t payload_crc, uint8_t h[IX_HEADER]) {
    const tq_index *ix = c->ix;
    memset(h, 0, IX_HEADER);
    memcpy(h, "TQIX", 4);
    tq_put_u16(h + 4, IX_MAJOR);
    tq_put_u16(h + 6, IX_MINOR);
    tq_put_u32(h + 8, IX_HEADER);
    tq_put_u32(h + 12, (uint32_t)ix->fs);
    tq_put_u32(h + 16, (uint32_t)ix->cfg.metric);
    tq_put_u32(h + 20, (uint32_t)ix->cfg.rerank);
    tq_put_u32(h + 24, ix->cfg.rerank == TQ_RERANK_CODE ? ix->cfg.rerank_bits : 0);
    tq_put_u32(h + 28, ix->cfg.quant.dim);
    tq_put_u64(h + 32, ix->n);
    tq_put_u64(h + 40, (uint64_t)ix->next_id);
    for (int s = 0; s < IX_SECTIONS; s++) {
        tq_put_u64(h + 48 + 16 * s, c->off[s]);
        tq_put_u64(h + 56 + 16 * s, c->len[s]);
    }
    tq_put_u32(h + 176, (uint32_t)ix->cfg.center);
    tq_put_u32(h + 184, payload_crc);
    tq_put_u32(h + 188, tq_crc32c(0, h, 188));
}

static tq_status payload(const save_ctx *c, FILE *f, uint32_t *crc) {
    static const uint8_t zeros[IX_ALIGN];
    uint64_t pos = IX_HEADER;
    for (int s = 0; s < IX_SECTIONS; s++) {
        if (!c->len[s]) continue;
        size_t pad = (size_t)(c->off[s] - pos);
        if (crc) *crc = tq_crc32c(*crc, zeros, pad);
        if (f && pad && fwrite(zeros, 1, pad, f) != pad) return tq_fail(TQ_ERR_IO, "write failed");
        TQ_FORWARD(write_section(c, s, f, crc));
        pos = c->off[s] + c->len[s];
    }
    return TQ_OK;
}

static tq_status save_fn(void *vctx, FILE *f) {
    const save_ctx *c = vctx;
    uint32_t crc = 0;
    TQ_FORWARD(payload(c, NULL, &crc));
    uint8_t h[IX_HEADER];
    make_header(c, crc, h);
    TQ_RETURN_IF(fwrite(h, 1, IX_HEADER, f) != IX_HEADER, TQ_ERR_IO, "write failed");
    return payload(c, f, NULL);
}

static tq_status blob(const tq_quantizer *q, uint8_t **out, uint64_t *len) {
    *out = NULL;
    *len = 0;
    if (!q) return TQ_OK;
    size_t sz = 0, w = 0;
    TQ_FORWARD(tq_quantizer_serialized_size(q, &sz));
    *out = malloc(sz);
    TQ_RETURN_IF(!*out, TQ_ERR_NOMEM, "out of memory serializing a quantizer");
    TQ_FORWARD(tq_quantizer_serialize(q, *out, sz, &w));
    *len = w;
    return TQ_OK;
}

static tq_status index_save_unlocked(const tq_index *ix, const char *path) {
    tq_clear_error();
    TQ_RETURN_IF(!ix || !path, TQ_ERR_INVALID_ARG, "NULL index or path");
    save_ctx c;
    memset(&c, 0, sizeof c);
    c.ix = ix;
    uint64_t ql = 0, rql = 0;
    tq_status s = blob(ix->q, &c.qblob, &ql);
    if (s == TQ_OK) s = blob(ix->rq, &c.rqblob, &rql);
    if (s == TQ_OK && !section_lengths(ix, ix->n, ql, rql, ix->center != NULL, c.len))
        s = tq_fail(TQ_ERR_SIZE, "index too large to save");
    if (s == TQ_OK) {
        c.size = section_offsets(c.len, c.off);
        s = tq_write_atomic(path, save_fn, &c);
    }
    free(c.qblob);
    free(c.rqblob);
    return s;
}

/* ----------------------------------------------------------------- load */

/* Free an index whose arrays still point into the caller's image (the caller unmaps it). */
static void drop_parsed(tq_index *ix) {
    tq_index_detach(ix);
    tq_index_free(ix);
}

/* Parse and check a whole file image (mapped or read). On success *out points into img. */
static tq_status parse(const uint8_t *img, uint64_t size, const char *path, tq_index **out) {
    *out = NULL;
    TQ_RETURN_IF(size < IX_HEADER, TQ_ERR_FORMAT, "%s: truncated: %llu bytes, an index header is %d", path,
                 (unsigned long long)size, IX_HEADER);
    TQ_RETURN_IF(memcmp(img, "TQIX", 4) != 0, TQ_ERR_FORMAT, "%s: not a tq index file (magic is not TQIX)", path);
    uint32_t major = tq_get_u16(img + 4), minor = tq_get_u16(img + 6);
    TQ_RETURN_IF(major != IX_MAJOR, TQ_ERR_VERSION, "%s: index format %u.%u is not supported (this build reads 1.x)",
                 path, major, minor);
    TQ_RETURN_IF(tq_get_u32(img + 188) != tq_crc32c(0, img, 188), TQ_ERR_CHECKSUM,
                 "%s: header checksum mismatch (the file is damaged)", path);
    TQ_RETURN_IF(tq_get_u32(img + 8) != IX_HEADER, TQ_ERR_FORMAT, "%s: header size %u is not %d", path,
                 tq_get_u32(img + 8), IX_HEADER);
    for (int i = 180; i < 184; i++)
        TQ_RETURN_IF(img[i] != 0, TQ_ERR_FORMAT, "%s: reserved header byte %d is not zero", path, i);
    uint32_t center_mode = tq_get_u32(img + 176);
    TQ_RETURN_IF(center_mode > TQ_CENTER_GIVEN, TQ_ERR_FORMAT, "%s: bad center mode %u", path, center_mode);
    uint32_t storage = tq_get_u32(img + 12), metric = tq_get_u32(img + 16), rerank = tq_get_u32(img + 20);
    uint32_t rbits = tq_get_u32(img + 24), dim = tq_get_u32(img + 28);
    uint64_t n = tq_get_u64(img + 32), next_id = tq_get_u64(img + 40);
    TQ_RETURN_IF(storage > 1 || metric > TQ_INDEX_COSINE || rerank > TQ_RERANK_CODE, TQ_ERR_FORMAT,
                 "%s: bad storage/metric/rerank fields (%u/%u/%u)", path, storage, metric, rerank);
    TQ_RETURN_IF((rerank == TQ_RERANK_CODE) != (rbits != 0) || rbits > TQ_MAX_BITS, TQ_ERR_FORMAT,
                 "%s: rerank bits %u do not fit rerank kind %u", path, rbits, rerank);
    TQ_RETURN_IF(next_id > (uint64_t)INT64_MAX || n > next_id, TQ_ERR_FORMAT, "%s: %llu vectors but next id %llu",
                 path, (unsigned long long)n, (unsigned long long)next_id);
    uint64_t off[IX_SECTIONS], len[IX_SECTIONS];
    for (int s = 0; s < IX_SECTIONS; s++) {
        off[s] = tq_get_u64(img + 48 + 16 * s);
        len[s] = tq_get_u64(img + 56 + 16 * s);
        TQ_RETURN_IF(len[s] > size || off[s] > size - len[s], TQ_ERR_FORMAT,
                     "%s: truncated: section %d ends past the file's %llu bytes", path, s, (unsigned long long)size);
    }
    TQ_RETURN_IF(len[0] == 0, TQ_ERR_FORMAT, "%s: no quantizer section", path);
    TQ_RETURN_IF((rerank == TQ_RERANK_CODE) != (len[1] != 0), TQ_ERR_FORMAT,
                 "%s: rerank quantizer section does not match the rerank kind", path);
    uint32_t crc = tq_crc32c(0, img + IX_HEADER, (size_t)(size - IX_HEADER));
    TQ_RETURN_IF(crc != tq_get_u32(img + 184), TQ_ERR_CHECKSUM, "%s: payload checksum mismatch (the file is damaged)",
                 path);

    /* quantizers through their own loader */
    tq_quantizer *q = NULL, *rq = NULL;
    tq_status st = tq_quantizer_deserialize(img + off[0], (size_t)len[0], &q);
    if (st != TQ_OK) return tq_fail(st, "%s: quantizer section: %s", path, tq_last_error());
    if (len[1]) {
        st = tq_quantizer_deserialize(img + off[1], (size_t)len[1], &rq);
        if (st != TQ_OK) {
            tq_quantizer_free(q);
            return tq_fail(st, "%s: rerank quantizer section: %s", path, tq_last_error());
        }
    }
    tq_index_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.metric = (tq_index_metric)metric;
    cfg.rerank = (tq_rerank_kind)rerank;
    cfg.rerank_bits = rbits;
    cfg.center = (tq_center_mode)center_mode;
    tq_index *ix = NULL;
    TQ_FORWARD(tq_index_wrap(&cfg, q, rq, &ix)); /* owns q and rq from here */
    ix->cfg.rerank_bits = rbits;
#define FAIL(status, ...)                        \
    do {                                         \
        tq_status f_ = tq_fail(status, __VA_ARGS__); \
        drop_parsed(ix);                         \
        return f_;                               \
    } while (0)
    if (ix->cfg.quant.dim != dim) FAIL(TQ_ERR_FORMAT, "%s: header dim %u but the quantizer's is %u", path, dim,
                                       ix->cfg.quant.dim);
    if ((uint32_t)ix->fs != storage) FAIL(TQ_ERR_FORMAT, "%s: storage kind %u does not fit its quantizer", path, storage);
    if (rq) {
        tq_config rc;
        if (tq_quantizer_get_config(rq, &rc) != TQ_OK || rc.dim != dim || rc.bits != rbits ||
            rc.variant != TQ_VARIANT_MSE || rc.outlier_count)
            FAIL(TQ_ERR_FORMAT, "%s: the rerank quantizer does not fit the header", path);
    }
    int has_center = len[6] != 0;
    if (center_mode == TQ_CENTER_NONE ? has_center : center_mode == TQ_CENTER_GIVEN ? !has_center : (n > 0 && !has_center))
        FAIL(TQ_ERR_FORMAT, "%s: the center section does not fit center mode %u", path, center_mode);
    uint64_t want[IX_SECTIONS], woff[IX_SECTIONS];
    if (!section_lengths(ix, n, len[0], len[1], has_center, want)) FAIL(TQ_ERR_FORMAT, "%s: %llu vectors is absurd", path,
                                                            (unsigned long long)n);
    uint64_t total = section_offsets(want, woff);
    for (int s = 0; s < IX_SECTIONS; s++)
        if (want[s] != len[s] || woff[s] != off[s])
            FAIL(TQ_ERR_FORMAT, "%s: section %d is at %llu+%llu, expected %llu+%llu", path, s,
                 (unsigned long long)off[s], (unsigned long long)len[s], (unsigned long long)woff[s],
                 (unsigned long long)want[s]);
    if (total != size) FAIL(TQ_ERR_FORMAT, "%s: %llu bytes, expected %llu (truncated or extended)", path,
                            (unsigned long long)size, (unsigned long long)total);
    /* padding between sections is zero */
    for (uint64_t pos = IX_HEADER, s = 0; s < IX_SECTIONS; s++) {
        if (!len[s]) continue;
        for (uint64_t b = pos; b < off[s]; b++)
            if (img[b]) FAIL(TQ_ERR_FORMAT, "%s: padding byte %llu is not zero", path, (unsigned long long)b);
        pos = off[s] + len[s];
    }
    ix->n = (size_t)n;
    ix->next_id = (int64_t)next_id;
    ix->ids = (int64_t *)(void *)(img + off[2]);
    if (ix->fs) {
        ix->blocks = (uint8_t *)(img + off[3]);
        ix->factors = (float *)(void *)(img + off[4]);
    } else {
        ix->records = (uint8_t *)(img + off[3]);
    }
    if (rerank == TQ_RERANK_FLOAT) ix->rerank_f = (float *)(void *)(img + off[5]);
    if (rerank == TQ_RERANK_CODE) ix->rerank_c = (uint8_t *)(img + off[5]);
    if (has_center) {
        const float *cv = (const float *)(const void *)(img + off[6]);
        for (uint32_t j = 0; j < dim; j++)
            if (!isfinite(cv[j])) FAIL(TQ_ERR_FORMAT, "%s: center channel %u is not finite", path, j);
        if (tq_index_set_center(ix, cv) != TQ_OK) FAIL(TQ_ERR_NOMEM, "out of memory for the center");
        if (len[7]) ix->xc = (float *)(void *)(img + off[7]);
    }
    /* ids: in range, distinct (the id table checks), below next_id */
    for (size_t i = 0; i < ix->n; i++)
        if (ix->ids[i] < 0 || (uint64_t)ix->ids[i] >= next_id)
            FAIL(TQ_ERR_FORMAT, "%s: id %lld of slot %zu is outside 0..next_id-1", path, (long long)ix->ids[i], i);
    if (tq_index_check_ids(ix) != TQ_OK) FAIL(TQ_ERR_FORMAT, "%s: %s", path, tq_last_error());
    /* the last block's unused slots hold zero indices */
    if (ix->fs && ix->n % TQ_FS_BLOCK) {
        uint8_t *row = malloc(dim + 8);
        if (!row) FAIL(TQ_ERR_NOMEM, "out of memory");
        size_t end = (ix->n + TQ_FS_BLOCK - 1) / TQ_FS_BLOCK * TQ_FS_BLOCK;
        for (size_t i = ix->n; i < end; i++) {
            tq_fs_get_row(ix->blocks, i, dim, ix->fs_bits, row);
            for (uint32_t j = 0; j < dim; j++)
                if (row[j]) {
                    free(row);
                    FAIL(TQ_ERR_FORMAT, "%s: unused slot %zu of the last block is not zero", path, i);
                }
        }
        free(row);
    }
#undef FAIL
    *out = ix;
    return TQ_OK;
}

/* Map (or read) the file and parse it; on success the index owns the mapping. */
static tq_status open_file(const char *path, tq_index **out) {
    int fd = open(path, O_RDONLY);
    TQ_RETURN_IF(fd < 0, TQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return tq_fail(TQ_ERR_IO, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < IX_HEADER) {
        /* a short file that is not an index at all (another tq file, say) is named as such, not "truncated" */
        uint8_t magic[4];
        int other = size >= 4 && pread(fd, magic, 4, 0) == 4 && memcmp(magic, "TQIX", 4) != 0;
        close(fd);
        TQ_RETURN_IF(other, TQ_ERR_FORMAT, "%s: not a tq index file (magic is not TQIX)", path);
        return tq_fail(TQ_ERR_FORMAT, "%s: truncated: %llu bytes, an index header is %d", path,
                       (unsigned long long)size, IX_HEADER);
    }
    void *base = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    TQ_RETURN_IF(base == MAP_FAILED, TQ_ERR_IO, "%s: mmap failed", path);
    tq_index *ix = NULL;
    tq_status s = parse(base, size, path, &ix);
    if (s != TQ_OK) {
        munmap(base, (size_t)size);
        return s;
    }
    ix->map_base = base;
    ix->map_len = (size_t)size;
    ix->cap = ix->n;
    *out = ix;
    return TQ_OK;
}

/* Saving only reads the index: searches may run meanwhile, adds and removes wait. */
tq_status tq_index_save(const tq_index *ix, const char *path) {
    if (!ix) return index_save_unlocked(ix, path);
    tq_index_rdlock(ix);
    tq_status s = index_save_unlocked(ix, path);
    tq_index_unlock(ix);
    return s;
}

tq_status tq_index_open_mmap(const char *path, tq_index **out) {
    tq_clear_error();
    TQ_RETURN_IF(!path || !out, TQ_ERR_INVALID_ARG, "NULL path or out");
    *out = NULL;
    TQ_RETURN_IF(!host_is_le(), TQ_ERR_STATE, "memory-mapped indexes need a little-endian host; use tq_index_load");
    return open_file(path, out);
}

tq_status tq_index_load(const char *path, tq_index **out) {
    tq_clear_error();
    TQ_RETURN_IF(!path || !out, TQ_ERR_INVALID_ARG, "NULL path or out");
    *out = NULL;
    TQ_RETURN_IF(!host_is_le(), TQ_ERR_STATE, "index files are read on little-endian hosts only (for now)");
    tq_index *ix = NULL;
    TQ_FORWARD(open_file(path, &ix));
    tq_status s = tq_index_materialize(ix);
    if (s != TQ_OK) {
        tq_index_free(ix);
        return s;
    }
    *out = ix;
    return TQ_OK;
}
