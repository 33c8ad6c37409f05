/*
 * index.c — tq_index: a flat, training-free compressed vector index (add,
 * remove, search). Persistence is in src/io/index_file.c; the storage layouts
 * are described in index.h.
 *
 * Search, per query:
 *   1. candidates from the codes. Blocked layout: the 8-bit lookup-table scan
 *      (fastscan.h) ranks every slot by an approximate score and keeps a
 *      shortlist; the shortlist's records are rebuilt and scored exactly with
 *      tq_score. Records layout: tq_score over every record.
 *   2. optional rerank of the best candidates by stored float32 vectors
 *      (exact) or by the finer rerank code.
 *   3. the top k, best first; ties go to the smaller id.
 * A batch is cut into groups of queries that sweep the blocked codes together
 * chunk by chunk, so each chunk is read from memory once per group rather than
 * once per query (and, where the kernel table has a several-query scan, each
 * code load serves up to four queries: tq_fs_scan_multi); groups run in
 * parallel on the pool.
 */
#define _POSIX_C_SOURCE 200809L /* pthread_rwlock_t */
#include "index.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../core/pack.h"
#include "../core/pool.h"
#include "../kernels/fastscan.h"
#include "../kernels/kernels.h"
#include "../quant/quantizer.h"

enum {
    GROUP_QUERIES = 8,        /* queries that sweep the blocked codes together (<= TQ_FS_MAX_QUERIES) */
    CHUNK_BLOCKS = 128,       /* at most this many blocks per sweep step (4096 vectors) */
    CHUNK_BYTES = 192 * 1024, /* and about this many bytes of codes */
    RECORD_CHUNK = 4096,      /* records scored per tq_score call */
    ADD_MIN_COORDS = 32768    /* an add's parallel work comes in pieces of at least this many coordinates */
};

/* The per-slot storage arrays, in the order array_sizes() sizes them. */
enum { NARRAYS = 7 };
#define INDEX_ARRAYS(ix)                                                                             \
    {(void **)&(ix)->ids,      (void **)&(ix)->factors,  (void **)&(ix)->blocks, (void **)&(ix)->records, \
     (void **)&(ix)->rerank_f, (void **)&(ix)->rerank_c, (void **)&(ix)->xc}

void tq_index_config_init(tq_index_config *cfg, uint32_t dim, uint32_t bits) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    tq_config_init(&cfg->quant, dim, bits);
    cfg->quant.norm = TQ_NORM_UNBIASED;
    cfg->metric = TQ_INDEX_IP;
    cfg->rerank = TQ_RERANK_NONE;
    cfg->rerank_bits = 8;
    cfg->center = TQ_CENTER_FIRST;
}

int tq_index_keeps_xc(const tq_index *ix) { return ix->center && ix->cfg.metric != TQ_INDEX_L2; }

tq_status tq_index_set_center(tq_index *ix, const float *c) {
    size_t d = ix->cfg.quant.dim;
    float *nc = malloc(d * sizeof(float));
    TQ_RETURN_IF(!nc, TQ_ERR_NOMEM, "out of memory for the center");
    memcpy(nc, c, d * sizeof(float));
    double cc = 0.0;
    for (size_t j = 0; j < d; j++) cc += (double)nc[j] * nc[j];
    free(ix->center);
    ix->center = nc;
    ix->cc = cc;
    return TQ_OK;
}

int tq_index_uses_blocks(const tq_index_config *cfg, const tq_quantizer *q, uint32_t *nf) {
    if (q->nparts != 1 || q->cfg.variant != TQ_VARIANT_MSE) return 0;
    const tq_part *pt = &q->part[0];
    if (pt->mse_bits != 2 && pt->mse_bits != 4) return 0;
    if (cfg->metric == TQ_INDEX_L2 && q->cfg.norm == TQ_NORM_UNIT) return 0;
    if (pt->off_idx != (size_t)pt->nfactors * 4 || pt->nfactors < 1) return 0;
    if (nf) *nf = pt->nfactors;
    return 1;
}

static tq_status rerank_quantizer(const tq_index_config *cfg, tq_quantizer **out) {
    tq_config rc;
    tq_config_init(&rc, cfg->quant.dim, cfg->rerank_bits);
    rc.norm = TQ_NORM_UNBIASED;
    rc.seed = cfg->quant.seed + 1; /* its own rotation */
    return tq_quantizer_create(&rc, out);
}

static tq_status check_config(const tq_index_config *cfg) {
    TQ_RETURN_IF(!cfg, TQ_ERR_INVALID_ARG, "NULL index config");
    TQ_RETURN_IF((unsigned)cfg->metric > TQ_INDEX_COSINE, TQ_ERR_INVALID_ARG, "unknown metric %d", (int)cfg->metric);
    TQ_RETURN_IF((unsigned)cfg->rerank > TQ_RERANK_CODE, TQ_ERR_INVALID_ARG, "unknown rerank kind %d",
                 (int)cfg->rerank);
    TQ_RETURN_IF(cfg->rerank == TQ_RERANK_CODE && (cfg->rerank_bits < 1 || cfg->rerank_bits > TQ_MAX_BITS),
                 TQ_ERR_BITS, "rerank_bits %u must be 1..%u", cfg->rerank_bits, TQ_MAX_BITS);
    TQ_RETURN_IF((unsigned)cfg->center > TQ_CENTER_GIVEN, TQ_ERR_INVALID_ARG, "unknown center mode %d",
                 (int)cfg->center);
    TQ_RETURN_IF(cfg->center == TQ_CENTER_GIVEN && !cfg->center_vector, TQ_ERR_INVALID_ARG,
                 "TQ_CENTER_GIVEN needs center_vector");
    if (cfg->center == TQ_CENTER_GIVEN)
        for (uint32_t j = 0; j < cfg->quant.dim; j++)
            TQ_RETURN_IF(!isfinite(cfg->center_vector[j]), TQ_ERR_NONFINITE, "center channel %u is not finite", j);
    TQ_RETURN_IF(cfg->quant.variant == TQ_VARIANT_UNIFORM && cfg->quant.uniform_scope == TQ_UNIFORM_PER_CHANNEL,
                 TQ_ERR_INVALID_ARG, "a per-channel uniform quantizer needs calibration; an index cannot use it");
    return TQ_OK;
}

tq_status tq_index_wrap(const tq_index_config *cfg, tq_quantizer *q, tq_quantizer *rq, tq_index **out) {
    tq_index *ix = calloc(1, sizeof *ix);
    if (!ix || !tq_rwlock_init(&ix->lock)) {
        free(ix);
        tq_quantizer_free(q);
        tq_quantizer_free(rq);
        return tq_fail(TQ_ERR_NOMEM, "out of memory for an index");
    }
    ix->cfg = *cfg;
    ix->dense_ids = 1;
    ix->q = q;
    ix->rq = rq;
    tq_status s = tq_quantizer_get_config(q, &ix->cfg.quant);
    if (s != TQ_OK) {
        tq_index_free(ix);
        return s;
    }
    if (cfg->rerank != TQ_RERANK_CODE) ix->cfg.rerank_bits = 0;
    ix->cfg.center_vector = NULL;
    ix->code_size = q->code_size;
    ix->rcode_size = rq ? rq->code_size : 0;
    ix->fs = tq_index_uses_blocks(&ix->cfg, q, &ix->nf);
    if (ix->fs) ix->fs_bits = q->part[0].mse_bits;
    *out = ix;
    return TQ_OK;
}

