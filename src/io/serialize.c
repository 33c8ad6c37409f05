/*
 * serialize.c — quantizer files (TQQZ) and code-array files (TQCA), exactly
 * as docs/format.md specifies them; read that first.
 *
 * Writing streams through a small "sink" that can fill a buffer, write a
 * FILE, or only run a CRC: the same code path produces tq_quantizer_serialize's
 * bytes, the saved file, and the fingerprint that ties a code file to its
 * quantizer (so fingerprinting a 128 MiB dense quantizer allocates nothing).
 *
 * Reading treats the bytes as hostile (the Redis vector-sets habit): every
 * field is range-checked, every size is computed in 64 bits from the header
 * alone and compared with the real length, and both CRCs are verified, all
 * before the quantizer is allocated. Only then is it built
 * (tq_quantizer_build with the dense matrices left zero) and the stored
 * sections (codebooks, dense matrices, channel ranges) copied in, each value
 * checked as it goes. Serialization is canonical: fields a configuration does
 * not use are written as zero, so equal behaviour means equal bytes.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "../quant/quantizer.h"
#include "crc32c.h"
#include "fileio.h"

#define QZ_MAJOR 1u
#define QZ_MINOR 0u
#define QZ_HEADER 96u
#define CA_MAJOR 1u
#define CA_MINOR 0u
#define CA_HEADER 40u
#define MAX_HEADER 65536u
#define QZ_MAX_FILE ((uint64_t)1 << 30)

/* TQQZ header offsets (docs/format.md §2.1) */
enum {
    QH_MAJOR = 4, QH_MINOR = 6, QH_HSIZE = 8, QH_FLAGS = 12, QH_FSIZE = 16, QH_DIM = 24, QH_BITS = 28,
    QH_VARIANT = 32, QH_ROTATION = 36, QH_ROUNDS = 40, QH_QJL = 44, QH_NORM = 48, QH_OCOUNT = 52,
    QH_OBITS = 56, QH_UMODE = 60, QH_USCOPE = 64, QH_GROUP = 68, QH_SEED = 72, QH_CALIB = 80,
    QH_CODESIZE = 84, QH_RESERVED = 88
};
/* TQCA header offsets (§3) */
enum { CH_MAJOR = 4, CH_MINOR = 6, CH_HSIZE = 8, CH_FLAGS = 12, CH_FPRINT = 16, CH_CODESIZE = 20, CH_N = 24,
       CH_RESERVED = 32 };

/* ------------------------------------------------------------- layout plan */

static int variant_has_qjl(uint32_t v) { return v == TQ_VARIANT_PROD || v == TQ_VARIANT_QJL; }

/* Rounds and seed matter only when something is regenerated from the seed. */
static int uses_seed(const tq_config *c) {
    return c->rotation == TQ_ROTATION_HADAMARD || (variant_has_qjl(c->variant) && c->qjl == TQ_QJL_STRUCTURED);
}

typedef struct part_plan {
    uint32_t dim, mse_bits;
    int codebook, dense_rot, dense_qjl, ranges;
} part_plan;

typedef struct plan {
    uint32_t nparts;
    part_plan part[2];
    uint64_t payload; /* bytes of the payload sections, CRC excluded */
} plan;

static uint64_t dense_bytes(uint32_t d) { return (uint64_t)d * d * 4u; }

/* cfg must have passed tq_config_validate (dims bounded, dense dims <= TQ_MAX_DENSE_DIM). */
static void plan_make(const tq_config *cfg, int calibrated, plan *pl) {
    memset(pl, 0, sizeof *pl);
    pl->nparts = cfg->outlier_count ? 2 : 1;
    pl->payload = (uint64_t)cfg->outlier_count * 4u;
    for (uint32_t p = 0; p < pl->nparts; p++) {
        part_plan *pp = &pl->part[p];
        uint32_t bits = cfg->bits;
        pp->dim = cfg->dim;
        if (pl->nparts == 2) {
            pp->dim = p == 0 ? cfg->outlier_count : cfg->dim - cfg->outlier_count;
            if (p == 0) bits = cfg->outlier_bits;
        }
        switch (cfg->variant) {
        case TQ_VARIANT_PROD: pp->mse_bits = bits - 1; break;
        case TQ_VARIANT_QJL: pp->mse_bits = 0; break;
        default: pp->mse_bits = bits; break;
        }
        pp->codebook = (cfg->variant == TQ_VARIANT_MSE || cfg->variant == TQ_VARIANT_PROD) && pp->mse_bits > 0;
        pp->dense_rot = cfg->rotation == TQ_ROTATION_DENSE;
        pp->dense_qjl = variant_has_qjl(cfg->variant) && cfg->qjl == TQ_QJL_DENSE;
        pp->ranges = cfg->variant == TQ_VARIANT_UNIFORM && cfg->uniform_scope == TQ_UNIFORM_PER_CHANNEL &&
                     calibrated;
        if (pp->codebook) pl->payload += ((2u << pp->mse_bits) - 1u) * 4u; /* L centroids + L-1 bounds */
        if (pp->dense_rot) pl->payload += dense_bytes(pp->dim);
        if (pp->dense_qjl) pl->payload += dense_bytes(pp->dim);
        if (pp->ranges) pl->payload += (uint64_t)pp->dim * 8u;
    }
}

/* The canonical config of q: fields it does not use are zero (format.md §2.1). */
static void canonical_config(const tq_quantizer *q, tq_config *c) {
    *c = q->cfg;
    c->outlier_channels = NULL;
    if (!variant_has_qjl(c->variant)) c->qjl = (tq_qjl_kind)0;
    if (c->variant != TQ_VARIANT_MSE) c->norm = (tq_norm_mode)0;
    if (c->variant != TQ_VARIANT_UNIFORM) {
        c->uniform_mode = (tq_uniform_mode)0;
        c->uniform_scope = (tq_uniform_scope)0;
    }
    if (!(c->variant == TQ_VARIANT_UNIFORM && c->uniform_scope == TQ_UNIFORM_GROUP)) c->group_size = 0;
    if (c->outlier_count == 0) c->outlier_bits = 0;
    if (!uses_seed(c)) {
        c->rounds = 0;
        c->seed = 0;
    } else if (c->rounds == 0) {
        c->rounds = 2; /* tq_quantizer_build's default, made explicit */
    }
}

