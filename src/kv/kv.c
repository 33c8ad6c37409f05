/*
 * kv.c — tq_kv: a compressed KV cache for one attention layer, and decode
 * attention computed straight from its codes (public API in tq.h).
 *
 * Storage. Each KV head keeps two arrays of fixed-size stored records, one
 * for keys and one for values, token after token. A stored record is the
 * quantizer's record (tq_encode) with its float32 factors rewritten: fp16 by
 * default, and the factors attention never reads dropped (the exact norm
 * that TQ_NORM_UNBIASED keeps for L2 search). Per part:
 *     [kept factors, fp16 or f32][everything after the factors, verbatim]
 * so the packed indices, QJL signs and fp16 group ranges are exactly what
 * tq_encode wrote. The first `sinks` tokens and the most recent `window`
 * tokens stay exact (float32); a window token is encoded the moment it
 * leaves the window. Tokens are laid out as [sinks][compressed][window].
 * Centered sides encode x - c, c the per-head mean of the first append (its
 * sink tokens left out): keys get q.c added back to their logits, values the
 * compressed tokens' share of c added to the output (tq.h says why exact).
 *
 * Attention for one (query token, KV head) item, G = q_heads / kv_heads
 * query heads sharing the head's records:
 *   1. each query is rotated once per key part (tq_query_set);
 *   2. tokens are taken in blocks of KV_BLOCK: logits from the codes (MSE:
 *      the kv_logits kernel decodes each record once for all G queries and
 *      scales each part's dot by its stored factor; other variants: the
 *      record is rebuilt and scored as tq_score would), exact dots for sink
 *      and window tokens;
 *   3. online softmax: a running max m and sum l per query; when a block
 *      raises m, everything accumulated so far is multiplied by exp(m_old - m);
 *   4. values accumulate in each value part's rotated domain (MSE: the
 *      kv_accum kernel with weight p_t * factor_t; others: the record's
 *      rotated reconstruction, the QJL term kept as a weighted sum of sign
 *      vectors so S^T is applied once), window values in the plain domain;
 *   5. per output: QJL sum through S^T, inverse rotation, scatter to the
 *      channels, add the exact tokens' part, divide by l, add the value
 *      center's share.
 * Items run in parallel on the pool; each is computed the same way whatever
 * thread runs it, so results do not depend on the thread count.
 */
#define _POSIX_C_SOURCE 200809L /* pthread_rwlock_t */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/pool.h"
#include "../core/rwlock.h"
#include "../kernels/kernels.h"
#include "../quant/quantizer.h"

enum {
    KV_BLOCK = 256,          /* tokens per online-softmax block */
    KV_MAX_HEADS = 4096,
    KV_DEFAULT_CAPACITY = 256
};

typedef struct kv_part_layout {
    size_t src_off;   /* the part's record inside the full tq record */
    size_t dst_off;   /* the part's record inside the stored record */
    uint32_t nf_src;  /* float32 factors tq_encode writes */
    uint32_t nf_keep; /* factors stored */
    size_t rest;      /* bytes after the factors (group ranges, indices, signs), copied verbatim */
} kv_part_layout;

typedef struct kv_side {
    tq_quantizer **q;  /* per head; all the same pointer when shared */
    int shared;
    uint8_t **codes;   /* per head: cap * srec bytes */
    size_t rec, srec;  /* tq record and stored record bytes */
    size_t fsize;      /* bytes per stored factor: 2 or 4 */
    uint32_t nparts;
    kv_part_layout part[2];
    int fast;          /* MSE: scored and accumulated by the kv kernels straight from stored records */
} kv_side;

struct tq_kv {
    tq_kv_config cfg;  /* key/value outlier_channels point at the copies below (FIXED) or are NULL */
    uint32_t *outl[2]; /* FIXED: copies of the configured outlier lists */
    uint32_t H, D;
    kv_side side[2];   /* 0 keys, 1 values */
    int built;         /* quantizers exist (FIRST with a split: after the first append) */
    int primed;        /* the first append happened (centers computed) */
    float *center[2];  /* centered sides: [H][D] means of the first append's keys / values; else NULL */
    size_t length, ncomp, cap;
    float *sink[2];    /* [sinks][H][D]: keys, values of the first nsink tokens, exact */
    size_t nsink;
    float *win[2];     /* [window][H][D]: keys, values of the nwin most recent tokens, oldest first */
    size_t nwin;       /* tokens: [0, nsink) sinks, then ncomp compressed, then nwin in the window */
    /* attend, logits, decode, length, memory usage and config share it; append holds it alone
     * (writer-preferring where the C library offers it) */
    pthread_rwlock_t lock;
};

static void kv_rdlock(const tq_kv *kv) { pthread_rwlock_rdlock((pthread_rwlock_t *)&kv->lock); }
static void kv_unlock(const tq_kv *kv) { pthread_rwlock_unlock((pthread_rwlock_t *)&kv->lock); }

/* ------------------------------------------------------------------ config */

void tq_kv_config_init(tq_kv_config *cfg, uint32_t kv_heads, uint32_t head_dim, double key_bits,
                       double value_bits) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->kv_heads = kv_heads;
    cfg->head_dim = head_dim;
    tq_config_init(&cfg->key, head_dim, 1);
    tq_config_init(&cfg->value, head_dim, 1);
    /* invalid bits are left as 0 for tq_kv_create to report */
    if (tq_config_set_bits(&cfg->key, key_bits) != TQ_OK) cfg->key.bits = 0;
    if (tq_config_set_bits(&cfg->value, value_bits) != TQ_OK) cfg->value.bits = 0;
    cfg->key.norm = TQ_NORM_UNBIASED;
    cfg->value.norm = TQ_NORM_PLAIN;
    cfg->value.seed = 1;
    cfg->factors = TQ_KV_FACTOR_F16;
    cfg->outliers = TQ_KV_OUTLIERS_FIRST;
    cfg->center = TQ_KV_CENTER_KEYS;
    cfg->sinks = 4;
    tq_clear_error();
}

static const char *side_name(int s) { return s ? "value" : "key"; }

static tq_status validate(const tq_kv_config *cfg) {
    TQ_RETURN_IF(!cfg, TQ_ERR_INVALID_ARG, "config is NULL");
    TQ_RETURN_IF(cfg->kv_heads == 0 || cfg->kv_heads > KV_MAX_HEADS, TQ_ERR_INVALID_ARG,
                 "kv_heads = %u, must be 1..%u", cfg->kv_heads, KV_MAX_HEADS);
    TQ_RETURN_IF(cfg->head_dim == 0 || cfg->head_dim > TQ_MAX_DIM, TQ_ERR_DIM, "head_dim = %u, must be 1..%u",
                 cfg->head_dim, TQ_MAX_DIM);
    TQ_RETURN_IF((unsigned)cfg->factors > TQ_KV_FACTOR_F32, TQ_ERR_INVALID_ARG, "unknown factor precision %d",
                 (int)cfg->factors);
    TQ_RETURN_IF((unsigned)cfg->outliers > TQ_KV_OUTLIERS_FIRST, TQ_ERR_INVALID_ARG, "unknown outlier mode %d",
                 (int)cfg->outliers);
    TQ_RETURN_IF((unsigned)cfg->center > TQ_KV_CENTER_BOTH, TQ_ERR_INVALID_ARG, "unknown center mode %d",
                 (int)cfg->center);
    size_t total;
    TQ_RETURN_IF(!tq_mul_size((size_t)cfg->kv_heads * cfg->head_dim,
                              (size_t)cfg->window + cfg->capacity + cfg->sinks, &total) ||
                     !tq_mul_size(total, 2 * sizeof(float), &total),
                 TQ_ERR_SIZE, "window %u and capacity %u are too large", cfg->window, cfg->capacity);
    for (int s = 0; s < 2; s++) {
        const tq_config *c = s ? &cfg->value : &cfg->key;
        TQ_RETURN_IF(c->dim != cfg->head_dim, TQ_ERR_DIM, "the %s quantizer's dim %u is not head_dim %u",
                     side_name(s), c->dim, cfg->head_dim);
        TQ_RETURN_IF(c->variant == TQ_VARIANT_UNIFORM && c->uniform_scope == TQ_UNIFORM_PER_CHANNEL,
                     TQ_ERR_INVALID_ARG,
                     "the %s quantizer is per-channel uniform, which needs calibration; a KV cache encodes every "
                     "token on its own (use per-vector or group scope)",
                     side_name(s));
        TQ_RETURN_IF(cfg->outliers == TQ_KV_OUTLIERS_FIRST && c->outlier_channels, TQ_ERR_INVALID_ARG,
                     "the %s quantizer lists outlier channels, but the cache chooses them from the first append "
                     "(TQ_KV_OUTLIERS_FIRST): use TQ_KV_OUTLIERS_FIXED to give them",
                     side_name(s));
        tq_status st = tq_config_validate(c);
        if (st != TQ_OK) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", tq_last_error());
            return tq_fail(st, "%s quantizer: %s", side_name(s), msg);
        }
    }
    return TQ_OK;
}