tq_status tq_index_create(const tq_index_config *cfg, tq_index **out) {
    tq_clear_error();
    TQ_RETURN_IF(!out, TQ_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    TQ_FORWARD(check_config(cfg));
    tq_quantizer *q = NULL, *rq = NULL;
    TQ_FORWARD(tq_quantizer_create(&cfg->quant, &q));
    if (cfg->rerank == TQ_RERANK_CODE) {
        tq_status s = rerank_quantizer(cfg, &rq);
        if (s != TQ_OK) {
            tq_quantizer_free(q);
            return s;
        }
    }
    TQ_FORWARD(tq_index_wrap(cfg, q, rq, out));
    if (cfg->center == TQ_CENTER_GIVEN) {
        tq_status s = tq_index_set_center(*out, cfg->center_vector);
        if (s != TQ_OK) {
            tq_index_free(*out);
            *out = NULL;
            return s;
        }
    }
    return TQ_OK;
}

void tq_index_detach(tq_index *ix) {
    void **arr[NARRAYS] = INDEX_ARRAYS(ix);
    for (int a = 0; a < NARRAYS; a++) *arr[a] = NULL;
}

void tq_index_unmap(tq_index *ix) {
    if (ix && ix->map_base) {
        munmap(ix->map_base, ix->map_len);
        ix->map_base = NULL;
        ix->map_len = 0;
        tq_index_detach(ix);
    }
}

void tq_index_free(tq_index *ix) {
    if (!ix) return;
    if (ix->map_base) {
        tq_index_unmap(ix);
    } else {
        void **arr[NARRAYS] = INDEX_ARRAYS(ix);
        for (int a = 0; a < NARRAYS; a++) free(*arr[a]);
    }
    free(ix->center);
    free(ix->map_keys);
    free(ix->map_slots);
    tq_quantizer_free(ix->q);
    tq_quantizer_free(ix->rq);
    pthread_rwlock_destroy(&ix->lock);
    free(ix);
}

void tq_index_rdlock(const tq_index *ix) { pthread_rwlock_rdlock((pthread_rwlock_t *)&ix->lock); }
void tq_index_wrlock(tq_index *ix) { pthread_rwlock_wrlock(&ix->lock); }
void tq_index_unlock(const tq_index *ix) { pthread_rwlock_unlock((pthread_rwlock_t *)&ix->lock); }

tq_status tq_index_get_config(const tq_index *ix, tq_index_config *out) {
    tq_clear_error();
    TQ_RETURN_IF(!ix || !out, TQ_ERR_INVALID_ARG, "NULL argument");
    tq_index_rdlock(ix);
    *out = ix->cfg;
    tq_index_unlock(ix);
    return TQ_OK;
}

size_t tq_index_size(const tq_index *ix) {
    if (!ix) return 0;
    tq_index_rdlock(ix);
    size_t n = ix->n;
    tq_index_unlock(ix);
    return n;
}
size_t tq_index_dim(const tq_index *ix) { return ix ? ix->cfg.quant.dim : 0; }
const tq_quantizer *tq_index_quantizer(const tq_index *ix) { return ix ? ix->q : NULL; }

size_t tq_index_blocks_bytes(const tq_index *ix, size_t n) {
    return n ? tq_fs_size(n, ix->cfg.quant.dim, ix->fs_bits) : 0;
}

static tq_status index_memory_usage_unlocked(const tq_index *ix, tq_index_memory *out) {
    tq_clear_error();
    TQ_RETURN_IF(!ix || !out, TQ_ERR_INVALID_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    size_t d = ix->cfg.quant.dim, n = ix->n;
    if (ix->fs)
        out->codes = (uint64_t)n * ix->nf * 4 + tq_index_blocks_bytes(ix, n);
    else
        out->codes = (uint64_t)n * ix->code_size;
    if (ix->cfg.rerank == TQ_RERANK_FLOAT) out->rerank = (uint64_t)n * d * 4;
    if (ix->cfg.rerank == TQ_RERANK_CODE) out->rerank = (uint64_t)n * ix->rcode_size;
    if (ix->center) out->codes += (uint64_t)d * 4 + (tq_index_keeps_xc(ix) ? (uint64_t)n * 4 : 0);
    out->ids = (uint64_t)n * 8 + (uint64_t)ix->map_cap * (sizeof(int64_t) + sizeof(size_t));
    size_t qs = 0, rqs = 0;
    if (tq_quantizer_serialized_size(ix->q, &qs) != TQ_OK) qs = 0;
    if (ix->rq && tq_quantizer_serialized_size(ix->rq, &rqs) != TQ_OK) rqs = 0;
    out->total = out->codes + out->rerank + out->ids + qs + rqs;
    if (ix->map_base) out->mapped = out->codes - (ix->center ? (uint64_t)d * 4 : 0) + out->rerank + (uint64_t)n * 8;
    tq_clear_error();
    return TQ_OK;
}

/* ------------------------------------------------------------- id table */

static size_t map_hash(int64_t key, size_t cap) {
    uint64_t z = (uint64_t)key + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (size_t)(z & (cap - 1));
}

static size_t map_find(const tq_index *ix, int64_t key) {
    /* ids are >= 0; a negative key (-1 marks an empty entry) is never present */
    if (!ix->map_cap || key < 0) return SIZE_MAX;
    for (size_t h = map_hash(key, ix->map_cap);; h = (h + 1) & (ix->map_cap - 1)) {
        if (ix->map_keys[h] == key) return h;
        if (ix->map_keys[h] < 0) return SIZE_MAX;
    }
}

/* Insert (key must be absent; the table must have room). */
static void map_put(tq_index *ix, int64_t key, size_t slot) {
    size_t h = map_hash(key, ix->map_cap);
    while (ix->map_keys[h] >= 0) h = (h + 1) & (ix->map_cap - 1);
    ix->map_keys[h] = key;
    ix->map_slots[h] = slot;
}

/* Remove the entry at position h (backward-shift deletion keeps probes valid). */
static void map_erase_at(tq_index *ix, size_t h) {
    size_t mask = ix->map_cap - 1;
    for (size_t j = (h + 1) & mask;; j = (j + 1) & mask) {
        if (ix->map_keys[j] < 0) break;
        size_t home = map_hash(ix->map_keys[j], ix->map_cap);
        /* can the entry at j move to h? only if its home is not in (h, j] cyclically */
        int between = h <= j ? (home > h && home <= j) : (home > h || home <= j);
        if (!between) {
            ix->map_keys[h] = ix->map_keys[j];
            ix->map_slots[h] = ix->map_slots[j];
            h = j;
        }
    }
    ix->map_keys[h] = -1;
}

/* Make the table hold `count` keys at load factor <= 1/2 (rebuilding from the ids). */
static tq_status map_reserve(tq_index *ix, size_t count) {
    if (ix->map_cap && count <= ix->map_cap / 2) return TQ_OK;
    size_t cap = 1024;
    while (cap / 2 < count) {
        TQ_RETURN_IF(cap > SIZE_MAX / 4 / sizeof(int64_t), TQ_ERR_SIZE, "too many ids for the id table");
        cap *= 2;
    }
    int64_t *keys = malloc(cap * sizeof *keys);
    size_t *slots = malloc(cap * sizeof *slots);
    if (!keys || !slots) {
        free(keys);
        free(slots);
        return tq_fail(TQ_ERR_NOMEM, "out of memory for the id table (%zu entries)", cap);
    }
    for (size_t i = 0; i < cap; i++) keys[i] = -1;
    free(ix->map_keys);
    free(ix->map_slots);
    ix->map_keys = keys;
    ix->map_slots = slots;
    ix->map_cap = cap;
    for (size_t s = 0; s < ix->n; s++) {
        if (map_find(ix, ix->ids[s]) != SIZE_MAX) {
            int64_t dup = ix->ids[s];
            free(ix->map_keys);
            free(ix->map_slots);
            ix->map_keys = NULL;
            ix->map_slots = NULL;
            ix->map_cap = 0;
            return tq_fail(TQ_ERR_FORMAT, "id %lld appears twice (slot %zu)", (long long)dup, s);
        }
        map_put(ix, ix->ids[s], s);
    }
    return TQ_OK;
}

/* Leave the dense-id state: build the table from the slots. */
static tq_status ensure_map(tq_index *ix, size_t count) {
    TQ_FORWARD(map_reserve(ix, count));
    ix->dense_ids = 0;
    return TQ_OK;
}

tq_status tq_index_check_ids(tq_index *ix) {
    int dense = ix->next_id == (int64_t)ix->n;
    for (size_t s = 0; dense && s < ix->n; s++) dense = ix->ids[s] == (int64_t)s;
    ix->dense_ids = dense;
    return dense ? TQ_OK : map_reserve(ix, ix->n);
}

/* ------------------------------------------------------------- storage */

static tq_status grow_array(void **p, size_t old_bytes, size_t new_bytes) {
    void *np = realloc(*p, new_bytes ? new_bytes : 1);
    TQ_RETURN_IF(!np, TQ_ERR_NOMEM, "out of memory growing the index to %zu bytes", new_bytes);
    if (new_bytes > old_bytes) memset((uint8_t *)np + old_bytes, 0, new_bytes - old_bytes);
    *p = np;
    return TQ_OK;
}

/* Bytes of each owned array at capacity cap (0 on overflow of any). */
static int array_sizes(const tq_index *ix, size_t cap, size_t sz[NARRAYS]) {
    size_t d = ix->cfg.quant.dim;
    memset(sz, 0, NARRAYS * sizeof(size_t));
    if (!tq_mul_size(cap, sizeof(int64_t), &sz[0])) return 0;
    if (ix->fs) {
        if (!tq_mul_size(cap, (size_t)ix->nf * 4, &sz[1])) return 0;
        sz[2] = tq_index_blocks_bytes(ix, cap);
        if (cap && !sz[2]) return 0;
    } else if (!tq_mul_size(cap, ix->code_size, &sz[3])) {
        return 0;
    }
    if (ix->cfg.rerank == TQ_RERANK_FLOAT && (!tq_mul_size(cap, d, &sz[4]) || !tq_mul_size(sz[4], 4, &sz[4])))
        return 0;
    if (ix->cfg.rerank == TQ_RERANK_CODE && !tq_mul_size(cap, ix->rcode_size, &sz[5])) return 0;
    if (tq_index_keeps_xc(ix) && !tq_mul_size(cap, sizeof(float), &sz[6])) return 0;
    return 1;
}


static tq_status reserve_slots(tq_index *ix, size_t need) {
    int missing_xc = tq_index_keeps_xc(ix) && !ix->xc && ix->cap; /* the center was just set */
    if (need <= ix->cap && !missing_xc) return TQ_OK;
    size_t cap = ix->cap < 1024 ? 1024 : ix->cap;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    cap = (cap + TQ_FS_BLOCK - 1) / TQ_FS_BLOCK * TQ_FS_BLOCK;
    size_t old[NARRAYS], now[NARRAYS];
    TQ_RETURN_IF(!array_sizes(ix, ix->cap, old) || !array_sizes(ix, cap, now), TQ_ERR_SIZE,
                 "an index of %zu vectors does not fit in memory", need);
    void **arr[NARRAYS] = INDEX_ARRAYS(ix);
    for (int a = 0; a < NARRAYS; a++) {
        if (!*arr[a]) old[a] = 0; /* e.g. xc, first needed when the center is set */
        if (now[a]) TQ_FORWARD(grow_array(arr[a], old[a], now[a]));
    }
    ix->cap = cap;
    return TQ_OK;
}

tq_status tq_index_materialize(tq_index *ix) {
    if (!ix->map_base) return TQ_OK;
    size_t n = ix->n, sz[NARRAYS];
    TQ_RETURN_IF(!array_sizes(ix, n, sz), TQ_ERR_SIZE, "index too large");
    sz[2] = tq_index_blocks_bytes(ix, n); /* the file holds only the blocks in use */
    void **arr[NARRAYS] = INDEX_ARRAYS(ix);
    void *dst[NARRAYS] = {0};
    for (int a = 0; a < NARRAYS; a++) {
        if (!sz[a]) continue;
        dst[a] = malloc(sz[a]);
        if (!dst[a]) {
            for (int b = 0; b < a; b++) free(dst[b]);
            return tq_fail(TQ_ERR_NOMEM, "out of memory copying a mapped index (%zu bytes)", sz[a]);
        }
        memcpy(dst[a], *arr[a], sz[a]);
    }
    tq_index_unmap(ix);
    for (int a = 0; a < NARRAYS; a++) *arr[a] = dst[a];
    ix->cap = ix->blocks ? (n + TQ_FS_BLOCK - 1) / TQ_FS_BLOCK * TQ_FS_BLOCK : n;
    /* capacity in whole blocks: the other arrays must cover the same slots */
    if (ix->cap > n) {
        size_t cap = ix->cap;
        ix->cap = n;
        size_t old[NARRAYS], now[NARRAYS];
        if (!array_sizes(ix, n, old) || !array_sizes(ix, cap, now)) return tq_fail(TQ_ERR_SIZE, "index too large");
        old[2] = now[2]; /* blocks already cover whole blocks */
        for (int a = 0; a < NARRAYS; a++)
            if (now[a] && a != 2) TQ_FORWARD(grow_array(arr[a], old[a], now[a]));
        ix->cap = cap;
    }
    return TQ_OK;
}

/* Put record rec (of q) into slot s of the storage. */
static void store_record(tq_index *ix, size_t s, const uint8_t *rec, uint8_t *rowbuf) {
    if (!ix->fs) {
        memcpy(ix->records + s * ix->code_size, rec, ix->code_size);
        return;
    }
    uint32_t d = ix->cfg.quant.dim;
    for (uint32_t f = 0; f < ix->nf; f++) ix->factors[s * ix->nf + f] = tq_get_f32(rec + 4 * f);
    tq_unpack(rec + (size_t)ix->nf * 4, d, ix->fs_bits, rowbuf);
    tq_fs_set_row(ix->blocks, s, d, ix->fs_bits, rowbuf);
}

/* Rebuild slot s's record of q into rec. */
static void load_record(const tq_index *ix, size_t s, uint8_t *rec, uint8_t *rowbuf) {
    if (!ix->fs) {
        memcpy(rec, ix->records + s * ix->code_size, ix->code_size);
        return;
    }
    uint32_t d = ix->cfg.quant.dim;
    for (uint32_t f = 0; f < ix->nf; f++) tq_put_f32(rec + 4 * f, ix->factors[s * ix->nf + f]);
    tq_fs_get_row(ix->blocks, s, d, ix->fs_bits, rowbuf);
    tq_pack(rowbuf, d, ix->fs_bits, rec + (size_t)ix->nf * 4);
}

static void clear_slot(tq_index *ix, size_t s, uint8_t *rowbuf) {
    if (!ix->fs) return;
    memset(rowbuf, 0, ix->cfg.quant.dim);
    tq_fs_set_row(ix->blocks, s, ix->cfg.quant.dim, ix->fs_bits, rowbuf);
}

static void move_slot(tq_index *ix, size_t from, size_t to, uint8_t *rec, uint8_t *rowbuf) {
    size_t d = ix->cfg.quant.dim;
    ix->ids[to] = ix->ids[from];
    load_record(ix, from, rec, rowbuf);
    store_record(ix, to, rec, rowbuf);
    if (ix->rerank_f) memcpy(ix->rerank_f + to * d, ix->rerank_f + from * d, d * sizeof(float));
    if (ix->rerank_c) memcpy(ix->rerank_c + to * ix->rcode_size, ix->rerank_c + from * ix->rcode_size, ix->rcode_size);
    if (ix->xc) ix->xc[to] = ix->xc[from];
}

/* Unit-normalize rows for the cosine metric (zero rows stay zero). */
static void normalize_rows(const float *x, size_t n, size_t d, float *out) {
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < d; j++) s += (double)x[i * d + j] * x[i * d + j];
        double inv = s > 0.0 ? 1.0 / sqrt(s) : 0.0;
        for (size_t j = 0; j < d; j++) out[i * d + j] = (float)(x[i * d + j] * inv);
    }
}