static int q_calibrated(const tq_quantizer *q) {
    return q->calibrated && q->cfg.variant == TQ_VARIANT_UNIFORM && q->cfg.uniform_scope == TQ_UNIFORM_PER_CHANNEL;
}

static tq_status qz_total_size(const tq_quantizer *q, uint64_t *total) {
    tq_config c;
    canonical_config(q, &c);
    plan pl;
    plan_make(&c, q_calibrated(q), &pl);
    *total = QZ_HEADER + pl.payload + 4u;
    TQ_RETURN_IF(*total > SIZE_MAX, TQ_ERR_SIZE, "serialized quantizer (%llu bytes) does not fit in memory",
                 (unsigned long long)*total);
    return TQ_OK;
}

/* -------------------------------------------------------------------- sink */

typedef struct sink {
    uint8_t *buf;       /* buffer mode when non-NULL */
    FILE *f;            /* file mode when non-NULL */
    size_t pos;
    uint32_t crc_all;   /* CRC-32C of everything emitted but the CRC fields: the fingerprint */
    uint32_t crc_part;  /* CRC-32C of the bytes since the last sink_mark */
    int io_error;       /* errno of the first failed write, or 0 */
} sink;

static void sink_put(sink *s, const void *p, size_t n) {
    if (n == 0) return;
    s->crc_all = tq_crc32c(s->crc_all, p, n);
    s->crc_part = tq_crc32c(s->crc_part, p, n);
    if (s->buf) memcpy(s->buf + s->pos, p, n);
    if (s->f && !s->io_error && fwrite(p, 1, n, s->f) != n) s->io_error = errno ? errno : EIO;
    s->pos += n;
}

static void sink_mark(sink *s) { s->crc_part = 0; }

/*
 * A CRC field: written, but left out of the fingerprint. It must be: the CRC
 * of a message followed by its own CRC is a constant, so a fingerprint over
 * "header || header CRC || payload || payload CRC" would not depend on the
 * header or the payload at all.
 */
static void sink_crc_field(sink *s, uint32_t crc) {
    uint8_t b[4];
    tq_put_u32(b, crc);
    if (s->buf) memcpy(s->buf + s->pos, b, 4);
    if (s->f && !s->io_error && fwrite(b, 1, 4, s->f) != 4) s->io_error = errno ? errno : EIO;
    s->pos += 4;
}

static void sink_u32(sink *s, uint32_t v) {
    uint8_t b[4];
    tq_put_u32(b, v);
    sink_put(s, b, 4);
}

static void sink_f32s(sink *s, const float *v, size_t n) {
    uint8_t chunk[4096];
    while (n > 0) {
        size_t m = n < sizeof chunk / 4 ? n : sizeof chunk / 4;
        for (size_t i = 0; i < m; i++) tq_put_f32(chunk + 4 * i, v[i]);
        sink_put(s, chunk, 4 * m);
        v += m;
        n -= m;
    }
}

static void sink_u32s(sink *s, const uint32_t *v, size_t n) {
    for (size_t i = 0; i < n; i++) sink_u32(s, v[i]);
}

/* --------------------------------------------------------- quantizer write */

static tq_status qz_write(const tq_quantizer *q, sink *s) {
    tq_config c;
    canonical_config(q, &c);
    int calibrated = q_calibrated(q);
    plan pl;
    plan_make(&c, calibrated, &pl);
    TQ_RETURN_IF(pl.nparts != q->nparts, TQ_ERR_STATE, "internal: quantizer has %u parts, config says %u",
                 q->nparts, pl.nparts);

    uint8_t h[QZ_HEADER];
    memset(h, 0, sizeof h);
    memcpy(h, "TQQZ", 4);
    tq_put_u16(h + QH_MAJOR, QZ_MAJOR);
    tq_put_u16(h + QH_MINOR, QZ_MINOR);
    tq_put_u32(h + QH_HSIZE, QZ_HEADER);
    tq_put_u64(h + QH_FSIZE, QZ_HEADER + pl.payload + 4u);
    tq_put_u32(h + QH_DIM, c.dim);
    tq_put_u32(h + QH_BITS, c.bits);
    tq_put_u32(h + QH_VARIANT, (uint32_t)c.variant);
    tq_put_u32(h + QH_ROTATION, (uint32_t)c.rotation);
    tq_put_u32(h + QH_ROUNDS, c.rounds);
    tq_put_u32(h + QH_QJL, (uint32_t)c.qjl);
    tq_put_u32(h + QH_NORM, (uint32_t)c.norm);
    tq_put_u32(h + QH_OCOUNT, c.outlier_count);
    tq_put_u32(h + QH_OBITS, c.outlier_bits);
    tq_put_u32(h + QH_UMODE, (uint32_t)c.uniform_mode);
    tq_put_u32(h + QH_USCOPE, (uint32_t)c.uniform_scope);
    tq_put_u32(h + QH_GROUP, c.group_size);
    tq_put_u64(h + QH_SEED, c.seed);
    tq_put_u32(h + QH_CALIB, (uint32_t)calibrated);
    TQ_RETURN_IF(q->code_size > UINT32_MAX, TQ_ERR_SIZE, "code size %zu does not fit the format", q->code_size);
    tq_put_u32(h + QH_CODESIZE, (uint32_t)q->code_size);
    sink_put(s, h, QZ_HEADER - 4);
    sink_crc_field(s, tq_crc32c(0, h, QZ_HEADER - 4));

    sink_mark(s);
    if (c.outlier_count) {
        if (q->outliers) {
            sink_u32s(s, q->outliers, c.outlier_count);
        } else {
            for (uint32_t i = 0; i < c.outlier_count; i++) sink_u32(s, i);
        }
    }
    for (uint32_t p = 0; p < pl.nparts; p++) {
        const part_plan *pp = &pl.part[p];
        const tq_part *pt = &q->part[p];
        TQ_RETURN_IF(pt->dim != pp->dim, TQ_ERR_STATE, "internal: part %u has %u channels, config says %u", p,
                     pt->dim, pp->dim);
        size_t dd = (size_t)pp->dim * pp->dim;
        if (pp->codebook) {
            uint32_t levels = 1u << pp->mse_bits;
            TQ_RETURN_IF(pt->cb.levels != levels, TQ_ERR_STATE, "internal: part %u codebook has %u levels, not %u",
                         p, pt->cb.levels, levels);
            sink_f32s(s, pt->cb.centroids, levels);
            sink_f32s(s, pt->cb.bounds, levels - 1);
        }
        if (pp->dense_rot) {
            TQ_RETURN_IF(!pt->rot.matrix, TQ_ERR_STATE, "internal: part %u has no dense rotation", p);
            sink_f32s(s, pt->rot.matrix, dd);
        }
        if (pp->dense_qjl) {
            TQ_RETURN_IF(!pt->qjl_matrix, TQ_ERR_STATE, "internal: part %u has no dense QJL matrix", p);
            sink_f32s(s, pt->qjl_matrix, dd);
        }
        if (pp->ranges) {
            TQ_RETURN_IF(!pt->ch_lo || !pt->ch_step, TQ_ERR_STATE, "internal: part %u has no channel ranges", p);
            sink_f32s(s, pt->ch_lo, pp->dim);
            sink_f32s(s, pt->ch_step, pp->dim);
        }
    }
    sink_crc_field(s, s->crc_part);
    return TQ_OK;
}