/* The stored-record layout of a side, from one of its quantizers. */
static void side_layout(kv_side *sd, const tq_quantizer *q, tq_kv_factor factors) {
    sd->rec = q->code_size;
    sd->nparts = q->nparts;
    sd->fsize = factors == TQ_KV_FACTOR_F16 ? 2 : 4;
    sd->fast = q->cfg.variant == TQ_VARIANT_MSE;
    size_t off = 0;
    for (uint32_t p = 0; p < q->nparts; p++) {
        const tq_part *pt = &q->part[p];
        kv_part_layout *l = &sd->part[p];
        l->src_off = pt->offset;
        l->nf_src = pt->nfactors;
        l->nf_keep = q->cfg.variant == TQ_VARIANT_MSE ? 1 : pt->nfactors;
        l->rest = pt->code_size - (size_t)pt->nfactors * 4;
        l->dst_off = off;
        off += l->nf_keep * sd->fsize + l->rest;
    }
    sd->srec = off;
}

/* The stored-record layouts of keys (sides[0]) and values (sides[1]) of a validated config: the same for every
 * head and for any outlier channels, so layout-only quantizers (no dense matrices filled) give them. */
static tq_status side_layouts(const tq_kv_config *cfg, kv_side sides[2]) {
    for (int s = 0; s < 2; s++) {
        tq_config c = s ? cfg->value : cfg->key;
        c.outlier_channels = NULL;
        tq_quantizer *q = NULL;
        TQ_FORWARD(tq_quantizer_build(&c, 0, &q));
        side_layout(&sides[s], q, cfg->factors);
        tq_quantizer_free(q);
    }
    return TQ_OK;
}

tq_status tq_kv_token_bytes(const tq_kv_config *cfg, size_t *bytes, size_t *key_bytes, size_t *value_bytes) {
    tq_clear_error();
    TQ_FORWARD(validate(cfg));
    kv_side sd[2];
    memset(sd, 0, sizeof sd);
    TQ_FORWARD(side_layouts(cfg, sd));
    if (bytes) *bytes = (sd[0].srec + sd[1].srec) * cfg->kv_heads;
    if (key_bytes) *key_bytes = sd[0].srec;
    if (value_bytes) *value_bytes = sd[1].srec;
    return TQ_OK;
}

/* ------------------------------------------------------------------ create */

static void side_free_quantizers(kv_side *sd, uint32_t H) {
    if (!sd->q) return;
    if (sd->shared) {
        tq_quantizer_free(sd->q[0]);
    } else {
        for (uint32_t h = 0; h < H; h++) tq_quantizer_free(sd->q[h]);
    }
    memset(sd->q, 0, H * sizeof *sd->q);
}

void tq_kv_free(tq_kv *kv) {
    if (!kv) return;
    for (int s = 0; s < 2; s++) {
        kv_side *sd = &kv->side[s];
        side_free_quantizers(sd, kv->H);
        free(sd->q);
        if (sd->codes)
            for (uint32_t h = 0; h < kv->H; h++) free(sd->codes[h]);
        free(sd->codes);
        free(kv->win[s]);
        free(kv->sink[s]);
        free(kv->outl[s]);
        free(kv->center[s]);
    }
    pthread_rwlock_destroy(&kv->lock); /* initialised before anything that can fail after it */
    free(kv);
}

static int needs_first(const tq_kv *kv) {
    return kv->cfg.outliers == TQ_KV_OUTLIERS_FIRST && (kv->cfg.key.outlier_count || kv->cfg.value.outlier_count);
}

/* One quantizer shared by every head of side s (no split, or FIXED channels). */
static tq_status build_shared(tq_kv *kv, int s) {
    kv_side *sd = &kv->side[s];
    const tq_config *c = s ? &kv->cfg.value : &kv->cfg.key;
    tq_quantizer *q = NULL;
    TQ_FORWARD(tq_quantizer_create(c, &q));
    for (uint32_t h = 0; h < kv->H; h++) sd->q[h] = q;
    sd->shared = 1;
    return TQ_OK;
}

tq_status tq_kv_create(const tq_kv_config *cfg, tq_kv **out) {
    tq_clear_error();
    TQ_RETURN_IF(!out, TQ_ERR_INVALID_ARG, "output pointer is NULL");
    *out = NULL;
    TQ_FORWARD(validate(cfg));
    tq_kv *kv = calloc(1, sizeof *kv);
    TQ_RETURN_IF(!kv, TQ_ERR_NOMEM, "out of memory for a KV cache");
    if (!tq_rwlock_init(&kv->lock)) {
        free(kv);
        return tq_fail(TQ_ERR_NOMEM, "out of memory for a KV cache's lock");
    }
    kv->cfg = *cfg;
    kv->H = cfg->kv_heads;
    kv->D = cfg->head_dim;
    kv->cap = cfg->capacity ? cfg->capacity : KV_DEFAULT_CAPACITY;
    tq_status st = side_layouts(cfg, kv->side);
    for (int s = 0; s < 2 && st == TQ_OK; s++) {
        kv_side *sd = &kv->side[s];
        tq_config *c = s ? &kv->cfg.value : &kv->cfg.key;
        sd->q = calloc(kv->H, sizeof *sd->q);
        sd->codes = calloc(kv->H, sizeof *sd->codes);
        if (!sd->q || !sd->codes) {
            st = tq_fail(TQ_ERR_NOMEM, "out of memory for a KV cache");
            break;
        }
        if (c->outlier_channels) { /* FIXED: keep a copy, the caller's array may go */
            kv->outl[s] = malloc(c->outlier_count * sizeof(uint32_t));
            if (!kv->outl[s]) {
                st = tq_fail(TQ_ERR_NOMEM, "out of memory for outlier channels");
                break;
            }
            memcpy(kv->outl[s], c->outlier_channels, c->outlier_count * sizeof(uint32_t));
            c->outlier_channels = kv->outl[s];
        }
        for (uint32_t h = 0; h < kv->H && st == TQ_OK; h++) {
            sd->codes[h] = malloc(kv->cap * sd->srec);
            if (!sd->codes[h]) st = tq_fail(TQ_ERR_NOMEM, "out of memory for %zu tokens of codes", kv->cap);
        }
        if ((cfg->center >> s) & 1u) {
            kv->center[s] = calloc((size_t)kv->H * kv->D, sizeof(float));
            if (!kv->center[s]) st = tq_fail(TQ_ERR_NOMEM, "out of memory for centers");
        }
        if (cfg->sinks && st == TQ_OK) {
            kv->sink[s] = malloc((size_t)cfg->sinks * kv->H * kv->D * sizeof(float));
            if (!kv->sink[s]) st = tq_fail(TQ_ERR_NOMEM, "out of memory for %u sink tokens", cfg->sinks);
        }
        if (cfg->window && st == TQ_OK) {
            kv->win[s] = malloc((size_t)cfg->window * kv->H * kv->D * sizeof(float));
            if (!kv->win[s]) st = tq_fail(TQ_ERR_NOMEM, "out of memory for a %u-token window", cfg->window);
        }
    }
    if (st == TQ_OK && !needs_first(kv)) {
        st = build_shared(kv, 0);
        if (st == TQ_OK) st = build_shared(kv, 1);
        kv->built = st == TQ_OK;
    }
    if (st != TQ_OK) {
        tq_kv_free(kv);
        return st;
    }
    *out = kv;
    return TQ_OK;
}