/*
 * Rows finite and, with check_norm, of norm <= limit; one scan of bit patterns per row (the absmax_bits kernel), the
 * norm computed only for rows with some |x_j| > limit / sqrt(d), which are the only ones that can be above it.
 * A non-finite value is reported here; the first row above the limit is returned through *above (n: none),
 * its norm through *norm, for the caller's message.
 */
static tq_status check_rows_norm(const float *x, size_t n, size_t d, const char *what, size_t row0, int check_norm,
                                 double limit, size_t *above, double *norm) {
    const uint32_t exp_all = 0x7f800000u;
    /* a finite row skips the norm when its largest |x_j| is at most skip_to; a limit <= 0 skips no row */
    const int norm_every_row = check_norm && !(limit > 0.0);
    const uint32_t skip_to = !check_norm       ? exp_all - 1
                             : norm_every_row ? 0
                                              : tq_f32_bits((float)(limit / sqrt((double)d)));
    *above = n;
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * d;
        uint32_t m = tq_kernels()->absmax_bits(r, d);
        if (m >= exp_all) {
            for (size_t j = 0; j < d; j++)
                TQ_RETURN_IF(!isfinite(r[j]), TQ_ERR_NONFINITE, "%s row %zu, column %zu is %s", what, row0 + i, j,
                             isnan(r[j]) ? "NaN" : "Inf");
        }
        if (m <= skip_to && !norm_every_row) continue;
        double ss = 0.0;
        for (size_t j = 0; j < d; j++) ss += (double)r[j] * r[j];
        if (sqrt(ss) > limit) {
            *above = i;
            *norm = sqrt(ss);
            return TQ_OK;
        }
    }
    return TQ_OK;
}