/*
 * q's fingerprint: CRC-32C of its serialized bytes with the two CRC fields
 * left out (format.md §3), computed without materializing the bytes.
 */
static tq_status qz_fingerprint(const tq_quantizer *q, uint32_t *fp) {
    sink s;
    memset(&s, 0, sizeof s);
    TQ_FORWARD(qz_write(q, &s));
    *fp = s.crc_all;
    return TQ_OK;
}

tq_status tq_quantizer_serialized_size(const tq_quantizer *q, size_t *size) {
    tq_clear_error();
    TQ_RETURN_IF(!q || !size, TQ_ERR_INVALID_ARG, "NULL argument");
    uint64_t total;
    TQ_FORWARD(qz_total_size(q, &total));
    *size = (size_t)total;
    return TQ_OK;
}

tq_status tq_quantizer_serialize(const tq_quantizer *q, uint8_t *buf, size_t cap, size_t *written) {
    tq_clear_error();
    if (written) *written = 0;
    TQ_RETURN_IF(!q || !buf, TQ_ERR_INVALID_ARG, "NULL argument");
    uint64_t total;
    TQ_FORWARD(qz_total_size(q, &total));
    TQ_RETURN_IF(cap < total, TQ_ERR_SIZE, "buffer holds %zu bytes, the serialized quantizer needs %llu", cap,
                 (unsigned long long)total);
    sink s;
    memset(&s, 0, sizeof s);
    s.buf = buf;
    TQ_FORWARD(qz_write(q, &s));
    TQ_RETURN_IF(s.pos != total, TQ_ERR_STATE, "internal: wrote %zu bytes, planned %llu", s.pos,
                 (unsigned long long)total);
    if (written) *written = s.pos;
    return TQ_OK;
}

/* ---------------------------------------------------------- quantizer read */

typedef struct qz_header {
    uint32_t minor, header_size, calibrated, code_size;
    uint64_t file_size;
    tq_config cfg;
} qz_header;

/* The first checks of either file kind: not empty, the magic, room for the
 * version fields (format.md §2.4 steps 1-3, §3 likewise). */
static tq_status check_start(const uint8_t *b, size_t avail, uint64_t total, const char magic[4], const char *kind,
                             unsigned header_size) {
    TQ_RETURN_IF(total == 0, TQ_ERR_FORMAT, "empty: 0 bytes, a tq %s file has at least %u", kind, header_size + 4);
    TQ_RETURN_IF(avail < 4, TQ_ERR_FORMAT, "truncated: %zu bytes, too short to be a tq %s file", avail, kind);
    TQ_RETURN_IF(memcmp(b, magic, 4) != 0, TQ_ERR_FORMAT, "not a tq %s file (magic is not \"%.4s\"; %llu bytes)",
                 kind, magic, (unsigned long long)total);
    TQ_RETURN_IF(avail < 8, TQ_ERR_FORMAT, "truncated: %zu bytes, a tq %s file header needs %u", avail, kind,
                 header_size);
    return TQ_OK;
}

/*
 * Steps 1-7 of format.md §2.4 on the first `avail` bytes of a file whose real
 * length is `total` (avail == total when the whole file is in memory).
 */
static tq_status qz_check_header(const uint8_t *b, size_t avail, uint64_t total, qz_header *h) {
    memset(h, 0, sizeof *h);
    TQ_FORWARD(check_start(b, avail, total, "TQQZ", "quantizer", QZ_HEADER));
    uint32_t major = tq_get_u16(b + QH_MAJOR);
    h->minor = tq_get_u16(b + QH_MINOR);
    TQ_RETURN_IF(major != QZ_MAJOR, TQ_ERR_VERSION,
                 "quantizer file format %u.%u: this library reads major version %u only", major, h->minor,
                 QZ_MAJOR);
    TQ_RETURN_IF(avail < 12, TQ_ERR_FORMAT, "truncated: %zu bytes, a tq quantizer header needs %u", avail,
                 QZ_HEADER);
    h->header_size = tq_get_u32(b + QH_HSIZE);
    if (h->minor <= QZ_MINOR) {
        TQ_RETURN_IF(h->header_size != QZ_HEADER, TQ_ERR_FORMAT, "header size %u, format %u.%u has %u",
                     h->header_size, major, h->minor, QZ_HEADER);
    } else {
        TQ_RETURN_IF(h->header_size < QZ_HEADER || h->header_size > MAX_HEADER, TQ_ERR_FORMAT,
                     "header size %u, must be %u..%u", h->header_size, QZ_HEADER, MAX_HEADER);
    }
    TQ_RETURN_IF(avail < h->header_size, TQ_ERR_FORMAT, "truncated: %zu bytes, the header alone is %u",
                 avail, h->header_size);
    uint32_t stored = tq_get_u32(b + h->header_size - 4);
    uint32_t crc = tq_crc32c(0, b, h->header_size - 4);
    TQ_RETURN_IF(stored != crc, TQ_ERR_CHECKSUM, "header checksum mismatch (stored %08x, computed %08x)", stored,
                 crc);
    uint32_t flags = tq_get_u32(b + QH_FLAGS), reserved = tq_get_u32(b + QH_RESERVED);
    TQ_RETURN_IF(flags != 0, TQ_ERR_FORMAT, "reserved flags are 0x%08x, must be 0", flags);
    TQ_RETURN_IF(reserved != 0, TQ_ERR_FORMAT, "reserved header field (offset %d) is 0x%08x, must be 0",
                 QH_RESERVED, reserved);
    h->file_size = tq_get_u64(b + QH_FSIZE);
    TQ_RETURN_IF(h->file_size > total, TQ_ERR_FORMAT, "truncated: header says %llu bytes, file has %llu",
                 (unsigned long long)h->file_size, (unsigned long long)total);
    TQ_RETURN_IF(h->file_size < total, TQ_ERR_FORMAT, "%llu trailing bytes: header says %llu bytes, file has %llu",
                 (unsigned long long)(total - h->file_size), (unsigned long long)h->file_size,
                 (unsigned long long)total);
    TQ_RETURN_IF(h->file_size < (uint64_t)h->header_size + 4u, TQ_ERR_FORMAT,
                 "file size %llu is smaller than its header and checksum", (unsigned long long)h->file_size);
    return TQ_OK;
}