tq_status tq_kv_get_config(const tq_kv *kv, tq_kv_config *out) {
    TQ_RETURN_IF(!kv || !out, TQ_ERR_INVALID_ARG, "NULL argument");
    *out = kv->cfg; /* the config never changes after create */
    out->key.outlier_channels = out->value.outlier_channels = NULL;
    return TQ_OK;
}

size_t tq_kv_length(const tq_kv *kv) {
    if (!kv) return 0;
    kv_rdlock(kv);
    size_t n = kv->length;
    kv_unlock(kv);
    return n;
}

static tq_status kv_memory_usage_unlocked(const tq_kv *kv, tq_kv_memory *out) {
    TQ_RETURN_IF(!kv || !out, TQ_ERR_INVALID_ARG, "NULL argument");
    memset(out, 0, sizeof *out);
    uint64_t H = kv->H, D = kv->D;
    out->tokens = kv->length;
    out->compressed = kv->ncomp;
    out->key_codes = kv->ncomp * kv->side[0].srec * H;
    out->value_codes = kv->ncomp * kv->side[1].srec * H;
    out->window = (kv->nwin + kv->nsink) * H * D * 2 * sizeof(float);
    out->reserved = (kv->cap - kv->ncomp) * (kv->side[0].srec + kv->side[1].srec) * H +
                    (kv->cfg.window - kv->nwin + kv->cfg.sinks - kv->nsink) * H * D * 2 * sizeof(float);
    for (int s = 0; s < 2; s++) {
        const kv_side *sd = &kv->side[s];
        uint32_t nq = sd->shared ? 1 : kv->H;
        for (uint32_t h = 0; h < nq; h++) {
            size_t qs = 0;
            if (sd->q[h] && tq_quantizer_serialized_size(sd->q[h], &qs) == TQ_OK) out->quantizers += qs;
        }
    }
    for (int s = 0; s < 2; s++)
        if (kv->center[s]) out->centers += (uint64_t)H * D * sizeof(float);
    out->total = out->key_codes + out->value_codes + out->window + out->reserved + out->quantizers + out->centers;
    return TQ_OK;
}

/* ------------------------------------------------------------------ append */

/* Every value finite (a KV cache refuses NaN/Inf whether or not the token is encoded now). */
static tq_status check_finite(const float *x, size_t n, uint32_t H, uint32_t D, const char *what) {
    size_t total = n * H * D;
    for (size_t i = 0; i < total; i++) {
        if (!isfinite(x[i])) {
            size_t t = i / ((size_t)H * D), h = (i / D) % H, j = i % D;
            return tq_fail(TQ_ERR_NONFINITE, "%s of token %zu, head %zu, channel %zu is %s", what, t, h, j,
                           isnan(x[i]) ? "NaN" : "Inf");
        }
    }
    return TQ_OK;
}

/* tq record -> stored record; TQ_ERR_NONFINITE when a factor is beyond fp16. */
static tq_status store_record(const kv_side *sd, const uint8_t *rec, uint8_t *dst) {
    for (uint32_t p = 0; p < sd->nparts; p++) {
        const kv_part_layout *l = &sd->part[p];
        const uint8_t *src = rec + l->src_off;
        uint8_t *o = dst + l->dst_off;
        for (uint32_t f = 0; f < l->nf_keep; f++) {
            if (sd->fsize == 4) {
                memcpy(o + 4 * f, src + 4 * f, 4);
            } else {
                float v = tq_get_f32(src + 4 * f);
                uint16_t hv = tq_f32_to_f16(v);
                TQ_RETURN_IF(!isfinite(tq_f16_to_f32(hv)), TQ_ERR_NONFINITE,
                             "a per-token factor (%g) exceeds the fp16 range: use TQ_KV_FACTOR_F32", (double)v);
                tq_put_u16(o + 2 * f, hv);
            }
        }
        memcpy(o + l->nf_keep * sd->fsize, src + (size_t)l->nf_src * 4, l->rest);
    }
    return TQ_OK;
}

static float stored_factor(const kv_side *sd, const uint8_t *srec, uint32_t p, uint32_t f) {
    const uint8_t *o = srec + sd->part[p].dst_off;
    return sd->fsize == 2 ? tq_f16_to_f32(tq_get_u16(o + 2 * f)) : tq_get_f32(o + 4 * f);
}

/* stored record -> tq record (factors not stored are 0: attention never reads them). */
static void load_record(const kv_side *sd, const uint8_t *srec, uint8_t *rec) {
    memset(rec, 0, sd->rec);
    for (uint32_t p = 0; p < sd->nparts; p++) {
        const kv_part_layout *l = &sd->part[p];
        uint8_t *o = rec + l->src_off;
        for (uint32_t f = 0; f < l->nf_keep; f++) tq_put_f32(o + 4 * f, stored_factor(sd, srec, p, f));
        memcpy(o + (size_t)l->nf_src * 4, srec + l->dst_off + l->nf_keep * sd->fsize, l->rest);
    }
}

/* Centers (per head, the mean of the n tokens) of the centered sides. */
static void compute_centers(tq_kv *kv, const float *keys, const float *values, size_t n) {
    const uint32_t H = kv->H, D = kv->D;
    for (int s = 0; s < 2; s++) {
        if (!kv->center[s]) continue;
        const float *x = s ? values : keys;
        for (size_t i = 0; i < (size_t)H * D; i++) {
            double sum = 0.0;
            for (size_t t = 0; t < n; t++) sum += x[t * H * D + i];
            kv->center[s][i] = (float)(sum / (double)n);
        }
    }
}

/* Head h of n tokens of x ([n][H][D]), minus side s's center when it has one, into out ([n][D]). */
static void gather_head(const tq_kv *kv, int s, const float *x, size_t n, uint32_t h, float *out) {
    const uint32_t H = kv->H, D = kv->D;
    const float *c = kv->center[s] ? kv->center[s] + (size_t)h * D : NULL;
    for (size_t t = 0; t < n; t++) {
        const float *src = x + (t * H + h) * D;
        float *o = out + t * D;
        if (c) {
            for (uint32_t j = 0; j < D; j++) o[j] = src[j] - c[j];
        } else {
            memcpy(o, src, D * sizeof(float));
        }
    }
}

/* TQ_KV_OUTLIERS_FIRST: per head, the channels of largest mean square over the first append (after
 * centering, so the channels of largest variance). */