/*
 * Vectors to add (rows row0.. of the batch): finite, and (but for cosine, which normalizes them) of a norm
 * float32 holds, as tq_encode needs; messages name the row of the whole batch. The add workers check each block
 * of rows before they encode it, and a failure undoes the whole batch.
 */
static tq_status check_vectors(const tq_index *ix, const float *x, size_t n, size_t d, size_t row0) {
    double norm = 0.0;
    size_t i;
    TQ_FORWARD(check_rows_norm(x, n, d, "vector", row0, ix->cfg.metric != TQ_INDEX_COSINE, FLT_MAX, &i, &norm));
    TQ_RETURN_IF(i < n, TQ_ERR_NONFINITE, "vector row %zu: its norm overflows float32", row0 + i);
    return TQ_OK;
}

/*
 * Queries: finite, and (but for cosine) of a norm whose scores cannot overflow float32 on the way: the
 * rotation and the lookup tables sum up to sqrt(d) * ||q||. Checked before any search work, so a refused
 * batch writes no result.
 */
static tq_status check_queries(const tq_index *ix, const float *x, size_t n, size_t d) {
    /* the codes are scored against q - c: ||q - c|| <= ||q|| + ||c|| (cosine queries have norm 1) */
    const double cnorm = ix->center ? sqrt(ix->cc) : 0.0, limit = FLT_MAX / sqrt((double)d);
    double norm = 0.0;
    size_t i;
    TQ_FORWARD(check_rows_norm(x, n, d, "query", 0, ix->cfg.metric != TQ_INDEX_COSINE, limit - cnorm, &i, &norm));
    TQ_RETURN_IF(ix->cfg.metric == TQ_INDEX_COSINE && 1.0 + cnorm > limit, TQ_ERR_NONFINITE,
                 "this index's center (norm %.3g) is too long for scores in float32", cnorm);
    TQ_RETURN_IF(i < n, TQ_ERR_NONFINITE,
                 "query row %zu: its norm %.3g plus the index center's %.3g exceeds %.3g (FLT_MAX / sqrt(dim)): its "
                 "scores would overflow float32", i, norm, cnorm, limit);
    return TQ_OK;
}

/* ------------------------------------------------------------------ add */

/*
 * The encode work of an add, in units that never share a block of the scan layout: unit 0 is the rows that
 * complete the index's last partial block (if any), then whole blocks of TQ_FS_BLOCK slots. Each worker takes
 * a range of units and carries every row from the caller's floats to its slot block by block, so the
 * normalized or centered copy, the checks, the encode and the layout all work on data still in cache.
 */
typedef struct add_job {
    tq_index *ix;
    const float *x;  /* the batch */
    size_t n, base;  /* its rows, and the slot of row 0 (ix->n) */
    size_t head;     /* rows of unit 0 when base is not at a block start, else 0 */
    int check;       /* the rows still need check_vectors (done step by step, on rows in cache) */
} add_job;

static size_t add_units(const add_job *j) {
    return (j->head > 0) + (j->n - j->head + TQ_FS_BLOCK - 1) / TQ_FS_BLOCK;
}

static size_t add_unit_row(const add_job *j, size_t u) {
    size_t r = j->head > 0 ? (u == 0 ? 0 : j->head + (u - 1) * TQ_FS_BLOCK) : u * TQ_FS_BLOCK;
    return r < j->n ? r : j->n;
}