static const char *const qz_enum_names[] = {"variant", "rotation", "qjl", "norm", "uniform_mode", "uniform_scope"};

/* Step 8: fields in range, unused fields zero, then tq_config_validate. */
static tq_status qz_check_config(const uint8_t *b, qz_header *h) {
    tq_config *c = &h->cfg;
    memset(c, 0, sizeof *c);
    uint32_t e[6] = {tq_get_u32(b + QH_VARIANT), tq_get_u32(b + QH_ROTATION), tq_get_u32(b + QH_QJL),
                     tq_get_u32(b + QH_NORM),    tq_get_u32(b + QH_UMODE),    tq_get_u32(b + QH_USCOPE)};
    const uint32_t emax[6] = {TQ_VARIANT_UNIFORM, TQ_ROTATION_HADAMARD, TQ_QJL_STRUCTURED,
                              TQ_NORM_UNBIASED,   TQ_UNIFORM_ASYMMETRIC, TQ_UNIFORM_GROUP};
    for (int i = 0; i < 6; i++)
        TQ_RETURN_IF(e[i] > emax[i], TQ_ERR_FORMAT, "%s = %u is not a known value (0..%u)", qz_enum_names[i], e[i],
                     emax[i]);
    c->dim = tq_get_u32(b + QH_DIM);
    c->bits = tq_get_u32(b + QH_BITS);
    c->variant = (tq_variant)e[0];
    c->rotation = (tq_rotation_kind)e[1];
    c->qjl = (tq_qjl_kind)e[2];
    c->norm = (tq_norm_mode)e[3];
    c->uniform_mode = (tq_uniform_mode)e[4];
    c->uniform_scope = (tq_uniform_scope)e[5];
    c->rounds = tq_get_u32(b + QH_ROUNDS);
    c->outlier_count = tq_get_u32(b + QH_OCOUNT);
    c->outlier_bits = tq_get_u32(b + QH_OBITS);
    c->group_size = tq_get_u32(b + QH_GROUP);
    c->seed = tq_get_u64(b + QH_SEED);
    h->calibrated = tq_get_u32(b + QH_CALIB);
    h->code_size = tq_get_u32(b + QH_CODESIZE);

    TQ_RETURN_IF(c->dim == 0 || c->dim > TQ_MAX_DIM, TQ_ERR_FORMAT, "dim = %u, must be 1..%u", c->dim, TQ_MAX_DIM);
    TQ_RETURN_IF(c->bits == 0 || c->bits > TQ_MAX_BITS, TQ_ERR_FORMAT, "bits = %u, must be 1..%u", c->bits,
                 TQ_MAX_BITS);
    TQ_RETURN_IF(c->outlier_count >= c->dim, TQ_ERR_FORMAT, "outlier_count = %u, must be below dim %u",
                 c->outlier_count, c->dim);
    if (c->outlier_count) {
        TQ_RETURN_IF(c->outlier_bits == 0 || c->outlier_bits > TQ_MAX_BITS, TQ_ERR_FORMAT,
                     "outlier_bits = %u, must be 1..%u", c->outlier_bits, TQ_MAX_BITS);
    } else {
        TQ_RETURN_IF(c->outlier_bits != 0, TQ_ERR_FORMAT, "outlier_bits = %u without outliers, must be 0",
                     c->outlier_bits);
    }
    TQ_RETURN_IF(!variant_has_qjl(c->variant) && c->qjl != 0, TQ_ERR_FORMAT,
                 "qjl = %u but the variant has no QJL stage (must be 0)", (unsigned)c->qjl);
    TQ_RETURN_IF(c->variant != TQ_VARIANT_MSE && c->norm != 0, TQ_ERR_FORMAT,
                 "norm = %u but only the mse variant has a norm mode (must be 0)", (unsigned)c->norm);
    TQ_RETURN_IF(c->variant != TQ_VARIANT_UNIFORM && (c->uniform_mode != 0 || c->uniform_scope != 0), TQ_ERR_FORMAT,
                 "uniform mode/scope set on a non-uniform quantizer (must be 0)");
    int group = c->variant == TQ_VARIANT_UNIFORM && c->uniform_scope == TQ_UNIFORM_GROUP;
    TQ_RETURN_IF(!group && c->group_size != 0, TQ_ERR_FORMAT, "group_size = %u without group scope (must be 0)",
                 c->group_size);
    if (uses_seed(c)) {
        TQ_RETURN_IF(c->rounds == 0 || c->rounds > TQ_MAX_ROUNDS, TQ_ERR_FORMAT, "rounds = %u, must be 1..%u",
                     c->rounds, TQ_MAX_ROUNDS);
    } else {
        TQ_RETURN_IF(c->rounds != 0 || c->seed != 0, TQ_ERR_FORMAT,
                     "rounds/seed set but nothing is generated from the seed (must be 0)");
    }
    TQ_RETURN_IF(h->calibrated > 1, TQ_ERR_FORMAT, "calibrated = %u, must be 0 or 1", h->calibrated);
    TQ_RETURN_IF(h->calibrated &&
                     !(c->variant == TQ_VARIANT_UNIFORM && c->uniform_scope == TQ_UNIFORM_PER_CHANNEL),
                 TQ_ERR_FORMAT, "calibrated is set but the quantizer is not per-channel uniform");
    TQ_RETURN_IF(h->code_size == 0, TQ_ERR_FORMAT, "code_size is 0");
    return tq_config_validate(c);
}