static tq_status build_first(tq_kv *kv, const float *keys, const float *values, size_t n) {
    const uint32_t H = kv->H, D = kv->D;
    float *tmp = malloc(n * D * sizeof(float));
    uint32_t *ch = malloc(D * sizeof(uint32_t));
    tq_status st = (tmp && ch) ? TQ_OK : tq_fail(TQ_ERR_NOMEM, "out of memory choosing outlier channels");
    for (int s = 0; s < 2 && st == TQ_OK; s++) {
        kv_side *sd = &kv->side[s];
        tq_config c = s ? kv->cfg.value : kv->cfg.key;
        if (c.outlier_count == 0) {
            st = build_shared(kv, s);
            continue;
        }
        const float *x = s ? values : keys;
        sd->shared = 0;
        for (uint32_t h = 0; h < H && st == TQ_OK; h++) {
            gather_head(kv, s, x, n, h, tmp);
            st = tq_select_outliers(tmp, n, D, c.outlier_count, ch);
            c.outlier_channels = ch;
            if (st == TQ_OK) st = tq_quantizer_create(&c, &sd->q[h]);
        }
    }
    if (st != TQ_OK) {
        side_free_quantizers(&kv->side[0], H);
        side_free_quantizers(&kv->side[1], H);
        kv->side[0].shared = kv->side[1].shared = 0;
    }
    free(tmp);
    free(ch);
    return st;
}

static tq_status ensure_capacity(tq_kv *kv, size_t need) {
    if (need <= kv->cap) return TQ_OK;
    size_t cap = kv->cap;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    for (int s = 0; s < 2; s++) {
        kv_side *sd = &kv->side[s];
        size_t bytes;
        TQ_RETURN_IF(!tq_mul_size(cap, sd->srec, &bytes), TQ_ERR_SIZE, "%zu tokens is too many", cap);
        for (uint32_t h = 0; h < kv->H; h++) {
            uint8_t *p = realloc(sd->codes[h], bytes);
            TQ_RETURN_IF(!p, TQ_ERR_NOMEM, "out of memory growing the cache to %zu tokens", cap);
            sd->codes[h] = p; /* a grown head is only larger than needed if a later one fails */
        }
    }
    kv->cap = cap;
    return TQ_OK;
}

/*
 * Encode head h's tokens x ([count][D], centered) one at a time into scratch, as they would be stored; the
 * first that cannot be (a factor beyond fp16, a norm beyond float32, a group range beyond fp16) fails,
 * naming its position pos0 + t.
 */
static tq_status check_tokens(const tq_kv *kv, int s, uint32_t h, const float *x, size_t count, size_t pos0) {
    const kv_side *sd = &kv->side[s];
    uint8_t *rec = malloc(sd->rec), *srec = malloc(sd->srec);
    tq_status st = (rec && srec) ? TQ_OK : tq_fail(TQ_ERR_NOMEM, "out of memory checking %zu tokens", count);
    for (size_t t = 0; t < count && st == TQ_OK; t++) {
        st = tq_encode(sd->q[h], x + t * kv->D, 1, rec);
        if (st == TQ_OK) st = store_record(sd, rec, srec);
        if (st != TQ_OK && st != TQ_ERR_NOMEM) {
            const char *m = tq_last_error();
            if (strncmp(m, "input row 0: ", 13) == 0) m += 13;
            st = tq_fail(st, "%s of token %zu, head %u: %s", side_name(s), pos0 + t, h, m);
        }
    }
    free(rec);
    free(srec);
    return st;
}

/*
 * Encode `count` tokens of side s into slots ncomp.. of every head: the first
 * `from_win` from the window's oldest, the rest from new[0..). pos0 is the
 * position of the first (for messages).
 */
static tq_status encode_tokens(tq_kv *kv, int s, const float *fresh, size_t from_win, size_t count, size_t pos0) {
    const uint32_t H = kv->H, D = kv->D;
    kv_side *sd = &kv->side[s];
    float *tmp = malloc(count * D * sizeof(float));
    uint8_t *recs = malloc(count * sd->rec);
    tq_status st = (tmp && recs) ? TQ_OK : tq_fail(TQ_ERR_NOMEM, "out of memory encoding %zu tokens", count);
    for (uint32_t h = 0; h < H && st == TQ_OK; h++) {
        gather_head(kv, s, kv->win[s], from_win, h, tmp);
        gather_head(kv, s, fresh, count - from_win, h, tmp + from_win * D);
        st = tq_encode(sd->q[h], tmp, count, recs);
        for (size_t t = 0; t < count && st == TQ_OK; t++)
            st = store_record(sd, recs + t * sd->rec, sd->codes[h] + (kv->ncomp + t) * sd->srec);
        if (st != TQ_OK && st != TQ_ERR_NOMEM) st = check_tokens(kv, s, h, tmp, count, pos0); /* which token */
    }
    free(tmp);
    free(recs);
    return st;
}

/*
 * Tokens entering the window are encoded only when a later append pushes them out. Encode them once now
 * (into scratch), so a token the cache could never encode is refused by the append that brings it, not by
 * every later append that would evict it (which would leave the cache unable to grow).
 */
static tq_status check_window_tokens(const tq_kv *kv, const float *keys, const float *values, size_t count,
                                     size_t pos0) {
    const uint32_t D = kv->D;
    float *tmp = malloc(count * D * sizeof(float));
    tq_status st = tmp ? TQ_OK : tq_fail(TQ_ERR_NOMEM, "out of memory checking %zu tokens", count);
    for (int s = 0; s < 2 && st == TQ_OK; s++) {
        for (uint32_t h = 0; h < kv->H && st == TQ_OK; h++) {
            gather_head(kv, s, s ? values : keys, count, h, tmp);
            st = check_tokens(kv, s, h, tmp, count, pos0);
        }
    }
    free(tmp);
    return st;
}

static tq_status kv_append_unlocked(tq_kv *kv, const float *keys, const float *values, size_t n) {
    tq_clear_error();
    TQ_RETURN_IF(!kv, TQ_ERR_INVALID_ARG, "cache is NULL");
    if (n == 0) return TQ_OK;
    TQ_RETURN_IF(!keys || !values, TQ_ERR_INVALID_ARG, "keys or values is NULL");
    const uint32_t H = kv->H, D = kv->D;
    size_t total;
    TQ_RETURN_IF(!tq_mul_size(n, (size_t)H * D, &total) || !tq_mul_size(total, sizeof(float), &total) ||
                     n > SIZE_MAX / 4 - kv->length,
                 TQ_ERR_SIZE, "n = %zu tokens is too large", n);
    TQ_FORWARD(check_finite(keys, n, H, D, "key"));
    TQ_FORWARD(check_finite(values, n, H, D, "value"));
    /* the first `sinks` tokens stay exact; the rest go through the window to the codes */
    const size_t tok = (size_t)H * D;
    size_t to_sink = kv->nsink < kv->cfg.sinks ? kv->cfg.sinks - kv->nsink : 0;
    if (to_sink > n) to_sink = n;
    const float *keys_all = keys, *values_all = values;
    size_t n_all = n;
    keys += to_sink * tok;
    values += to_sink * tok;
    n -= to_sink;
    int built_now = 0;
    /* centers and outlier channels from the first append, its sink tokens left out when there is more */
    if (!kv->primed) compute_centers(kv, n ? keys : keys_all, n ? values : values_all, n ? n : n_all);
    if (!kv->built) {
        TQ_FORWARD(build_first(kv, n ? keys : keys_all, n ? values : values_all, n ? n : n_all));
        built_now = 1;
    }
    const size_t W = kv->cfg.window;
    size_t evict = kv->nwin + n > W ? kv->nwin + n - W : 0;
    size_t from_win = evict < kv->nwin ? evict : kv->nwin;
    size_t keep = kv->nwin + n - evict, keep_new = n < keep ? n : keep, keep_old = keep - keep_new;
    const size_t pos_new = kv->length + to_sink; /* the position of keys[0] */
    tq_status st = TQ_OK;
    if (keep_new)
        st = check_window_tokens(kv, keys + (n - keep_new) * tok, values + (n - keep_new) * tok, keep_new,
                                 pos_new + (n - keep_new));
    if (st == TQ_OK) st = ensure_capacity(kv, kv->ncomp + evict);
    for (int s = 0; s < 2 && st == TQ_OK && evict; s++)
        st = encode_tokens(kv, s, s ? values : keys, from_win, evict, kv->nsink + to_sink + kv->ncomp);
    if (st != TQ_OK) {
        if (built_now) {
            side_free_quantizers(&kv->side[0], H);
            side_free_quantizers(&kv->side[1], H);
        }
        return st;
    }
    kv->built = 1;
    kv->primed = 1;
    for (int s = 0; s < 2 && to_sink; s++)
        memcpy(kv->sink[s] + kv->nsink * tok, s ? values_all : keys_all, to_sink * tok * sizeof(float));
    kv->nsink += to_sink;
    /* commit: the window keeps the last min(nwin + n, W) tokens of (window, new) */
    for (int s = 0; s < 2 && W; s++) {
        const float *fresh = s ? values : keys;
        memmove(kv->win[s], kv->win[s] + (kv->nwin - keep_old) * tok, keep_old * tok * sizeof(float));
        memcpy(kv->win[s] + keep_old * tok, fresh + (n - keep_new) * tok, keep_new * tok * sizeof(float));
    }
    kv->nwin = keep;
    kv->ncomp += evict;
    kv->length += n_all;
    return TQ_OK;
}