static tq_status add_range(void *ctx, size_t ubegin, size_t uend) {
    const add_job *j = ctx;
    tq_index *ix = j->ix;
    const size_t d = ix->cfg.quant.dim, B = TQ_FS_BLOCK;
    const int cosine = ix->cfg.metric == TQ_INDEX_COSINE, keep_xc = tq_index_keeps_xc(ix);
    const char *what = ix->center ? (cosine ? "vector (normalized, minus the center)" : "vector (minus the center)")
                                  : (cosine ? "vector (normalized)" : "vector");
    float *tmp = cosine ? malloc(B * d * sizeof(float)) : NULL;
    float *res = ix->center ? malloc(B * d * sizeof(float)) : NULL;
    uint8_t *recs = malloc(B * ix->code_size), *idx = ix->fs ? malloc(B * d) : NULL;
    tq_status s = TQ_OK;
    if ((cosine && !tmp) || (ix->center && !res) || !recs || (ix->fs && !idx))
        s = tq_fail(TQ_ERR_NOMEM, "out of memory for an add");
    const tq_kernel_table *kt = tq_kernels();
    const size_t blk = ix->fs ? tq_fs_size(B, (uint32_t)d, ix->fs_bits) : 0;
    for (size_t i = add_unit_row(j, ubegin), end = add_unit_row(j, uend); s == TQ_OK && i < end;) {
        const size_t slot = j->base + i, m = end - i < B - slot % B ? end - i : B - slot % B;
        const float *src = j->x + i * d, *enc;
        if (j->check && (s = check_vectors(ix, src, m, d, i)) != TQ_OK) break;
        if (cosine) {
            normalize_rows(src, m, d, tmp);
            src = tmp;
        }
        enc = src;
        if (ix->center) {
            for (size_t r = 0; r < m; r++) {
                const float *xr = src + r * d;
                float *rr = res + r * d;
                for (size_t c = 0; c < d; c++) rr[c] = xr[c] - ix->center[c];
            }
            /* <x, c> in double, the kernel's fixed summation order (bit-identical on every ISA), four rows at once */
            for (size_t r = 0; keep_xc && r < m; r += 4) {
                const float *xa[4], *ca[4] = {ix->center, ix->center, ix->center, ix->center};
                double xc[4];
                for (size_t t = 0; t < 4; t++) xa[t] = src + (r + t < m ? r + t : r) * d;
                kt->dot_f64_x4(xa, ca, (uint32_t)d, xc);
                for (size_t t = 0; t < 4 && r + t < m; t++) ix->xc[slot + r + t] = (float)xc[t];
            }
            enc = res;
        }
        s = tq_encode_check(ix->q, enc, m, what, i);
        if (s == TQ_OK && ix->rerank_c) s = tq_encode_check(ix->rq, enc, m, what, i);
        if (s == TQ_OK) s = tq_encode_rows(ix->q, enc, m, recs, idx);
        if (s == TQ_OK && ix->rerank_c) s = tq_encode_rows(ix->rq, enc, m, ix->rerank_c + slot * ix->rcode_size, NULL);
        if (s != TQ_OK) break;
        if (ix->fs) {
            for (size_t r = 0; r < m; r++)
                for (uint32_t f = 0; f < ix->nf; f++)
                    ix->factors[(slot + r) * ix->nf + f] = tq_get_f32(recs + r * ix->code_size + 4 * f);
            if (m == B) /* a whole block: straight into the layout */
                s = tq_fs_pack(idx, B, (uint32_t)d, ix->fs_bits, ix->blocks + slot / B * blk);
            else
                for (size_t r = 0; r < m; r++)
                    tq_fs_set_row(ix->blocks, slot + r, (uint32_t)d, ix->fs_bits, idx + r * d);
        } else {
            memcpy(ix->records + slot * ix->code_size, recs, m * ix->code_size);
        }
        if (ix->rerank_f) memcpy(ix->rerank_f + slot * d, src, m * d * sizeof(float));
        i += m;
    }
    free(tmp);
    free(res);
    free(recs);
    free(idx);
    return s;
}

static tq_status index_add_unlocked(tq_index *ix, const float *x, size_t n, const int64_t *ids, int64_t *assigned) {
    tq_clear_error();
    TQ_RETURN_IF(!ix, TQ_ERR_INVALID_ARG, "NULL index");
    if (n == 0) return TQ_OK;
    TQ_RETURN_IF(!x, TQ_ERR_INVALID_ARG, "vectors are NULL");
    size_t d = ix->cfg.quant.dim, total, cells;
    size_t bytes; /* the caller's x (n * d floats) and ids (n) must fit the address space */
    TQ_RETURN_IF(!tq_add_size(ix->n, n, &total) || !tq_mul_size(n, d, &cells) ||
                     !tq_mul_size(cells, sizeof(float), &bytes) || !tq_mul_size(n, sizeof(int64_t), &bytes),
                 TQ_ERR_SIZE, "adding %zu vectors overflows", n);
    /* the rows are checked by the encode workers, on rows in cache, unless a center is made from them first */
    int center_now = ix->cfg.center == TQ_CENTER_FIRST && !ix->center;
    if (center_now) TQ_FORWARD(check_vectors(ix, x, n, d, 0));
    if (ids) {
        for (size_t i = 0; i < n; i++)
            TQ_RETURN_IF(ids[i] < 0, TQ_ERR_INVALID_ARG, "id %lld (row %zu) is negative", (long long)ids[i], i);
    } else {
        TQ_RETURN_IF(ix->next_id > INT64_MAX - (int64_t)n, TQ_ERR_SIZE, "automatic ids would overflow");
    }
    int keep_dense = ix->dense_ids && ix->next_id == (int64_t)ix->n;
    for (size_t i = 0; keep_dense && ids && i < n; i++) keep_dense = ids[i] == (int64_t)(ix->n + i);
    TQ_FORWARD(tq_index_materialize(ix));
    if (!keep_dense) TQ_FORWARD(ensure_map(ix, total));
    int cosine = ix->cfg.metric == TQ_INDEX_COSINE, set_center = 0;
    if (center_now) {
        /* the mean of this first batch (of the normalized rows for cosine) becomes the center for good */
        double *acc = calloc(d, sizeof(double));
        float *mean = malloc(d * sizeof(float));
        tq_status cs = acc && mean ? TQ_OK : tq_fail(TQ_ERR_NOMEM, "out of memory for the center");
        for (size_t i = 0; cs == TQ_OK && i < n; i++) {
            const float *r = x + i * d;
            double nr = 0.0;
            if (cosine)
                for (size_t j = 0; j < d; j++) nr += (double)r[j] * r[j];
            double inv = !cosine ? 1.0 : nr > 0.0 ? 1.0 / sqrt(nr) : 0.0;
            for (size_t j = 0; j < d; j++) acc[j] += r[j] * inv;
        }
        if (cs == TQ_OK) {
            for (size_t j = 0; j < d; j++) mean[j] = (float)(acc[j] / (double)n);
            cs = tq_index_set_center(ix, mean);
        }
        free(acc);
        free(mean);
        TQ_FORWARD(cs);
        set_center = 1;
    }
    tq_status s = reserve_slots(ix, total);
    if (s == TQ_OK) {
        add_job job = {ix, x, n, ix->n, (TQ_FS_BLOCK - ix->n % TQ_FS_BLOCK) % TQ_FS_BLOCK, !center_now};
        if (job.head > n) job.head = n;
        size_t min_units = ADD_MIN_COORDS / d / TQ_FS_BLOCK + 1;
        s = tq_parallel_for(add_units(&job), min_units, add_range, &job);
    }
    /* ids last: a duplicate undoes the map entries made so far */
    size_t put = 0;
    if (s == TQ_OK && !keep_dense) {
        for (; put < n; put++) {
            int64_t id = ids ? ids[put] : ix->next_id + (int64_t)put;
            if (map_find(ix, id) != SIZE_MAX) {
                s = tq_fail(TQ_ERR_INVALID_ARG, "id %lld (row %zu) is already in the index or repeated in the batch",
                            (long long)id, put);
                break;
            }
            map_put(ix, id, ix->n + put);
        }
    }
    if (s != TQ_OK) {
        for (size_t i = 0; i < put; i++) {
            int64_t id = ids ? ids[i] : ix->next_id + (int64_t)i;
            map_erase_at(ix, map_find(ix, id));
        }
        /* the workers may have filled any of the batch's slots before one failed: back to zero */
        uint8_t *rowbuf = ix->fs ? calloc(d + 8, 1) : NULL;
        if (rowbuf)
            for (size_t i = 0; i < n && ix->n + i < ix->cap; i++) clear_slot(ix, ix->n + i, rowbuf);
        free(rowbuf);
        if (set_center) { /* back to the state before the call: no center, no <x, c> array */
            free(ix->center);
            ix->center = NULL;
            ix->cc = 0.0;
            free(ix->xc);
            ix->xc = NULL;
        }
    } else {
        int64_t maxid = ix->next_id - 1;
        for (size_t i = 0; i < n; i++) {
            int64_t id = ids ? ids[i] : ix->next_id + (int64_t)i;
            ix->ids[ix->n + i] = id;
            if (assigned) assigned[i] = id;
            if (id > maxid) maxid = id;
        }
        ix->n += n;
        ix->next_id = maxid == INT64_MAX ? INT64_MAX : maxid + 1;
    }
    return s;
}