static tq_status fill_codebook(tq_codebook *cb, uint32_t levels, const uint8_t *p, uint32_t part) {
    TQ_RETURN_IF(cb->levels != levels, TQ_ERR_FORMAT, "internal: part %u codebook has %u levels, file %u", part,
                 cb->levels, levels);
    float c[256], bd[255];
    for (uint32_t k = 0; k < levels; k++) {
        c[k] = tq_get_f32(p + 4 * k);
        TQ_RETURN_IF(!isfinite(c[k]) || fabsf(c[k]) > 1.0f, TQ_ERR_FORMAT,
                     "part %u codebook: centroid %u is %g (must be finite, |c| <= 1)", part, k, (double)c[k]);
        TQ_RETURN_IF(k > 0 && !(c[k] > c[k - 1]), TQ_ERR_FORMAT,
                     "part %u codebook: centroids %u and %u are not increasing (%g, %g)", part, k - 1, k,
                     (double)c[k - 1], (double)c[k]);
    }
    for (uint32_t k = 0; k < levels / 2; k++) {
        float a = c[k], z = c[levels - 1 - k];
        float tol = 4.0f * FLT_EPSILON * fmaxf(fabsf(a), fabsf(z));
        TQ_RETURN_IF(fabsf(a + z) > tol, TQ_ERR_FORMAT, "part %u codebook: not symmetric (c[%u] = %g, c[%u] = %g)",
                     part, k, (double)a, levels - 1 - k, (double)z);
    }
    const uint8_t *pb = p + 4 * levels;
    for (uint32_t k = 0; k + 1 < levels; k++) {
        bd[k] = tq_get_f32(pb + 4 * k);
        TQ_RETURN_IF(!isfinite(bd[k]) || bd[k] < c[k] || bd[k] > c[k + 1], TQ_ERR_FORMAT,
                     "part %u codebook: bound %u is %g, must lie in [%g, %g]", part, k, (double)bd[k], (double)c[k],
                     (double)c[k + 1]);
    }
    memcpy(cb->centroids, c, levels * sizeof(float));
    memcpy(cb->bounds, bd, (levels - 1) * sizeof(float));
    return TQ_OK;
}

static tq_status fill_dense(float *m, uint32_t d, const uint8_t *p, int is_rotation, uint32_t part) {
    const char *what = is_rotation ? "dense rotation" : "dense QJL matrix";
    TQ_RETURN_IF(!m, TQ_ERR_STATE, "internal: part %u has no %s to fill", part, what);
    for (uint32_t i = 0; i < d; i++) {
        double ss = 0.0;
        for (uint32_t j = 0; j < d; j++) {
            size_t k = (size_t)i * d + j;
            float v = tq_get_f32(p + 4 * k);
            TQ_RETURN_IF(!isfinite(v), TQ_ERR_FORMAT, "part %u %s: entry (%u, %u) is not finite", part, what, i, j);
            if (is_rotation) {
                TQ_RETURN_IF(fabsf(v) > 1.0f + 1.0f / 1024.0f, TQ_ERR_FORMAT,
                             "part %u %s: entry (%u, %u) = %g, an orthogonal matrix has |entries| <= 1", part, what,
                             i, j, (double)v);
                ss += (double)v * v;
            }
            m[k] = v;
        }
        TQ_RETURN_IF(is_rotation && fabs(ss - 1.0) > 1e-3, TQ_ERR_FORMAT,
                     "part %u %s: row %u has squared norm %.6f, not 1", part, what, i, ss);
    }
    return TQ_OK;
}

static tq_status fill_ranges(tq_part *pt, const uint8_t *p, uint32_t part) {
    uint32_t d = pt->dim;
    TQ_RETURN_IF(!pt->ch_lo || !pt->ch_step, TQ_ERR_STATE, "internal: part %u has no channel ranges", part);
    for (uint32_t j = 0; j < d; j++) {
        float lo = tq_get_f32(p + 4 * (size_t)j), step = tq_get_f32(p + 4 * ((size_t)d + j));
        TQ_RETURN_IF(!isfinite(lo), TQ_ERR_FORMAT, "part %u channel %u: range start is not finite", part, j);
        TQ_RETURN_IF(!isfinite(step) || step < 0.0f, TQ_ERR_FORMAT,
                     "part %u channel %u: range step is %g (must be finite, >= 0)", part, j, (double)step);
        pt->ch_lo[j] = lo;
        pt->ch_step[j] = step;
    }
    return TQ_OK;
}