/* ----------------------------------------------------------------- attend */

enum { KV_MAX_GROUP = 128 }; /* query heads per KV head */

/* Buffers of one (query token, KV head) item. */
typedef struct kv_item {
    const tq_kv *kv;
    uint32_t h, G;
    float scale;
    tq_query *pq[KV_MAX_GROUP]; /* the G prepared queries (NULL beyond G) */
    float *qk[2];          /* MSE keys: G x part dim rotated queries, per part */
    float *logit;          /* G x n logits of a block of n <= KV_BLOCK tokens, then their softmax weights */
    float *w;              /* G x n: kernel dots, then MSE value weights (times the factor) */
    float *f;              /* 2 x KV_BLOCK: the stored factors of a block, per part */
    float *acc[2];         /* G x part dim, rotated value domain, per part */
    float *accz[2];        /* G x part dim: weighted QJL sign sums, per part (PROD/QJL values) */
    float *accw;           /* G x D: window values */
    float *qc;             /* G: scale * <q, c_k> (centered keys: added to the compressed tokens' logits) */
    double *lc;            /* G: running sum of the compressed tokens' weights (centered values) */
    float *m;              /* G running max */
    double *l;             /* G running sum */
    uint8_t *rec, *scratch;
    float *v;              /* part dim floats */
    tq_work work;
} kv_item;

static void item_free(kv_item *it) {
    for (uint32_t g = 0; g < KV_MAX_GROUP; g++) tq_query_free(it->pq[g]);
    for (int p = 0; p < 2; p++) {
        free(it->qk[p]);
        free(it->acc[p]);
        free(it->accz[p]);
    }
    free(it->logit);
    free(it->w);
    free(it->f);
    free(it->accw);
    free(it->m);
    free(it->qc);
    free(it->lc);
    free(it->l);
    free(it->rec);
    free(it->scratch);
    free(it->v);
    tq_work_free(&it->work);
}

static tq_status item_alloc(kv_item *it, const tq_kv *kv, uint32_t G) {
    memset(it, 0, sizeof *it);
    it->kv = kv;
    it->G = G;
    const tq_quantizer *kq = kv->side[0].q[0], *vq = kv->side[1].q[0];
    uint32_t dmax = kv->D;
    int bad = 0;
    for (int p = 0; p < 2; p++) {
        if ((uint32_t)p < kq->nparts) {
            it->qk[p] = malloc((size_t)G * kq->part[p].dim * sizeof(float));
            bad |= !it->qk[p];
        }
        if ((uint32_t)p < vq->nparts) {
            it->acc[p] = malloc((size_t)G * vq->part[p].dim * sizeof(float));
            bad |= !it->acc[p];
            if (vq->part[p].has_qjl) {
                it->accz[p] = malloc((size_t)G * vq->part[p].dim * sizeof(float));
                bad |= !it->accz[p];
            }
        }
    }
    it->logit = malloc((size_t)KV_BLOCK * G * sizeof(float));
    it->w = malloc((size_t)KV_BLOCK * G * sizeof(float));
    it->accw = malloc((size_t)G * dmax * sizeof(float));
    it->m = malloc(G * sizeof(float));
    it->qc = malloc(G * sizeof(float));
    it->lc = malloc(G * sizeof(double));
    it->f = malloc(2 * KV_BLOCK * sizeof(float));
    it->l = malloc(G * sizeof(double));
    size_t rmax = kv->side[0].rec > kv->side[1].rec ? kv->side[0].rec : kv->side[1].rec;
    it->rec = malloc(rmax);
    it->scratch = malloc(dmax + 64);
    it->v = malloc(dmax * sizeof(float));
    bad |= !it->logit || !it->w || !it->f || !it->qc || !it->lc || !it->accw || !it->m || !it->l || !it->rec || !it->scratch || !it->v;
    if (bad) {
        item_free(it);
        return tq_fail(TQ_ERR_NOMEM, "out of memory for attention buffers");
    }
    tq_status st = tq_work_alloc(&it->work, dmax);
    if (st != TQ_OK) {
        item_free(it);
        return st;
    }
    return TQ_OK;
}

/* Prepare head h's G queries (q: G x D floats). */
static tq_status item_set(kv_item *it, uint32_t h, const float *q, float scale) {
    const tq_kv *kv = it->kv;
    const tq_quantizer *kq = kv->side[0].q[h];
    it->h = h;
    it->scale = scale;
    for (uint32_t g = 0; g < it->G; g++) {
        if (it->pq[g] && tq_query_quantizer(it->pq[g]) != kq) {
            tq_query_free(it->pq[g]);
            it->pq[g] = NULL;
        }
        if (!it->pq[g]) TQ_FORWARD(tq_query_create(kq, &it->pq[g]));
        const float *qg = q + (size_t)g * kv->D;
        TQ_FORWARD(tq_query_set(it->pq[g], qg));
        it->qc[g] = 0.0f;
        if (kv->center[0]) {
            const float *c = kv->center[0] + (size_t)h * kv->D;
            double dot = 0.0;
            for (uint32_t j = 0; j < kv->D; j++) dot += (double)qg[j] * c[j];
            it->qc[g] = (float)(scale * dot);
        }
        for (uint32_t p = 0; p < kq->nparts; p++) { /* the scale folded in: the kernels' dots are logits */
            uint32_t dp = kq->part[p].dim;
            const float *r = tq_query_rotated(it->pq[g], p);
            float *o = it->qk[p] + (size_t)g * dp;
            for (uint32_t j = 0; j < dp; j++) o[j] = scale * r[j];
        }
    }
    return TQ_OK;
}

/* The first stored factor of part p of n stored records at codes (stride srec), into out. */
static void load_factors(const kv_side *sd, const uint8_t *codes, size_t n, uint32_t p, float *out) {
    const uint8_t *src = codes + sd->part[p].dst_off;
    if (sd->fsize == 2) {
        tq_kernels()->f16_load(src, sd->srec, n, out);
    } else {
        for (size_t t = 0; t < n; t++) out[t] = tq_get_f32(src + t * sd->srec);
    }
}

/* The three segments of tokens [t0, t1): exact sinks [t0, s1), codes [s1, c1), exact window [c1, t1). */
static void item_segments(const tq_kv *kv, size_t t0, size_t t1, size_t *s1, size_t *c1) {
    size_t a = kv->nsink, b = kv->nsink + kv->ncomp;
    *s1 = t1 < a ? t1 : a;
    if (*s1 < t0) *s1 = t0;
    *c1 = t1 < b ? t1 : b;
    if (*c1 < *s1) *c1 = *s1;
}