/* --------------------------------------------------------------- remove */

static tq_status index_remove_unlocked(tq_index *ix, const int64_t *ids, size_t n, size_t *removed) {
    tq_clear_error();
    TQ_RETURN_IF(!ix, TQ_ERR_INVALID_ARG, "NULL index");
    if (removed) *removed = 0;
    if (n == 0) return TQ_OK;
    TQ_RETURN_IF(!ids, TQ_ERR_INVALID_ARG, "ids are NULL");
    size_t bytes;
    TQ_RETURN_IF(!tq_mul_size(n, sizeof(int64_t), &bytes), TQ_ERR_SIZE, "removing %zu ids overflows", n);
    TQ_FORWARD(tq_index_materialize(ix));
    TQ_FORWARD(ensure_map(ix, ix->n));
    uint8_t *rec = malloc(ix->code_size), *rowbuf = malloc(ix->cfg.quant.dim + 8);
    if (!rec || !rowbuf) {
        free(rec);
        free(rowbuf);
        return tq_fail(TQ_ERR_NOMEM, "out of memory for a remove");
    }
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t h = map_find(ix, ids[i]);
        if (h == SIZE_MAX) continue;
        size_t s = ix->map_slots[h], last = ix->n - 1;
        map_erase_at(ix, h);
        if (s != last) {
            move_slot(ix, last, s, rec, rowbuf);
            ix->map_slots[map_find(ix, ix->ids[s])] = s;
        }
        clear_slot(ix, last, rowbuf);
        ix->n--;
        count++;
    }
    free(rec);
    free(rowbuf);
    if (removed) *removed = count;
    return TQ_OK;
}

/* --------------------------------------------------------------- search */

/* A bounded heap keeping the best `cap` (key, slot) pairs; the root is the worst kept. */
typedef struct {
    float *key;
    size_t *slot;
    size_t count, cap;
    const int64_t *ids;
} topk;

/* a is better than b: larger key, then smaller id */
static inline int better(const topk *h, float ka, size_t sa, float kb, size_t sb) {
    return ka > kb || (ka == kb && h->ids[sa] < h->ids[sb]);
}

static void heap_down(topk *h, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < h->count && better(h, h->key[w], h->slot[w], h->key[l], h->slot[l])) w = l;
        if (r < h->count && better(h, h->key[w], h->slot[w], h->key[r], h->slot[r])) w = r;
        if (w == i) return;
        float tk = h->key[i];
        size_t ts = h->slot[i];
        h->key[i] = h->key[w];
        h->slot[i] = h->slot[w];
        h->key[w] = tk;
        h->slot[w] = ts;
        i = w;
    }
}

static inline void heap_push(topk *h, float key, size_t slot) {
    if (h->count < h->cap) {
        size_t i = h->count++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!better(h, h->key[p], h->slot[p], key, slot)) break;
            h->key[i] = h->key[p];
            h->slot[i] = h->slot[p];
            i = p;
        }
        h->key[i] = key;
        h->slot[i] = slot;
    } else if (h->cap && better(h, key, slot, h->key[0], h->slot[0])) {
        h->key[0] = key;
        h->slot[0] = slot;
        heap_down(h, 0);
    }
}

/* Heap sort in place: popping the worst to the end leaves key[0] the best. */
static void heap_sort(topk *h) {
    size_t n = h->count;
    while (h->count > 1) {
        size_t last = h->count - 1;
        float tk = h->key[0];
        size_t ts = h->slot[0];
        h->key[0] = h->key[last];
        h->slot[0] = h->slot[last];
        h->key[last] = tk;
        h->slot[last] = ts;
        h->count--;
        heap_down(h, 0);
    }
    h->count = n;
}

typedef struct {
    const tq_index *ix;
    const float *queries;
    size_t nq, k, shortlist, depth; /* depth: candidates kept by step 1 */
    int64_t *out_ids;
    float *out_scores;
} search_job;

/* Per-thread buffers. */
typedef struct {
    float *qn;          /* GROUP_QUERIES queries (normalized for cosine) */
    float *qc;          /* the same minus the center (what the codes are scored against) */
    double kq[GROUP_QUERIES]; /* centered ip/cosine: <q, c> - ||c||^2, added to code scores */
    uint8_t *lut;       /* GROUP_QUERIES tables */
    float off[GROUP_QUERIES], del[GROUP_QUERIES];
    float *scan;        /* CHUNK_BLOCKS * 32 or RECORD_CHUNK scores */
    topk heap[GROUP_QUERIES];
    topk fin;           /* the final or rerank heap */
    uint8_t *recs;      /* shortlist records */
    float *cand_scores;
    uint8_t *rowbuf;
    tq_query *pq, *rpq;
} search_ws;

static void ws_free(search_ws *w) {
    free(w->qn);
    free(w->qc);
    free(w->lut);
    free(w->scan);
    for (int g = 0; g < GROUP_QUERIES; g++) {
        free(w->heap[g].key);
        free(w->heap[g].slot);
    }
    free(w->fin.key);
    free(w->fin.slot);
    free(w->recs);
    free(w->cand_scores);
    free(w->rowbuf);
    tq_query_free(w->pq);
    tq_query_free(w->rpq);
}

static tq_status ws_init(search_ws *w, const search_job *j) {
    const tq_index *ix = j->ix;
    size_t d = ix->cfg.quant.dim, cand = j->shortlist > j->depth ? j->shortlist : j->depth;
    memset(w, 0, sizeof *w);
    int ok = 1;
    w->qn = malloc(GROUP_QUERIES * d * sizeof(float));
    w->qc = malloc(GROUP_QUERIES * d * sizeof(float));
    ok &= w->qc != NULL;
    size_t scan_n = ix->fs ? (size_t)CHUNK_BLOCKS * TQ_FS_BLOCK : RECORD_CHUNK;
    /* the fast scan scores a step for every query of the group at once */
    w->scan = malloc(scan_n * (ix->fs ? GROUP_QUERIES : 1) * sizeof(float));
    ok &= w->qn && w->scan;
    if (ix->fs) {
        w->lut = malloc(GROUP_QUERIES * tq_fs_lut_size((uint32_t)d, ix->fs_bits));
        ok &= w->lut != NULL;
        for (int g = 0; g < GROUP_QUERIES; g++) {
            w->heap[g].key = malloc(j->shortlist * sizeof(float) + 1);
            w->heap[g].slot = malloc(j->shortlist * sizeof(size_t) + 1);
            w->heap[g].cap = j->shortlist;
            w->heap[g].ids = ix->ids;
            ok &= w->heap[g].key && w->heap[g].slot;
        }
    }
    w->fin.key = malloc(cand * sizeof(float) + 1);
    w->fin.slot = malloc(cand * sizeof(size_t) + 1);
    w->fin.ids = ix->ids;
    size_t rsz = ix->code_size > ix->rcode_size ? ix->code_size : ix->rcode_size;
    w->recs = malloc(cand * rsz + 1);
    w->cand_scores = malloc(cand * sizeof(float) + 1);
    w->rowbuf = malloc(d + 8);
    ok &= w->fin.key && w->fin.slot && w->recs && w->cand_scores && w->rowbuf;
    if (!ok) {
        ws_free(w);
        return tq_fail(TQ_ERR_NOMEM, "out of memory for search buffers");
    }
    tq_status s = tq_query_create(ix->q, &w->pq);
    if (s == TQ_OK && ix->rq) s = tq_query_create(ix->rq, &w->rpq);
    if (s != TQ_OK) ws_free(w);
    return s;
}