/* Steps 11-12: the buffer's header and CRCs are verified; build and fill. */
static tq_status qz_build(const uint8_t *buf, qz_header *h, const plan *pl, tq_quantizer **out) {
    const uint8_t *p = buf + h->header_size;
    tq_config cfg = h->cfg;
    uint32_t *outl = NULL;
    uint32_t k = cfg.outlier_count;
    if (k) {
        outl = malloc((size_t)k * sizeof *outl);
        TQ_RETURN_IF(!outl, TQ_ERR_NOMEM, "out of memory for %u outlier channels", k);
        for (uint32_t i = 0; i < k; i++) {
            outl[i] = tq_get_u32(p + 4 * (size_t)i);
            if (outl[i] >= cfg.dim || (i > 0 && outl[i] <= outl[i - 1])) {
                tq_status s = tq_fail(TQ_ERR_FORMAT, "outlier channel list: entry %u is %u (%s)", i, outl[i],
                                      outl[i] >= cfg.dim ? "not below dim" : "not strictly increasing");
                free(outl);
                return s;
            }
        }
        p += 4 * (size_t)k;
        cfg.outlier_channels = outl;
    }
    tq_quantizer *q = NULL;
    tq_status s = tq_quantizer_build(&cfg, 0, &q);
    free(outl);
    if (s != TQ_OK) return s;

    if (q->code_size != h->code_size || q->nparts != pl->nparts) {
        s = tq_fail(TQ_ERR_FORMAT, "header says %u bytes per code, this configuration makes %zu", h->code_size,
                    q->code_size);
    }
    for (uint32_t i = 0; i < pl->nparts && s == TQ_OK; i++) {
        const part_plan *pp = &pl->part[i];
        tq_part *pt = &q->part[i];
        if (pt->dim != pp->dim) {
            s = tq_fail(TQ_ERR_STATE, "internal: part %u has %u channels, the plan %u", i, pt->dim, pp->dim);
            break;
        }
        if (pp->codebook) {
            uint32_t levels = 1u << pp->mse_bits;
            s = fill_codebook(&pt->cb, levels, p, i);
            p += (size_t)(2 * levels - 1) * 4;
        }
        if (s == TQ_OK && pp->dense_rot) {
            s = fill_dense(pt->rot.matrix, pp->dim, p, 1, i);
            p += (size_t)dense_bytes(pp->dim);
        }
        if (s == TQ_OK && pp->dense_qjl) {
            s = fill_dense(pt->qjl_matrix, pp->dim, p, 0, i);
            p += (size_t)dense_bytes(pp->dim);
        }
        if (s == TQ_OK && pp->ranges) {
            s = fill_ranges(pt, p, i);
            p += (size_t)pp->dim * 8;
        }
    }
    if (s == TQ_OK && h->calibrated) q->calibrated = 1;
    if (s != TQ_OK) {
        tq_quantizer_free(q);
        return s;
    }
    *out = q;
    return TQ_OK;
}

static tq_status qz_parse(const uint8_t *buf, size_t len, tq_quantizer **out) {
    qz_header h;
    TQ_FORWARD(qz_check_header(buf, len, len, &h));
    TQ_FORWARD(qz_check_config(buf, &h));
    plan pl;
    plan_make(&h.cfg, (int)h.calibrated, &pl);
    uint64_t room = h.file_size - h.header_size - 4u;
    if (h.minor <= QZ_MINOR) {
        TQ_RETURN_IF(pl.payload != room, TQ_ERR_FORMAT,
                     "payload is %llu bytes, this configuration needs %llu", (unsigned long long)room,
                     (unsigned long long)pl.payload);
    } else {
        TQ_RETURN_IF(pl.payload > room, TQ_ERR_FORMAT, "payload is %llu bytes, this configuration needs %llu",
                     (unsigned long long)room, (unsigned long long)pl.payload);
    }
    uint32_t stored = tq_get_u32(buf + len - 4);
    uint32_t crc = tq_crc32c(0, buf + h.header_size, (size_t)room);
    TQ_RETURN_IF(stored != crc, TQ_ERR_CHECKSUM, "payload checksum mismatch (stored %08x, computed %08x)", stored,
                 crc);
    return qz_build(buf, &h, &pl, out);
}

tq_status tq_quantizer_deserialize(const uint8_t *buf, size_t len, tq_quantizer **out) {
    tq_clear_error();
    TQ_RETURN_IF(!out, TQ_ERR_INVALID_ARG, "output pointer is NULL");
    *out = NULL;
    TQ_RETURN_IF(!buf && len > 0, TQ_ERR_INVALID_ARG, "buffer is NULL");
    static const uint8_t none[1] = {0};
    return qz_parse(buf ? buf : none, len, out);
}

/* ------------------------------------------------------------ quantizer files */

typedef struct qz_save_ctx {
    const tq_quantizer *q;
    const char *path;
} qz_save_ctx;

static tq_status qz_save_fn(void *vctx, FILE *f) {
    qz_save_ctx *ctx = vctx;
    sink s;
    memset(&s, 0, sizeof s);
    s.f = f;
    TQ_FORWARD(qz_write(ctx->q, &s));
    TQ_RETURN_IF(s.io_error, TQ_ERR_IO, "write to the temp file of '%s' failed: %s", ctx->path, strerror(s.io_error));
    return TQ_OK;
}

tq_status tq_quantizer_save(const tq_quantizer *q, const char *path) {
    tq_clear_error();
    TQ_RETURN_IF(!q || !path, TQ_ERR_INVALID_ARG, "NULL argument");
    qz_save_ctx ctx = {q, path};
    return tq_write_atomic(path, qz_save_fn, &ctx);
}