/* Exact logits of tokens [a, b) (rows t - base of buf, [*][H][D]) into the block's rows at t - t0. */
static void exact_logits(kv_item *it, const float *q, const float *buf, size_t base, size_t a, size_t b, size_t t0,
                         size_t n) {
    const tq_kv *kv = it->kv;
    const uint32_t D = kv->D;
    for (size_t t = a; t < b; t++) {
        const float *kt = buf + ((t - base) * kv->H + it->h) * D;
        for (uint32_t g = 0; g < it->G; g++) {
            const float *qg = q + (size_t)g * D;
            double s = 0.0;
            for (uint32_t j = 0; j < D; j++) s += (double)qg[j] * kt[j];
            it->logit[(size_t)g * n + (t - t0)] = (float)(it->scale * s);
        }
    }
}

/* Exact values of tokens [a, b), weighted by the block's weights, into accw. */
static void exact_values(kv_item *it, const float *buf, size_t base, size_t a, size_t b, size_t t0, size_t n) {
    const tq_kv *kv = it->kv;
    const uint32_t D = kv->D;
    for (size_t t = a; t < b; t++) {
        const float *vt = buf + ((t - base) * kv->H + it->h) * D;
        for (uint32_t g = 0; g < it->G; g++) {
            float wt = it->logit[(size_t)g * n + (t - t0)], *acc = it->accw + (size_t)g * D;
            for (uint32_t j = 0; j < D; j++) acc[j] += wt * vt[j];
        }
    }
}

/* logit[g * n + (t - t0)] for tokens [t0, t1), n = t1 - t0 <= KV_BLOCK; q: G x D plain queries. */
static void item_logits(kv_item *it, const float *q, size_t t0, size_t t1) {
    const tq_kv *kv = it->kv;
    const kv_side *sd = &kv->side[0];
    const tq_quantizer *kq = sd->q[it->h];
    const uint32_t G = it->G;
    const size_t n = t1 - t0;
    const tq_kernel_table *k = tq_kernels();
    size_t s1, c1;
    item_segments(kv, t0, t1, &s1, &c1);
    exact_logits(it, q, kv->sink[0], 0, t0, s1, t0, n);
    if (s1 < c1) {
        const uint8_t *codes = sd->codes[it->h] + (s1 - kv->nsink) * sd->srec;
        size_t nc = c1 - s1, off = s1 - t0;
        if (sd->fast) {
            tq_kv_part parts[2];
            for (uint32_t p = 0; p < sd->nparts; p++) {
                const tq_part *pt = &kq->part[p];
                load_factors(sd, codes, nc, p, it->f + (size_t)p * KV_BLOCK);
                parts[p] = (tq_kv_part){it->qk[p], pt->cb.centroids, it->f + (size_t)p * KV_BLOCK,
                                        sd->part[p].dst_off + sd->fsize, pt->dim, pt->mse_bits};
            }
            k->kv_logits(parts, sd->nparts, G, codes, sd->srec, nc, it->qc, it->scratch, it->logit + off, n);
        } else {
            for (size_t t = 0; t < nc; t++) {
                load_record(sd, codes + t * sd->srec, it->rec);
                for (uint32_t g = 0; g < G; g++)
                    it->logit[(size_t)g * n + off + t] =
                        (float)(it->scale * tq_query_ip_record(it->pq[g], it->rec, it->scratch, NULL)) + it->qc[g];
            }
        }
    }
    exact_logits(it, q, kv->win[0], kv->nsink + kv->ncomp, c1, t1, t0, n);
}

static void item_reset(kv_item *it) {
    const tq_quantizer *vq = it->kv->side[1].q[it->h];
    for (uint32_t p = 0; p < vq->nparts; p++) {
        size_t n = (size_t)it->G * vq->part[p].dim;
        memset(it->acc[p], 0, n * sizeof(float));
        if (it->accz[p]) memset(it->accz[p], 0, n * sizeof(float));
    }
    memset(it->accw, 0, (size_t)it->G * it->kv->D * sizeof(float));
    for (uint32_t g = 0; g < it->G; g++) {
        it->m[g] = -INFINITY;
        it->l[g] = 0.0;
        it->lc[g] = 0.0;
    }
}

/* Multiply everything accumulated for query g by f. */
static void item_rescale(kv_item *it, uint32_t g, float f) {
    const tq_quantizer *vq = it->kv->side[1].q[it->h];
    for (uint32_t p = 0; p < vq->nparts; p++) {
        uint32_t dp = vq->part[p].dim;
        float *a = it->acc[p] + (size_t)g * dp;
        for (uint32_t j = 0; j < dp; j++) a[j] *= f;
        if (it->accz[p]) {
            float *z = it->accz[p] + (size_t)g * dp;
            for (uint32_t j = 0; j < dp; j++) z[j] *= f;
        }
    }
    float *aw = it->accw + (size_t)g * it->kv->D;
    for (uint32_t j = 0; j < it->kv->D; j++) aw[j] *= f;
    it->lc[g] *= f;
}

/* One block [t0, t1): softmax update and value accumulation. */
static void item_block(kv_item *it, const float *q, size_t t0, size_t t1) {
    const tq_kv *kv = it->kv;
    const uint32_t G = it->G;
    const size_t n = t1 - t0;
    const tq_kernel_table *k = tq_kernels();
    item_logits(it, q, t0, t1);
    for (uint32_t g = 0; g < G; g++) { /* the logits become weights exp(logit - m) */
        double sum = 0.0;
        float rescale = k->softmax_block(it->logit + (size_t)g * n, n, &it->m[g], &sum);
        if (it->l[g] > 0.0 && rescale != 1.0f) item_rescale(it, g, rescale);
        it->l[g] = it->l[g] * rescale + sum;
    }
    const kv_side *sd = &kv->side[1];
    const tq_quantizer *vq = sd->q[it->h];
    size_t s1, c1;
    item_segments(kv, t0, t1, &s1, &c1);
    exact_values(it, kv->sink[1], 0, t0, s1, t0, n);
    if (s1 < c1) {
        const uint8_t *codes = sd->codes[it->h] + (s1 - kv->nsink) * sd->srec;
        size_t nc = c1 - s1, off = s1 - t0;
        if (kv->center[1]) {
            for (uint32_t g = 0; g < G; g++) {
                const float *lg = it->logit + (size_t)g * n + off;
                double sum = 0.0;
                for (size_t t = 0; t < nc; t++) sum += lg[t];
                it->lc[g] += sum;
            }
        }
        if (sd->fast) {
            for (uint32_t p = 0; p < sd->nparts; p++) {
                const tq_part *pt = &vq->part[p];
                load_factors(sd, codes, nc, p, it->f);
                for (uint32_t g = 0; g < G; g++) {
                    const float *lg = it->logit + (size_t)g * n + off;
                    float *wg = it->w + (size_t)g * nc;
                    for (size_t t = 0; t < nc; t++) wg[t] = lg[t] * it->f[t];
                }
                k->kv_accum(it->w, G, pt->cb.centroids, codes + sd->part[p].dst_off + sd->fsize, sd->srec, nc,
                            pt->dim, pt->mse_bits, it->scratch, it->acc[p]);
            }
        } else {
            for (size_t t = 0; t < nc; t++) {
                load_record(sd, codes + t * sd->srec, it->rec);
                for (uint32_t p = 0; p < sd->nparts; p++) {
                    const tq_part *pt = &vq->part[p];
                    uint32_t dp = pt->dim;
                    float zc = 0.0f;
                    tq_part_decode_rotated(vq, p, it->rec, &it->work, it->v, pt->has_qjl ? &zc : NULL);
                    const uint8_t *sg = it->rec + pt->offset + pt->off_sign;
                    for (uint32_t g = 0; g < G; g++) {
                        float wt = it->logit[(size_t)g * n + off + t];
                        float *a = it->acc[p] + (size_t)g * dp;
                        for (uint32_t j = 0; j < dp; j++) a[j] += wt * it->v[j];
                        if (pt->has_qjl) {
                            float wz = wt * zc, *z = it->accz[p] + (size_t)g * dp;
                            for (uint32_t j = 0; j < dp; j++) z[j] += ((sg[j >> 3] >> (j & 7)) & 1u) ? wz : -wz;
                        }
                    }
                }
            }
        }
    }
    exact_values(it, kv->win[1], kv->nsink + kv->ncomp, c1, t1, t0, n);
}