/* Squared norm of slot s as the L2 score uses it (blocked layout: PLAIN scale or UNBIASED norm). */
static inline float slot_norm2(const tq_index *ix, size_t s) {
    float v = ix->factors[s * ix->nf + (ix->nf > 1 ? 1 : 0)];
    return v * v;
}

/* Exact code scores of the candidates in h (any order) pushed into fin; key = larger is better. */
static tq_status score_candidates(search_ws *w, const tq_index *ix, const float *qv, const topk *h, topk *fin) {
    tq_metric m = ix->cfg.metric == TQ_INDEX_L2 ? TQ_METRIC_L2 : TQ_METRIC_IP;
    TQ_FORWARD(tq_query_set(w->pq, qv));
    for (size_t c = 0; c < h->count; c++) load_record(ix, h->slot[c], w->recs + c * ix->code_size, w->rowbuf);
    TQ_FORWARD(tq_score(ix->q, w->pq, m, w->recs, h->count, w->cand_scores));
    for (size_t c = 0; c < h->count; c++) {
        size_t sl = h->slot[c];
        float key = m == TQ_METRIC_L2 ? -w->cand_scores[c] : w->cand_scores[c] + (ix->xc ? ix->xc[sl] : 0.0f);
        heap_push(fin, key, sl);
    }
    return TQ_OK;
}

/* Rerank the candidates in fin into the top k: exact float scores against qn, or the rerank code's
 * scores against qc (the centered query). */
static tq_status rerank(search_ws *w, const search_job *j, const float *qn, const float *qc, topk *fin) {
    const float *qv = qn;
    const tq_index *ix = j->ix;
    size_t d = ix->cfg.quant.dim, m = fin->count;
    int l2 = ix->cfg.metric == TQ_INDEX_L2;
    if (ix->cfg.rerank == TQ_RERANK_FLOAT) {
        for (size_t c = 0; c < m; c++) {
            const float *x = ix->rerank_f + fin->slot[c] * d;
            double acc = 0.0;
            if (l2) {
                for (size_t t = 0; t < d; t++) acc += ((double)qv[t] - x[t]) * ((double)qv[t] - x[t]);
            } else {
                for (size_t t = 0; t < d; t++) acc += (double)qv[t] * x[t];
            }
            w->cand_scores[c] = (float)(l2 ? -acc : acc);
        }
    } else {
        TQ_FORWARD(tq_query_set(w->rpq, qc));
        for (size_t c = 0; c < m; c++)
            memcpy(w->recs + c * ix->rcode_size, ix->rerank_c + fin->slot[c] * ix->rcode_size, ix->rcode_size);
        TQ_FORWARD(tq_score(ix->rq, w->rpq, l2 ? TQ_METRIC_L2 : TQ_METRIC_IP, w->recs, m, w->cand_scores));
        for (size_t c = 0; c < m; c++)
            w->cand_scores[c] = l2 ? -w->cand_scores[c] : w->cand_scores[c] + (ix->xc ? ix->xc[fin->slot[c]] : 0.0f);
    }
    /* refill fin with the new keys, capped at k */
    size_t *slots = malloc(m * sizeof(size_t) + 1);
    TQ_RETURN_IF(!slots, TQ_ERR_NOMEM, "out of memory for a rerank");
    memcpy(slots, fin->slot, m * sizeof(size_t));
    fin->count = 0;
    fin->cap = j->k < m ? j->k : m;
    for (size_t c = 0; c < m; c++) heap_push(fin, w->cand_scores[c], slots[c]);
    free(slots);
    return TQ_OK;
}

/* Write the best k of fin; add is the per-query constant that turns code keys into <q, x> estimates. */
static void write_result(const search_job *j, size_t qi, topk *fin, double add) {
    const tq_index *ix = j->ix;
    heap_sort(fin);
    int l2 = ix->cfg.metric == TQ_INDEX_L2;
    for (size_t r = 0; r < j->k; r++) {
        if (r < fin->count) {
            j->out_ids[qi * j->k + r] = ix->ids[fin->slot[r]];
            if (j->out_scores) j->out_scores[qi * j->k + r] = l2 ? -fin->key[r] : (float)(fin->key[r] + add);
        } else {
            j->out_ids[qi * j->k + r] = -1;
            if (j->out_scores) j->out_scores[qi * j->k + r] = NAN;
        }
    }
}