tq_status tq_quantizer_load(const char *path, tq_quantizer **out) {
    tq_clear_error();
    TQ_RETURN_IF(!path || !out, TQ_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    tq_rfile rf;
    TQ_FORWARD(tq_rfile_open(&rf, path));
    tq_status s = TQ_OK;
    if (rf.size > QZ_MAX_FILE) {
        s = tq_fail(TQ_ERR_FORMAT, "%llu bytes, larger than any tq quantizer file (limit %llu)",
                    (unsigned long long)rf.size, (unsigned long long)QZ_MAX_FILE);
    }
    /* Check the header against the real length before allocating the file's size:
     * read a prefix that holds any legal header (its size is the real file's, capped). */
    size_t avail = rf.size < MAX_HEADER ? (size_t)rf.size : MAX_HEADER;
    uint8_t *buf = NULL;
    if (s == TQ_OK) {
        buf = malloc(avail ? avail : 1);
        if (!buf) s = tq_fail(TQ_ERR_NOMEM, "out of memory");
    }
    if (s == TQ_OK) s = tq_rfile_read(&rf, buf, avail);
    qz_header h;
    if (s == TQ_OK) s = qz_check_header(buf, avail, rf.size, &h);
    if (s == TQ_OK && avail < rf.size) {
        uint8_t *all = realloc(buf, (size_t)rf.size);
        if (!all) {
            s = tq_fail(TQ_ERR_NOMEM, "out of memory for a %llu-byte file", (unsigned long long)rf.size);
        } else {
            buf = all;
            s = tq_rfile_read(&rf, buf + avail, (size_t)rf.size - avail);
        }
    }
    if (s != TQ_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", tq_last_error());
        tq_fail(s, "%s: %s", path, msg);
    }
    tq_rfile_close(&rf);
    if (s == TQ_OK) {
        s = qz_parse(buf, (size_t)rf.size, out);
        if (s != TQ_OK) {
            /* say which file */
            char msg[400];
            snprintf(msg, sizeof msg, "%s", tq_last_error());
            tq_fail(s, "%s: %s", path, msg);
        }
    }
    free(buf);
    return s;
}

/* ---------------------------------------------------------------- code files */

typedef struct ca_save_ctx {
    const tq_quantizer *q;
    const uint8_t *codes;
    size_t n;
    uint32_t fingerprint;
    const char *path;
} ca_save_ctx;

static tq_status ca_save_fn(void *vctx, FILE *f) {
    ca_save_ctx *ctx = vctx;
    uint8_t h[CA_HEADER];
    memset(h, 0, sizeof h);
    memcpy(h, "TQCA", 4);
    tq_put_u16(h + CH_MAJOR, CA_MAJOR);
    tq_put_u16(h + CH_MINOR, CA_MINOR);
    tq_put_u32(h + CH_HSIZE, CA_HEADER);
    tq_put_u32(h + CH_FPRINT, ctx->fingerprint);
    tq_put_u32(h + CH_CODESIZE, (uint32_t)ctx->q->code_size);
    tq_put_u64(h + CH_N, (uint64_t)ctx->n);
    sink s;
    memset(&s, 0, sizeof s);
    s.f = f;
    sink_put(&s, h, CA_HEADER - 4);
    sink_crc_field(&s, tq_crc32c(0, h, CA_HEADER - 4));
    sink_mark(&s);
    sink_put(&s, ctx->codes, ctx->n * ctx->q->code_size);
    sink_crc_field(&s, s.crc_part);
    TQ_RETURN_IF(s.io_error, TQ_ERR_IO, "write to the temp file of '%s' failed: %s", ctx->path, strerror(s.io_error));
    return TQ_OK;
}

tq_status tq_codes_save(const tq_quantizer *q, const uint8_t *codes, size_t n, const char *path) {
    tq_clear_error();
    TQ_RETURN_IF(!q || !path, TQ_ERR_INVALID_ARG, "NULL argument");
    TQ_RETURN_IF(!codes && n > 0, TQ_ERR_INVALID_ARG, "codes is NULL");
    size_t bytes, total;
    TQ_RETURN_IF(!tq_mul_size(n, q->code_size, &bytes) || !tq_add_size(bytes, CA_HEADER + 4u, &total), TQ_ERR_SIZE,
                 "%zu records of %zu bytes overflow", n, q->code_size);
    TQ_RETURN_IF(q->code_size > UINT32_MAX, TQ_ERR_SIZE, "code size %zu does not fit the format", q->code_size);
    ca_save_ctx ctx = {q, codes, n, 0, path};
    TQ_FORWARD(qz_fingerprint(q, &ctx.fingerprint));
    return tq_write_atomic(path, ca_save_fn, &ctx);
}

/* A code file's header once checked (format.md §3 loader steps that need no quantizer). */
typedef struct ca_header {
    uint32_t major, minor, hsize, fingerprint, code_size;
    uint64_t n, total;
} ca_header;

/* Read and check the header: magic, version, header size, header CRC, reserved fields. */
static tq_status ca_read_header(tq_rfile *rf, ca_header *ch) {
    uint64_t total = rf->size;
    uint8_t h[CA_HEADER];
    size_t avail = total < CA_HEADER ? (size_t)total : CA_HEADER;
    TQ_FORWARD(tq_rfile_read(rf, h, avail));
    TQ_FORWARD(check_start(h, avail, total, "TQCA", "code", CA_HEADER));
    uint32_t major = tq_get_u16(h + CH_MAJOR), minor = tq_get_u16(h + CH_MINOR);
    TQ_RETURN_IF(major != CA_MAJOR, TQ_ERR_VERSION, "code file format %u.%u: this library reads major version %u only",
                 major, minor, CA_MAJOR);
    TQ_RETURN_IF(avail < 12, TQ_ERR_FORMAT, "truncated: %zu bytes, a tq code file header needs %u", avail, CA_HEADER);
    uint32_t hsize = tq_get_u32(h + CH_HSIZE);
    if (minor <= CA_MINOR) {
        TQ_RETURN_IF(hsize != CA_HEADER, TQ_ERR_FORMAT, "header size %u, format %u.%u has %u", hsize, major, minor,
                     CA_HEADER);
    } else {
        TQ_RETURN_IF(hsize < CA_HEADER || hsize > MAX_HEADER, TQ_ERR_FORMAT, "header size %u, must be %u..%u",
                     hsize, CA_HEADER, MAX_HEADER);
    }
    TQ_RETURN_IF(total < hsize, TQ_ERR_FORMAT, "truncated: %llu bytes, the header alone is %u",
                 (unsigned long long)total, hsize);
    /* the whole header (a later minor's may be longer) for its CRC */
    uint8_t *hb = h;
    if (hsize > CA_HEADER) {
        hb = malloc(hsize);
        TQ_RETURN_IF(!hb, TQ_ERR_NOMEM, "out of memory");
        memcpy(hb, h, CA_HEADER);
        tq_status s = tq_rfile_read(rf, hb + CA_HEADER, hsize - CA_HEADER);
        if (s != TQ_OK) {
            free(hb);
            return s;
        }
    }
    uint32_t stored = tq_get_u32(hb + hsize - 4), crc = tq_crc32c(0, hb, hsize - 4);
    if (hb != h) free(hb);
    TQ_RETURN_IF(stored != crc, TQ_ERR_CHECKSUM, "header checksum mismatch (stored %08x, computed %08x)", stored,
                 crc);
    uint32_t flags = tq_get_u32(h + CH_FLAGS), reserved = tq_get_u32(h + CH_RESERVED);
    TQ_RETURN_IF(flags != 0, TQ_ERR_FORMAT, "reserved flags are 0x%08x, must be 0", flags);
    TQ_RETURN_IF(reserved != 0, TQ_ERR_FORMAT, "reserved header field (offset %d) is 0x%08x, must be 0",
                 CH_RESERVED, reserved);
    ch->major = major;
    ch->minor = minor;
    ch->hsize = hsize;
    ch->fingerprint = tq_get_u32(h + CH_FPRINT);
    ch->code_size = tq_get_u32(h + CH_CODESIZE);
    ch->n = tq_get_u64(h + CH_N);
    ch->total = total;
    return TQ_OK;
}

/* The records' size from the header against the file's length; *bytes = n * code_size. */
static tq_status ca_check_length(const ca_header *ch, uint64_t *bytes) {
    TQ_RETURN_IF(ch->code_size == 0, TQ_ERR_FORMAT, "code_size is 0");
    uint64_t b = ch->n * ch->code_size;
    TQ_RETURN_IF(ch->n > UINT64_MAX / ch->code_size || b > UINT64_MAX - ch->hsize - 4u || b > SIZE_MAX, TQ_ERR_SIZE,
                 "header says %llu records of %u bytes: size overflows", (unsigned long long)ch->n, ch->code_size);
    uint64_t want = b + ch->hsize + 4u;
    TQ_RETURN_IF(want > ch->total, TQ_ERR_FORMAT, "truncated: header says %llu bytes, file has %llu",
                 (unsigned long long)want, (unsigned long long)ch->total);
    TQ_RETURN_IF(want < ch->total, TQ_ERR_FORMAT, "%llu trailing bytes: header says %llu bytes, file has %llu",
                 (unsigned long long)(ch->total - want), (unsigned long long)want, (unsigned long long)ch->total);
    *bytes = b;
    return TQ_OK;
}

/* The stored records CRC (after the records) against the computed one. */
static tq_status ca_check_records_crc(tq_rfile *rf, uint32_t computed) {
    uint8_t tail[4];
    TQ_FORWARD(tq_rfile_read(rf, tail, 4));
    uint32_t stored = tq_get_u32(tail);
    TQ_RETURN_IF(stored != computed, TQ_ERR_CHECKSUM, "records checksum mismatch (stored %08x, computed %08x)",
                 stored, computed);
    return TQ_OK;
}

static tq_status ca_load(const tq_quantizer *q, tq_rfile *rf, uint8_t **codes_out, size_t *n_out) {
    ca_header ch;
    TQ_FORWARD(ca_read_header(rf, &ch));
    uint32_t fp_q;
    TQ_FORWARD(qz_fingerprint(q, &fp_q));
    TQ_RETURN_IF(ch.fingerprint != fp_q, TQ_ERR_MISMATCH,
                 "codes were written for another quantizer (fingerprint %08x, this quantizer's is %08x)",
                 ch.fingerprint, fp_q);
    TQ_RETURN_IF(ch.code_size != q->code_size, TQ_ERR_MISMATCH,
                 "codes are %u bytes each, this quantizer's are %zu", ch.code_size, q->code_size);
    uint64_t bytes;
    TQ_FORWARD(ca_check_length(&ch, &bytes));
    uint8_t *codes = NULL;
    if (bytes) {
        codes = malloc((size_t)bytes);
        TQ_RETURN_IF(!codes, TQ_ERR_NOMEM, "out of memory for %llu records", (unsigned long long)ch.n);
    }
    tq_status s = tq_rfile_read(rf, codes, (size_t)bytes);
    if (s == TQ_OK) s = ca_check_records_crc(rf, tq_crc32c(0, codes, (size_t)bytes));
    if (s != TQ_OK) {
        free(codes);
        return s;
    }
    *codes_out = codes;
    *n_out = (size_t)ch.n;
    return TQ_OK;
}

/* Every check of ca_load that needs no quantizer; the records are streamed
 * through the CRC, never held. */
static tq_status ca_inspect(tq_rfile *rf, tq_codes_info *info) {
    ca_header ch;
    TQ_FORWARD(ca_read_header(rf, &ch));
    uint64_t left;
    TQ_FORWARD(ca_check_length(&ch, &left));
    uint8_t buf[65536];
    uint32_t crc = 0;
    while (left > 0) {
        size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
        TQ_FORWARD(tq_rfile_read(rf, buf, k));
        crc = tq_crc32c(crc, buf, k);
        left -= k;
    }
    TQ_FORWARD(ca_check_records_crc(rf, crc));
    info->format_major = ch.major;
    info->format_minor = ch.minor;
    info->n = ch.n;
    info->code_size = ch.code_size;
    info->fingerprint = ch.fingerprint;
    return TQ_OK;
}

tq_status tq_codes_inspect(const char *path, tq_codes_info *info) {
    tq_clear_error();
    TQ_RETURN_IF(!path || !info, TQ_ERR_INVALID_ARG, "NULL argument");
    memset(info, 0, sizeof *info);
    tq_rfile rf;
    TQ_FORWARD(tq_rfile_open(&rf, path));
    tq_status s = ca_inspect(&rf, info);
    tq_rfile_close(&rf);
    if (s != TQ_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", tq_last_error());
        tq_fail(s, "%s: %s", path, msg);
        memset(info, 0, sizeof *info);
    }
    return s;
}

tq_status tq_quantizer_fingerprint(const tq_quantizer *q, uint32_t *fp) {
    tq_clear_error();
    TQ_RETURN_IF(!q || !fp, TQ_ERR_INVALID_ARG, "NULL argument");
    return qz_fingerprint(q, fp);
}

tq_status tq_codes_load(const tq_quantizer *q, const char *path, uint8_t **codes, size_t *n) {
    tq_clear_error();
    TQ_RETURN_IF(!q || !path || !codes || !n, TQ_ERR_INVALID_ARG, "NULL argument");
    *codes = NULL;
    *n = 0;
    tq_rfile rf;
    TQ_FORWARD(tq_rfile_open(&rf, path));
    tq_status s = ca_load(q, &rf, codes, n);
    tq_rfile_close(&rf);
    if (s != TQ_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", tq_last_error());
        tq_fail(s, "%s: %s", path, msg);
    }
    return s;
}