/* out: G x D. */
static void item_finish(kv_item *it, float *out) {
    const tq_kv *kv = it->kv;
    const tq_quantizer *vq = kv->side[1].q[it->h];
    const uint32_t D = kv->D;
    tq_work *w = &it->work;
    for (uint32_t g = 0; g < it->G; g++) {
        float *o = out + (size_t)g * D;
        for (uint32_t p = 0; p < vq->nparts; p++) {
            const tq_part *pt = &vq->part[p];
            uint32_t dp = pt->dim;
            float *a = it->acc[p] + (size_t)g * dp;
            if (pt->has_qjl) {
                tq_part_qjl_transpose(pt, it->accz[p] + (size_t)g * dp, w->proj, w->scratch);
                for (uint32_t j = 0; j < dp; j++) a[j] += w->proj[j];
            }
            tq_rotation_inverse(&pt->rot, a, w->sub, 1, w->scratch);
            tq_part_scatter(vq, p, w->sub, o);
        }
        float inv = (float)(1.0 / it->l[g]);
        const float *aw = it->accw + (size_t)g * D;
        for (uint32_t j = 0; j < D; j++) o[j] = (o[j] + aw[j]) * inv;
        if (kv->center[1]) { /* the compressed tokens' share of the value center */
            const float *c = kv->center[1] + (size_t)it->h * D;
            float share = (float)(it->lc[g] / it->l[g]);
            for (uint32_t j = 0; j < D; j++) o[j] += share * c[j];
        }
    }
}

typedef struct attend_job {
    const tq_kv *kv;
    const float *q;
    size_t nq;
    uint32_t q_heads, G;
    const int64_t *q_pos;
    float scale;
    float *out;
} attend_job;

static tq_status attend_range(void *ctx, size_t begin, size_t end) {
    const attend_job *j = ctx;
    const tq_kv *kv = j->kv;
    kv_item it;
    TQ_FORWARD(item_alloc(&it, kv, j->G));
    tq_status st = TQ_OK;
    for (size_t item = begin; item < end && st == TQ_OK; item++) {
        size_t i = item / kv->H;
        uint32_t h = (uint32_t)(item % kv->H);
        const float *q = j->q + (i * j->q_heads + (size_t)h * j->G) * kv->D;
        size_t limit = j->q_pos ? (size_t)j->q_pos[i] + 1 : kv->length;
        st = item_set(&it, h, q, j->scale);
        if (st != TQ_OK) break;
        item_reset(&it);
        for (size_t t0 = 0; t0 < limit; t0 += KV_BLOCK) {
            size_t t1 = limit - t0 > KV_BLOCK ? t0 + KV_BLOCK : limit;
            item_block(&it, q, t0, t1);
        }
        item_finish(&it, j->out + (i * j->q_heads + (size_t)h * j->G) * kv->D);
    }
    item_free(&it);
    return st;
}

static tq_status check_queries(const tq_kv *kv, const float *q, size_t nq, uint32_t q_heads, float *scale) {
    TQ_RETURN_IF(!kv->built || kv->length == 0, TQ_ERR_STATE, "the cache is empty: append tokens first");
    TQ_RETURN_IF(q_heads == 0 || q_heads % kv->H != 0, TQ_ERR_INVALID_ARG,
                 "q_heads = %u must be a positive multiple of kv_heads = %u", q_heads, kv->H);
    TQ_RETURN_IF(q_heads / kv->H > KV_MAX_GROUP, TQ_ERR_INVALID_ARG,
                 "%u query heads per KV head: at most %u supported", q_heads / kv->H, (unsigned)KV_MAX_GROUP);
    TQ_RETURN_IF(!(isfinite(*scale) && *scale >= 0.0f), TQ_ERR_INVALID_ARG, "scale %g must be finite and >= 0",
                 (double)*scale);
    if (*scale == 0.0f) *scale = (float)(1.0 / sqrt((double)kv->D));
    size_t total;
    TQ_RETURN_IF(!tq_mul_size(nq, (size_t)q_heads * kv->D, &total) || !tq_mul_size(total, sizeof(float), &total),
                 TQ_ERR_SIZE, "nq = %zu is too large", nq);
    return check_finite(q, nq, q_heads, kv->D, "query");
}

static tq_status kv_attend_unlocked(const tq_kv *kv, const float *q, size_t nq, uint32_t q_heads,
                                    const int64_t *q_pos, float scale, float *out) {
    tq_clear_error();
    TQ_RETURN_IF(!kv, TQ_ERR_INVALID_ARG, "cache is NULL");
    if (nq == 0) return TQ_OK;
    TQ_RETURN_IF(!q || !out, TQ_ERR_INVALID_ARG, "queries or output is NULL");
    TQ_FORWARD(check_queries(kv, q, nq, q_heads, &scale));
    if (q_pos) {
        for (size_t i = 0; i < nq; i++)
            TQ_RETURN_IF(q_pos[i] < 0 || (uint64_t)q_pos[i] >= kv->length, TQ_ERR_INVALID_ARG,
                         "q_pos[%zu] = %lld is outside the %zu tokens of the cache", i, (long long)q_pos[i],
                         kv->length);
    }
    attend_job j = {kv, q, nq, q_heads, q_heads / kv->H, q_pos, scale, out};
    return tq_parallel_for(nq * kv->H, 1, attend_range, &j);
}

static tq_status kv_logits_unlocked(const tq_kv *kv, const float *q, uint32_t q_heads, size_t ntok, float scale,
                                    float *logits) {
    tq_clear_error();
    TQ_RETURN_IF(!kv, TQ_ERR_INVALID_ARG, "cache is NULL");
    TQ_RETURN_IF(!q || !logits, TQ_ERR_INVALID_ARG, "query or logits is NULL");
    TQ_FORWARD(check_queries(kv, q, 1, q_heads, &scale));
    TQ_RETURN_IF(ntok > kv->length, TQ_ERR_INVALID_ARG, "ntok = %zu exceeds the %zu tokens of the cache", ntok,
                 kv->length);
    const uint32_t G = q_heads / kv->H;
    kv_item it;
    TQ_FORWARD(item_alloc(&it, kv, G));
    tq_status st = TQ_OK;
    for (uint32_t h = 0; h < kv->H && st == TQ_OK; h++) {
        const float *qh = q + (size_t)h * G * kv->D;
        st = item_set(&it, h, qh, scale);
        for (size_t t0 = 0; t0 < ntok && st == TQ_OK; t0 += KV_BLOCK) {
            size_t t1 = ntok - t0 > KV_BLOCK ? t0 + KV_BLOCK : ntok;
            item_logits(&it, qh, t0, t1);
            for (uint32_t g = 0; g < G; g++)
                memcpy(logits + ((size_t)h * G + g) * ntok + t0, it.logit + (size_t)g * (t1 - t0),
                       (t1 - t0) * sizeof(float));
        }
    }
    item_free(&it);
    return st;
}