static tq_status search_group(search_ws *w, const search_job *j, size_t q0, size_t gq) {
    const tq_index *ix = j->ix;
    size_t d = ix->cfg.quant.dim, n = ix->n;
    int l2 = ix->cfg.metric == TQ_INDEX_L2;
    for (size_t g = 0; g < gq; g++) {
        const float *src = j->queries + (q0 + g) * d;
        float *qn = w->qn + g * d, *qc = w->qc + g * d;
        if (ix->cfg.metric == TQ_INDEX_COSINE) normalize_rows(src, 1, d, qn);
        else memcpy(qn, src, d * sizeof(float));
        double qdotc = 0.0;
        for (size_t t = 0; t < d; t++) {
            qc[t] = ix->center ? qn[t] - ix->center[t] : qn[t];
            if (ix->center) qdotc += (double)qn[t] * ix->center[t];
        }
        /* code keys estimate <q - c, x - c> + <x, c>; exact float rerank keys are <q, x> already */
        w->kq[g] = ix->xc && ix->cfg.rerank != TQ_RERANK_FLOAT ? qdotc - ix->cc : 0.0;
    }
    size_t depth_cap = j->depth < n ? j->depth : n;
    if (ix->fs) {
        size_t lsz = tq_fs_lut_size((uint32_t)d, ix->fs_bits);
        for (size_t g = 0; g < gq; g++) {
            TQ_FORWARD(tq_fs_query_lut(ix->q, w->qc + g * d, w->lut + g * lsz, &w->off[g], &w->del[g]));
            w->heap[g].count = 0;
        }
        size_t blk = tq_fs_size(TQ_FS_BLOCK, (uint32_t)d, ix->fs_bits);
        /* a step of about CHUNK_BYTES stays in the core's L2 while the group's queries read it */
        size_t cb = CHUNK_BYTES / blk, step;
        cb = cb < 1 ? 1 : cb > CHUNK_BLOCKS ? CHUNK_BLOCKS : cb;
        step = cb * TQ_FS_BLOCK;
        for (size_t i0 = 0; i0 < n; i0 += step) {
            size_t m = n - i0 < step ? n - i0 : step;
            const uint8_t *packed = ix->blocks + (i0 / TQ_FS_BLOCK) * blk;
            const uint8_t *luts[GROUP_QUERIES];
            float *outs[GROUP_QUERIES];
            for (size_t g = 0; g < gq; g++) luts[g] = w->lut + g * lsz, outs[g] = w->scan + g * step;
            TQ_FORWARD(tq_fs_scan_multi(packed, m, (uint32_t)d, ix->fs_bits, (uint32_t)gq, luts, w->off, w->del,
                                        outs));
            for (size_t g = 0; g < gq; g++) {
                topk *h = &w->heap[g];
                const float *fac = ix->factors + i0 * ix->nf, *xc = ix->xc ? ix->xc + i0 : NULL;
                float *key = outs[g]; /* the approximate scores become the keys in place */
                const size_t nf = ix->nf;
                /* keys first, in loops without branches (the compiler may vectorize them) ... */
                if (l2) {
                    for (size_t i = 0; i < m; i++) key[i] = 2.0f * (fac[i * nf] * key[i]) - slot_norm2(ix, i0 + i);
                } else if (xc) {
                    if (nf == 1)
                        for (size_t i = 0; i < m; i++) key[i] = fac[i] * key[i] + xc[i];
                    else
                        for (size_t i = 0; i < m; i++) key[i] = fac[i * nf] * key[i] + xc[i];
                } else {
                    for (size_t i = 0; i < m; i++) key[i] = fac[i * nf] * key[i];
                }
                /* ... then one compare per slot against the heap's worst (kept in a register) */
                float worst = h->count == h->cap && h->cap ? h->key[0] : -INFINITY;
                size_t i = 0;
                for (; i + 8 <= m; i += 8) {
                    int any = 0; /* eight compares the compiler can do at once */
                    for (size_t u = 0; u < 8; u++) any |= !(key[i + u] < worst);
                    if (!any) continue;
                    for (size_t u = i; u < i + 8; u++) {
                        if (key[u] < worst) continue; /* fast reject; NaN and ties go to heap_push */
                        heap_push(h, key[u], i0 + u);
                        if (h->count == h->cap && h->cap) worst = h->key[0];
                    }
                }
                for (; i < m; i++) {
                    if (key[i] < worst) continue;
                    heap_push(h, key[i], i0 + i);
                    if (h->count == h->cap && h->cap) worst = h->key[0];
                }
            }
        }
        for (size_t g = 0; g < gq; g++) {
            w->fin.count = 0;
            w->fin.cap = depth_cap;
            TQ_FORWARD(score_candidates(w, ix, w->qc + g * d, &w->heap[g], &w->fin));
            if (ix->cfg.rerank != TQ_RERANK_NONE) TQ_FORWARD(rerank(w, j, w->qn + g * d, w->qc + g * d, &w->fin));
            write_result(j, q0 + g, &w->fin, w->kq[g]);
        }
        return TQ_OK;
    }
    tq_metric m = l2 ? TQ_METRIC_L2 : TQ_METRIC_IP;
    for (size_t g = 0; g < gq; g++) {
        const float *qv = w->qc + g * d;
        TQ_FORWARD(tq_query_set(w->pq, qv));
        w->fin.count = 0;
        w->fin.cap = depth_cap;
        for (size_t i0 = 0; i0 < n; i0 += RECORD_CHUNK) {
            size_t cnt = n - i0 < RECORD_CHUNK ? n - i0 : RECORD_CHUNK;
            TQ_FORWARD(tq_score(ix->q, w->pq, m, ix->records + i0 * ix->code_size, cnt, w->scan));
            for (size_t i = 0; i < cnt; i++)
                heap_push(&w->fin, l2 ? -w->scan[i] : w->scan[i] + (ix->xc ? ix->xc[i0 + i] : 0.0f), i0 + i);
        }
        if (ix->cfg.rerank != TQ_RERANK_NONE) TQ_FORWARD(rerank(w, j, w->qn + g * d, qv, &w->fin));
        write_result(j, q0 + g, &w->fin, w->kq[g]);
    }
    return TQ_OK;
}

static tq_status search_range(void *ctx, size_t begin, size_t end) {
    const search_job *j = ctx;
    search_ws w;
    TQ_FORWARD(ws_init(&w, j));
    tq_status s = TQ_OK;
    for (size_t q0 = begin; q0 < end && s == TQ_OK; q0 += GROUP_QUERIES) {
        size_t gq = end - q0 < GROUP_QUERIES ? end - q0 : GROUP_QUERIES;
        s = search_group(&w, j, q0, gq);
    }
    ws_free(&w);
    return s;
}

static tq_status index_search_unlocked(const tq_index *ix, const float *queries, size_t nq, size_t k,
                                       const tq_search_params *params, int64_t *ids, float *scores) {
    tq_clear_error();
    TQ_RETURN_IF(!ix, TQ_ERR_INVALID_ARG, "NULL index");
    if (nq == 0 || k == 0) return TQ_OK;
    TQ_RETURN_IF(!queries || !ids, TQ_ERR_INVALID_ARG, "queries or ids is NULL");
    size_t d = ix->cfg.quant.dim, cells;
    /* the caller's queries (nq * d floats) and results (nq * k ids) must fit the address space */
    TQ_RETURN_IF(!tq_mul_size(nq, k, &cells) || !tq_mul_size(cells, sizeof(int64_t), &cells) ||
                     !tq_mul_size(nq, d, &cells) || !tq_mul_size(cells, sizeof(float), &cells),
                 TQ_ERR_SIZE, "nq = %zu queries with k = %zu overflows", nq, k);
    TQ_FORWARD(check_queries(ix, queries, nq, d));
    size_t n = ix->n, kk = k < n ? k : n;
    size_t shortlist = params && params->shortlist ? params->shortlist : (2 * kk > kk + 32 ? 2 * kk : kk + 32);
    size_t depth = kk;
    if (ix->cfg.rerank != TQ_RERANK_NONE) {
        size_t r = params && params->rerank ? params->rerank : (4 * kk > 64 ? 4 * kk : 64);
        depth = r > kk ? r : kk;
    }
    if (shortlist < depth) shortlist = depth;
    if (shortlist > n) shortlist = n;
    if (depth > n) depth = n;
    if (n == 0) {
        for (size_t i = 0; i < nq * k; i++) {
            ids[i] = -1;
            if (scores) scores[i] = NAN;
        }
        return TQ_OK;
    }
    search_job j = {ix, queries, nq, k, shortlist, depth, ids, scores};
    return tq_parallel_for(nq, GROUP_QUERIES, search_range, &j);
}

/* ---- the public entry points: the lock around the bodies above ---- */

tq_status tq_index_memory_usage(const tq_index *ix, tq_index_memory *out) {
    if (!ix) return index_memory_usage_unlocked(ix, out);
    tq_index_rdlock(ix);
    tq_status s = index_memory_usage_unlocked(ix, out);
    tq_index_unlock(ix);
    return s;
}

tq_status tq_index_add(tq_index *ix, const float *x, size_t n, const int64_t *ids, int64_t *assigned) {
    if (!ix) return index_add_unlocked(ix, x, n, ids, assigned);
    tq_index_wrlock(ix);
    tq_status s = index_add_unlocked(ix, x, n, ids, assigned);
    tq_index_unlock(ix);
    return s;
}

tq_status tq_index_remove(tq_index *ix, const int64_t *ids, size_t n, size_t *removed) {
    if (!ix) return index_remove_unlocked(ix, ids, n, removed);
    tq_index_wrlock(ix);
    tq_status s = index_remove_unlocked(ix, ids, n, removed);
    tq_index_unlock(ix);
    return s;
}

tq_status tq_index_search(const tq_index *ix, const float *queries, size_t nq, size_t k,
                          const tq_search_params *params, int64_t *ids, float *scores) {
    if (!ix) return index_search_unlocked(ix, queries, nq, k, params, ids, scores);
    tq_index_rdlock(ix);
    tq_status s = index_search_unlocked(ix, queries, nq, k, params, ids, scores);
    tq_index_unlock(ix);
    return s;
}