/* Side s of tokens [start, start + n) into out ([n][H][D]). */
static tq_status decode_side(const tq_kv *kv, int s, size_t start, size_t n, float *out) {
    const uint32_t H = kv->H, D = kv->D;
    const kv_side *sd = &kv->side[s];
    const size_t tok = (size_t)H * D, c0 = kv->nsink, c1 = kv->nsink + kv->ncomp;
    for (size_t t = start; t < start + n; t++) { /* exact tokens */
        if (t < c0) memcpy(out + (t - start) * tok, kv->sink[s] + t * tok, tok * sizeof(float));
        else if (t >= c1) memcpy(out + (t - start) * tok, kv->win[s] + (t - c1) * tok, tok * sizeof(float));
    }
    size_t a = start > c0 ? start : c0, b = start + n < c1 ? start + n : c1;
    if (a >= b) return TQ_OK;
    size_t m = b - a;
    uint8_t *recs = malloc(m * sd->rec);
    float *tmp = malloc(m * D * sizeof(float));
    tq_status st = recs && tmp ? TQ_OK : tq_fail(TQ_ERR_NOMEM, "out of memory decoding %zu tokens", m);
    for (uint32_t h = 0; h < H && st == TQ_OK; h++) {
        for (size_t i = 0; i < m; i++) load_record(sd, sd->codes[h] + (a - c0 + i) * sd->srec, recs + i * sd->rec);
        st = tq_decode(sd->q[h], recs, m, tmp);
        const float *c = kv->center[s] ? kv->center[s] + (size_t)h * D : NULL;
        for (size_t i = 0; i < m && st == TQ_OK; i++) {
            float *o = out + (a - start + i) * tok + (size_t)h * D;
            for (uint32_t j = 0; j < D; j++) o[j] = c ? tmp[i * D + j] + c[j] : tmp[i * D + j];
        }
    }
    free(recs);
    free(tmp);
    return st;
}

static tq_status kv_decode_unlocked(const tq_kv *kv, size_t start, size_t n, float *keys, float *values) {
    tq_clear_error();
    TQ_RETURN_IF(!kv, TQ_ERR_INVALID_ARG, "cache is NULL");
    TQ_RETURN_IF(start > kv->length || n > kv->length - start, TQ_ERR_INVALID_ARG,
                 "%zu tokens from position %zu are outside the %zu tokens of the cache", n, start, kv->length);
    if (n == 0) return TQ_OK;
    if (keys) TQ_FORWARD(decode_side(kv, 0, start, n, keys));
    if (values) TQ_FORWARD(decode_side(kv, 1, start, n, values));
    return TQ_OK;
}

/* -------------------------------------------------------------- reference */

tq_status tq_attention_f32(const float *keys, const float *values, size_t ntok, uint32_t kv_heads, uint32_t head_dim,
                           const float *q, size_t nq, uint32_t q_heads, const int64_t *q_pos, float scale,
                           float *out) {
    tq_clear_error();
    TQ_RETURN_IF(!keys || !values || !q || !out, TQ_ERR_INVALID_ARG, "NULL argument");
    TQ_RETURN_IF(ntok == 0, TQ_ERR_STATE, "no tokens to attend to");
    TQ_RETURN_IF(kv_heads == 0 || head_dim == 0, TQ_ERR_INVALID_ARG, "kv_heads and head_dim must be >= 1");
    TQ_RETURN_IF(q_heads == 0 || q_heads % kv_heads != 0, TQ_ERR_INVALID_ARG,
                 "q_heads = %u must be a positive multiple of kv_heads = %u", q_heads, kv_heads);
    TQ_RETURN_IF(!(isfinite(scale) && scale >= 0.0f), TQ_ERR_INVALID_ARG, "scale %g must be finite and >= 0",
                 (double)scale);
    size_t total;
    TQ_RETURN_IF(!tq_mul_size(ntok, (size_t)kv_heads * head_dim, &total) ||
                     !tq_mul_size(total, sizeof(float), &total) || !tq_mul_size(ntok, sizeof(double), &total) ||
                     !tq_mul_size(nq, (size_t)q_heads * head_dim, &total) ||
                     !tq_mul_size(total, sizeof(float), &total),
                 TQ_ERR_SIZE, "ntok = %zu tokens or nq = %zu queries is too large", ntok, nq);
    TQ_FORWARD(check_finite(keys, ntok, kv_heads, head_dim, "key"));
    TQ_FORWARD(check_finite(values, ntok, kv_heads, head_dim, "value"));
    TQ_FORWARD(check_finite(q, nq, q_heads, head_dim, "query"));
    if (q_pos) { /* all checked before any output is written */
        for (size_t i = 0; i < nq; i++)
            TQ_RETURN_IF(q_pos[i] < 0 || (uint64_t)q_pos[i] >= ntok, TQ_ERR_INVALID_ARG,
                         "q_pos[%zu] = %lld is outside the %zu tokens", i, (long long)q_pos[i], ntok);
    }
    double sc = scale == 0.0f ? 1.0 / sqrt((double)head_dim) : scale;
    const uint32_t G = q_heads / kv_heads;
    double *p = malloc(ntok * sizeof(double));
    double *acc = malloc(head_dim * sizeof(double));
    if (!p || !acc) {
        free(p);
        free(acc);
        return tq_fail(TQ_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < nq; i++) {
        size_t limit = q_pos ? (size_t)q_pos[i] + 1 : ntok;
        for (uint32_t hq = 0; hq < q_heads; hq++) {
            uint32_t h = hq / G;
            const float *qv = q + (i * q_heads + hq) * head_dim;
            double m = -INFINITY, l = 0.0;
            for (size_t t = 0; t < limit; t++) {
                const float *kt = keys + (t * kv_heads + h) * head_dim;
                double s = 0.0;
                for (uint32_t j = 0; j < head_dim; j++) s += (double)qv[j] * kt[j];
                p[t] = s * sc;
                if (p[t] > m) m = p[t];
            }
            for (uint32_t j = 0; j < head_dim; j++) acc[j] = 0.0;
            for (size_t t = 0; t < limit; t++) {
                double e = exp(p[t] - m);
                l += e;
                const float *vt = values + (t * kv_heads + h) * head_dim;
                for (uint32_t j = 0; j < head_dim; j++) acc[j] += e * vt[j];
            }
            float *o = out + (i * q_heads + hq) * head_dim;
            for (uint32_t j = 0; j < head_dim; j++) o[j] = (float)(acc[j] / l);
        }
    }
    free(p);
    free(acc);
    return TQ_OK;
}

/* ---- the public entry points: the lock around the bodies above ---- */

tq_status tq_kv_memory_usage(const tq_kv *kv, tq_kv_memory *out) {
    if (!kv) return kv_memory_usage_unlocked(kv, out);
    kv_rdlock(kv);
    tq_status s = kv_memory_usage_unlocked(kv, out);
    kv_unlock(kv);
    return s;
}

tq_status tq_kv_append(tq_kv *kv, const float *keys, const float *values, size_t n) {
    if (!kv) return kv_append_unlocked(kv, keys, values, n);
    pthread_rwlock_wrlock(&kv->lock);
    tq_status s = kv_append_unlocked(kv, keys, values, n);
    kv_unlock(kv);
    return s;
}

tq_status tq_kv_attend(const tq_kv *kv, const float *q, size_t nq, uint32_t q_heads, const int64_t *q_pos,
                       float scale, float *out) {
    if (!kv) return kv_attend_unlocked(kv, q, nq, q_heads, q_pos, scale, out);
    kv_rdlock(kv);
    tq_status s = kv_attend_unlocked(kv, q, nq, q_heads, q_pos, scale, out);
    kv_unlock(kv);
    return s;
}

tq_status tq_kv_logits(const tq_kv *kv, const float *q, uint32_t q_heads, size_t ntok, float scale, float *logits) {
    if (!kv) return kv_logits_unlocked(kv, q, q_heads, ntok, scale, logits);
    kv_rdlock(kv);
    tq_status s = kv_logits_unlocked(kv, q, q_heads, ntok, scale, logits);
    kv_unlock(kv);
    return s;
}

tq_status tq_kv_decode(const tq_kv *kv, size_t start, size_t n, float *keys, float *values) {
    if (!kv) return kv_decode_unlocked(kv, start, n, keys, values);
    kv_rdlock(kv);
    tq_status s = kv_decode_unlocked(kv, start, n, keys, values);
    kv_unlock(kv);
    return s;
}
