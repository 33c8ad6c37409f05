/*
 * quantizer.c — TurboQuant-MSE, TurboQuant-PROD, QJL and the uniform
 * baselines behind one tq_quantizer face: config validation, construction,
 * encode, decode, query preparation and scoring straight from codes.
 *
 * Everything happens in the rotated domain. For x with norm s and
 * y = Pi (x / s):
 *   MSE  (Algorithm 1):  idx_j = nearest centroid of y_j;  x~ = scale * Pi^T c[idx]
 *   PROD (Algorithm 2):  idx at b-1 bits; residual e = y - c[idx] (so
 *        r = x - x~_mse = s Pi^T e and gamma = ||r|| = s ||e||); z = sign(S e).
 *        Because S is applied to the rotated residual, the effective projection
 *        is S Pi, which is again i.i.d. Gaussian when S is (Pi orthogonal and
 *        independent of S), so this is Algorithm 2 exactly; the query is
 *        projected the same way: <q, x> ~= s <Pi q, c[idx]> + kappa gamma <S Pi q, z>.
 *   QJL:  PROD without the MSE stage (e = y, gamma = s).
 * kappa makes the sign sketch unbiased: for Gaussian rows E[<s,q> sign<s,r>] =
 * sqrt(2/pi) <q, r/||r||>, so kappa = sqrt(pi/2)/d; for the structured sketch
 * (rows of an orthogonal Hadamard map R, unit norm, treated as uniform on the
 * sphere) E[<u,q> sign<u,r>] = E|u_1| <q, r/||r||> with
 * E|u_1| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)), so kappa = 1/(d E|u_1|).
 * That is exact when R's rows are Haar; for Hadamard rows it is an
 * approximation whose bias the tests measure.
 *
 * The reference (scalar) code here is the specification that any SIMD kernel
 * must reproduce: codes bit-exact, scores within a stated tolerance.
 */
#include "quantizer.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "../core/pack.h"
#include "../core/pool.h"
#include "../core/rng.h"
#include "../kernels/kernels.h"

struct tq_query {
    const tq_quantizer *q;
    double qnorm2;       /* ||q||^2 */
    float *qrot[2];      /* Pi q per part (dim_p) */
    float *qproj[2];     /* S Pi q per part, QJL variants only */
};

/* ------------------------------------------------------------------ config */

void tq_config_init(tq_config *cfg, uint32_t dim, uint32_t bits) {
    if (!cfg) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->dim = dim;
    cfg->bits = bits;
    cfg->variant = TQ_VARIANT_MSE;
    cfg->rotation = TQ_ROTATION_HADAMARD;
    cfg->rounds = 2;
    cfg->qjl = TQ_QJL_DENSE;
    cfg->norm = TQ_NORM_PLAIN;
    cfg->uniform_mode = TQ_UNIFORM_SYMMETRIC;
    cfg->uniform_scope = TQ_UNIFORM_PER_VECTOR;
    cfg->group_size = 32;
}

tq_status tq_config_set_bits(tq_config *cfg, double bits) {
    tq_clear_error();
    TQ_RETURN_IF(!cfg, TQ_ERR_INVALID_ARG, "config is NULL");
    TQ_RETURN_IF(!(bits >= 1.0 && bits <= (double)TQ_MAX_BITS), TQ_ERR_BITS, "bits = %g, must be 1..%u", bits,
                 TQ_MAX_BITS);
    uint32_t whole = (uint32_t)floor(bits);
    double frac = bits - whole;
    if (frac == 0.0) {
        cfg->outlier_channels = NULL;
        cfg->bits = whole;
        cfg->outlier_count = 0;
        cfg->outlier_bits = 0;
        return TQ_OK;
    }
    uint32_t k = (uint32_t)floor(frac * (double)cfg->dim + 0.5);
    TQ_RETURN_IF(k == 0 || k >= cfg->dim, TQ_ERR_BITS,
                 "%g bits at dim %u: %u channels at %u bits is not a split (need 1..dim-1)", bits, cfg->dim, k,
                 whole + 1);
    cfg->outlier_channels = NULL;
    cfg->bits = whole;
    cfg->outlier_count = k;
    cfg->outlier_bits = whole + 1;
    return TQ_OK;
}

static const char *variant_name(tq_variant v) {
    switch (v) {
    case TQ_VARIANT_MSE: return "mse";
    case TQ_VARIANT_PROD: return "prod";
    case TQ_VARIANT_QJL: return "qjl";
    case TQ_VARIANT_UNIFORM: return "uniform";
    }
    return "?";
}

/* Checks that depend on one channel set (the whole vector, or one side of a split). */
static tq_status validate_part(const tq_config *cfg, uint32_t dim, uint32_t bits, const char *what) {
    TQ_RETURN_IF(bits < 1 || bits > TQ_MAX_BITS, TQ_ERR_BITS, "bits = %u for %s, must be 1..%u", bits, what,
                 TQ_MAX_BITS);
    TQ_RETURN_IF(cfg->variant == TQ_VARIANT_QJL && bits != 1, TQ_ERR_BITS,
                 "bits = %u for %s: the qjl variant stores exactly 1 bit per coordinate", bits, what);
    int needs_codebook = (cfg->variant == TQ_VARIANT_MSE) || (cfg->variant == TQ_VARIANT_PROD && bits >= 2);
    TQ_RETURN_IF(needs_codebook && dim < 2, TQ_ERR_DIM,
                 "%s has %u channel(s): the %s codebook needs at least 2 (the sphere law is defined for d >= 2)",
                 what, dim, variant_name(cfg->variant));
    TQ_RETURN_IF(cfg->rotation == TQ_ROTATION_DENSE && dim > TQ_MAX_DENSE_DIM, TQ_ERR_DIM,
                 "%s has %u channels: a dense rotation is limited to %u (use the Hadamard rotation)", what, dim,
                 TQ_MAX_DENSE_DIM);
    int has_qjl = cfg->variant == TQ_VARIANT_PROD || cfg->variant == TQ_VARIANT_QJL;
    TQ_RETURN_IF(has_qjl && cfg->qjl == TQ_QJL_DENSE && dim > TQ_MAX_DENSE_DIM, TQ_ERR_DIM,
                 "%s has %u channels: a dense QJL matrix is limited to %u (use the structured QJL map)", what, dim,
                 TQ_MAX_DENSE_DIM);
    if (cfg->variant == TQ_VARIANT_UNIFORM && cfg->uniform_scope == TQ_UNIFORM_GROUP) {
        TQ_RETURN_IF(cfg->group_size == 0 || dim % cfg->group_size != 0, TQ_ERR_INVALID_ARG,
                     "group_size %u must divide the %u channels of %s", cfg->group_size, dim, what);
    }
    return TQ_OK;
}

tq_status tq_config_validate(const tq_config *cfg) {
    TQ_RETURN_IF(!cfg, TQ_ERR_INVALID_ARG, "config is NULL");
    TQ_RETURN_IF(cfg->dim == 0, TQ_ERR_DIM, "dim must be >= 1");
    TQ_RETURN_IF(cfg->dim > TQ_MAX_DIM, TQ_ERR_DIM, "dim %u exceeds the maximum %u", cfg->dim, TQ_MAX_DIM);
    TQ_RETURN_IF((unsigned)cfg->variant > TQ_VARIANT_UNIFORM, TQ_ERR_INVALID_ARG, "unknown variant %d",
                 (int)cfg->variant);
    TQ_RETURN_IF((unsigned)cfg->rotation > TQ_ROTATION_HADAMARD, TQ_ERR_INVALID_ARG, "unknown rotation %d",
                 (int)cfg->rotation);
    TQ_RETURN_IF((unsigned)cfg->qjl > TQ_QJL_STRUCTURED, TQ_ERR_INVALID_ARG, "unknown qjl kind %d", (int)cfg->qjl);
    TQ_RETURN_IF((unsigned)cfg->norm > TQ_NORM_UNBIASED, TQ_ERR_INVALID_ARG, "unknown norm mode %d",
                 (int)cfg->norm);
    TQ_RETURN_IF((unsigned)cfg->uniform_mode > TQ_UNIFORM_ASYMMETRIC, TQ_ERR_INVALID_ARG,
                 "unknown uniform mode %d", (int)cfg->uniform_mode);
    TQ_RETURN_IF((unsigned)cfg->uniform_scope > TQ_UNIFORM_GROUP, TQ_ERR_INVALID_ARG, "unknown uniform scope %d",
                 (int)cfg->uniform_scope);
    TQ_RETURN_IF(cfg->rounds > TQ_MAX_ROUNDS, TQ_ERR_INVALID_ARG, "rounds = %u, must be 0 (default) .. %u",
                 cfg->rounds, TQ_MAX_ROUNDS);
    TQ_RETURN_IF(cfg->norm != TQ_NORM_PLAIN && cfg->variant != TQ_VARIANT_MSE, TQ_ERR_INVALID_ARG,
                 "norm correction applies to the mse variant only (the %s variant stores plain norms)",
                 variant_name(cfg->variant));
    if (cfg->outlier_count == 0) {
        TQ_RETURN_IF(cfg->outlier_channels != NULL, TQ_ERR_INVALID_ARG,
                     "outlier_channels given but outlier_count is 0");
        return validate_part(cfg, cfg->dim, cfg->bits, "the vector");
    }
    TQ_RETURN_IF(cfg->outlier_count >= cfg->dim, TQ_ERR_INVALID_ARG,
                 "outlier_count %u must be below dim %u (the regular set cannot be empty)", cfg->outlier_count,
                 cfg->dim);
    TQ_FORWARD(validate_part(cfg, cfg->outlier_count, cfg->outlier_bits, "the outlier set"));
    TQ_FORWARD(validate_part(cfg, cfg->dim - cfg->outlier_count, cfg->bits, "the regular set"));
    if (cfg->outlier_channels) {
        /* distinct and in range: a bitmap over dim channels */
        uint8_t *seen = calloc((cfg->dim + 7) / 8, 1);
        TQ_RETURN_IF(!seen, TQ_ERR_NOMEM, "out of memory checking outlier channels");
        for (uint32_t i = 0; i < cfg->outlier_count; i++) {
            uint32_t c = cfg->outlier_channels[i];
            if (c >= cfg->dim || (seen[c / 8] >> (c % 8)) & 1u) {
                free(seen);
                return tq_fail(TQ_ERR_INVALID_ARG, "outlier channel %u (entry %u) is %s", c, i,
                               c >= cfg->dim ? "out of range" : "repeated");
            }
            seen[c / 8] |= (uint8_t)(1u << (c % 8));
        }
        free(seen);
    }
    return TQ_OK;
}

/* ---------------------------------------------------------------- building */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static tq_status dense_alloc(float **m, uint32_t dim) {
    size_t count;
    TQ_RETURN_IF(!tq_mul_size(dim, dim, &count), TQ_ERR_SIZE, "dense matrix size overflows");
    *m = calloc(count, sizeof(float));
    TQ_RETURN_IF(!*m, TQ_ERR_NOMEM, "out of memory for a %u x %u matrix", dim, dim);
    return TQ_OK;
}

static tq_status part_build(tq_quantizer *q, uint32_t p, uint32_t dim, uint32_t bits, int fill_dense) {
    const tq_config *cfg = &q->cfg;
    tq_part *pt = &q->part[p];
    uint64_t rot_stream = TQ_STREAM_ROTATION + (uint64_t)TQ_STREAM_PART_STRIDE * p;
    uint64_t qjl_stream = TQ_STREAM_QJL + (uint64_t)TQ_STREAM_PART_STRIDE * p;
    pt->dim = dim;
    pt->bits = bits;

    if (cfg->rotation == TQ_ROTATION_DENSE && !fill_dense) {
        /* A loader fills the stored matrix; regenerating it is never required. */
        TQ_FORWARD(dense_alloc(&pt->rot.matrix, dim));
        pt->rot.kind = TQ_ROTATION_DENSE;
        pt->rot.dim = dim;
    } else {
        TQ_FORWARD(tq_rotation_init(&pt->rot, cfg->rotation, dim, cfg->rounds, cfg->seed, rot_stream));
    }

    switch (cfg->variant) {
    case TQ_VARIANT_MSE:
        pt->mse_bits = bits;
        pt->nfactors = cfg->norm == TQ_NORM_UNBIASED ? 2 : 1;
        break;
    case TQ_VARIANT_PROD:
        pt->mse_bits = bits - 1;
        pt->has_qjl = 1;
        pt->nfactors = pt->mse_bits ? 2 : 1;
        break;
    case TQ_VARIANT_QJL:
        pt->mse_bits = 0;
        pt->has_qjl = 1;
        pt->nfactors = 1;
        break;
    case TQ_VARIANT_UNIFORM:
        pt->mse_bits = bits;
        if (cfg->uniform_scope == TQ_UNIFORM_PER_VECTOR) {
            pt->nfactors = cfg->uniform_mode == TQ_UNIFORM_ASYMMETRIC ? 2 : 1;
        } else if (cfg->uniform_scope == TQ_UNIFORM_GROUP) {
            size_t per_group = cfg->uniform_mode == TQ_UNIFORM_ASYMMETRIC ? 4 : 2;
            pt->group_bytes = (size_t)(dim / cfg->group_size) * per_group;
        } else {
            pt->ch_lo = calloc(dim, sizeof(float));
            pt->ch_step = calloc(dim, sizeof(float));
            TQ_RETURN_IF(!pt->ch_lo || !pt->ch_step, TQ_ERR_NOMEM, "out of memory for channel ranges");
        }
        break;
    }

    if (pt->mse_bits && cfg->variant != TQ_VARIANT_UNIFORM) {
        const tq_codebook *cb = NULL;
        TQ_FORWARD(tq_codebook_lookup(dim, pt->mse_bits, &cb));
        pt->cb = *cb;
    }

    if (pt->has_qjl) {
        if (cfg->qjl == TQ_QJL_DENSE) {
            TQ_FORWARD(dense_alloc(&pt->qjl_matrix, dim));
            if (fill_dense) {
                tq_rng r;
                tq_rng_init(&r, cfg->seed, qjl_stream);
                size_t count = (size_t)dim * dim;
                for (size_t i = 0; i < count; i++) pt->qjl_matrix[i] = (float)tq_rng_gauss(&r);
            }
            pt->qjl_scale = sqrt(TQ_PI / 2.0) / dim;
        } else {
            TQ_FORWARD(tq_rotation_init(&pt->qjl_rot, TQ_ROTATION_HADAMARD, dim, cfg->rounds, cfg->seed,
                                        qjl_stream));
            pt->qjl_scale = 1.0 / (dim * tq_sphere_abs_mean(dim));
        }
    }

    pt->off_group = (size_t)pt->nfactors * 4;
    pt->off_idx = pt->off_group + pt->group_bytes;
    pt->idx_bytes = pt->mse_bits ? tq_pack_size(dim, pt->mse_bits) : 0;
    pt->off_sign = pt->off_idx + pt->idx_bytes;
    pt->sign_bytes = pt->has_qjl ? (dim + 7) / 8 : 0;
    pt->code_size = pt->off_sign + pt->sign_bytes;
    return TQ_OK;
}

tq_status tq_quantizer_build(const tq_config *cfg, int fill_dense, tq_quantizer **out) {
    TQ_RETURN_IF(!out, TQ_ERR_INVALID_ARG, "output pointer is NULL");
    *out = NULL;
    TQ_FORWARD(tq_config_validate(cfg));
    tq_quantizer *q = calloc(1, sizeof *q);
    TQ_RETURN_IF(!q, TQ_ERR_NOMEM, "out of memory for the quantizer");
    q->cfg = *cfg;
    if (q->cfg.rounds == 0) q->cfg.rounds = 2;
    if (q->cfg.outlier_count == 0) q->cfg.outlier_bits = 0; /* canonical: no split, no split bits */
    q->cfg.outlier_channels = NULL;
    tq_status s = TQ_OK;

    if (cfg->outlier_count == 0) {
        q->nparts = 1;
        s = part_build(q, 0, cfg->dim, cfg->bits, fill_dense);
    } else {
        uint32_t k = cfg->outlier_count, rest = cfg->dim - k;
        q->nparts = 2;
        q->outliers = malloc((size_t)k * sizeof(uint32_t));
        q->channels[0] = malloc((size_t)k * sizeof(uint32_t));
        q->channels[1] = malloc((size_t)rest * sizeof(uint32_t));
        if (!q->outliers || !q->channels[0] || !q->channels[1]) {
            s = tq_fail(TQ_ERR_NOMEM, "out of memory for channel lists");
        } else {
            for (uint32_t i = 0; i < k; i++) q->outliers[i] = cfg->outlier_channels ? cfg->outlier_channels[i] : i;
            qsort(q->outliers, k, sizeof(uint32_t), cmp_u32);
            memcpy(q->channels[0], q->outliers, (size_t)k * sizeof(uint32_t));
            for (uint32_t c = 0, i = 0, r = 0; c < cfg->dim; c++) {
                if (i < k && q->outliers[i] == c) i++;
                else q->channels[1][r++] = c;
            }
            q->cfg.outlier_channels = q->outliers;
            s = part_build(q, 0, k, cfg->outlier_bits, fill_dense);
            if (s == TQ_OK) s = part_build(q, 1, rest, cfg->bits, fill_dense);
        }
    }
    if (s != TQ_OK) {
        tq_quantizer_free(q);
        return s;
    }
    q->part[0].offset = 0;
    q->code_size = q->part[0].code_size;
    if (q->nparts == 2) {
        q->part[1].offset = q->part[0].code_size;
        q->code_size += q->part[1].code_size;
    }
    *out = q;
    return TQ_OK;
}

tq_status tq_quantizer_create(const tq_config *cfg, tq_quantizer **out) {
    tq_clear_error();
    return tq_quantizer_build(cfg, 1, out);
}

void tq_quantizer_free(tq_quantizer *q) {
    if (!q) return;
    for (int p = 0; p < 2; p++) {
        tq_part *pt = &q->part[p];
        tq_rotation_release(&pt->rot);
        tq_rotation_release(&pt->qjl_rot);
        free(pt->qjl_matrix);
        free(pt->ch_lo);
        free(pt->ch_step);
        free(q->channels[p]);
    }
    free(q->outliers);
    free(q);
}

tq_status tq_quantizer_get_config(const tq_quantizer *q, tq_config *out) {
    TQ_RETURN_IF(!q || !out, TQ_ERR_INVALID_ARG, "NULL argument");
    *out = q->cfg;
    return TQ_OK;
}

size_t tq_quantizer_dim(const tq_quantizer *q) { return q ? q->cfg.dim : 0; }
size_t tq_quantizer_code_size(const tq_quantizer *q) { return q ? q->code_size : 0; }
double tq_quantizer_bits_per_value(const tq_quantizer *q) {
    return q ? (double)q->code_size * 8.0 / (double)q->cfg.dim : 0.0;
}

/* ----------------------------------------------------------- shared pieces */

/* Copy part p's channels of x (dim floats) into sub (part dim floats). */
void tq_part_gather(const tq_quantizer *q, uint32_t p, const float *x, float *sub) {
    const tq_part *pt = &q->part[p];
    if (q->nparts == 1) {
        memcpy(sub, x, (size_t)pt->dim * sizeof(float));
    } else {
        const uint32_t *ch = q->channels[p];
        for (uint32_t j = 0; j < pt->dim; j++) sub[j] = x[ch[j]];
    }
}

void tq_part_scatter(const tq_quantizer *q, uint32_t p, const float *sub, float *x) {
    const tq_part *pt = &q->part[p];
    if (q->nparts == 1) {
        memcpy(x, sub, (size_t)pt->dim * sizeof(float));
    } else {
        const uint32_t *ch = q->channels[p];
        for (uint32_t j = 0; j < pt->dim; j++) x[ch[j]] = sub[j];
    }
}

/*
 * Every value finite and every row's norm representable in float32. One scan
 * per row of bit patterns (the absmax_bits kernel): an all-ones
 * exponent is NaN or Inf; a magnitude >= 2^120 is the only way a row of
 * <= 65536 values can have a norm above FLT_MAX (65536^(1/2) * 2^120 < 2^128),
 * and only such rows get the exact check. Returns the row's largest magnitude
 * bits through *maxbits (for the factor check of tq_encode_check).
 */
static tq_status check_row(const float *row, uint32_t dim, const char *what, size_t i, uint32_t *maxbits) {
    const uint32_t exp_all = 0x7f800000u, big = 0x7b800000u; /* 2^120 */
    uint32_t m = tq_kernels()->absmax_bits(row, dim);
    *maxbits = m;
    if (m >= exp_all) {
        for (uint32_t j = 0; j < dim; j++)
            if (!isfinite(row[j]))
                return tq_fail(TQ_ERR_NONFINITE, "%s row %zu channel %u is %s", what, i, j,
                               isnan(row[j]) ? "NaN" : "Inf");
    }
    if (m >= big) {
        double ss = 0.0;
        for (uint32_t j = 0; j < dim; j++) ss += (double)row[j] * row[j];
        TQ_RETURN_IF(sqrt(ss) > FLT_MAX, TQ_ERR_NONFINITE, "%s row %zu: its norm overflows float32", what, i);
    }
    return TQ_OK;
}

static tq_status check_rows(const float *x, size_t n, uint32_t dim, const char *what) {
    uint32_t m;
    for (size_t i = 0; i < n; i++) TQ_FORWARD(check_row(x + i * dim, dim, what, i, &m));
    return TQ_OK;
}

/* S v (dense Gaussian) or R v (structured), v in the rotated domain. */
static void qjl_project(const tq_part *pt, const float *v, float *out, float *scratch) {
    if (pt->qjl_matrix) {
        /* the dense-rotation row kernel: same order on every ISA, so the sign bits are too */
        tq_kernels()->dense_forward(pt->qjl_matrix, pt->dim, v, out);
    } else {
        tq_rotation_forward(&pt->qjl_rot, v, out, 1, scratch);
    }
}

/* S^T z or R^T z for z in {-1,+1}^dim. */
void tq_part_qjl_transpose(const tq_part *pt, const float *z, float *out, float *scratch) {
    if (pt->qjl_matrix) {
        for (uint32_t j = 0; j < pt->dim; j++) out[j] = 0.0f;
        double *acc = (double *)scratch; /* caller gives 2*dim floats = dim doubles */
        for (uint32_t j = 0; j < pt->dim; j++) acc[j] = 0.0;
        for (uint32_t i = 0; i < pt->dim; i++) {
            const float *row = pt->qjl_matrix + (size_t)i * pt->dim;
            for (uint32_t j = 0; j < pt->dim; j++) acc[j] += (double)row[j] * z[i];
        }
        for (uint32_t j = 0; j < pt->dim; j++) out[j] = (float)acc[j];
    } else {
        tq_rotation_inverse(&pt->qjl_rot, z, out, 1, scratch);
    }
}

/* The uniform grid of one value: level k -> lo + step*k; index = round((v - lo) / step). */
static uint8_t uniform_index(float v, float lo, float step, uint32_t levels) {
    if (!(step > 0.0f)) return 0;
    float t = floorf((v - lo) / step + 0.5f);
    if (t < 0.0f) t = 0.0f;
    if (t > (float)(levels - 1)) t = (float)(levels - 1);
    return (uint8_t)t;
}

/* Range of v[0..len) as (lo, step) for `levels` levels. */
static void uniform_range(const float *v, uint32_t len, tq_uniform_mode mode, uint32_t levels, float *lo,
                          float *step) {
    float mn = v[0], mx = v[0];
    for (uint32_t j = 1; j < len; j++) {
        if (v[j] < mn) mn = v[j];
        if (v[j] > mx) mx = v[j];
    }
    if (mode == TQ_UNIFORM_SYMMETRIC) {
        float m = fmaxf(fabsf(mn), fabsf(mx));
        *step = (float)(2.0 * m / (levels - 1));
        *lo = -0.5f * (float)(levels - 1) * *step;
    } else {
        *lo = mn;
        *step = (float)(((double)mx - mn) / (levels - 1));
    }
}

/* Channels that share one (lo, step): the group size, or the whole part. */
static uint32_t uniform_group_len(const tq_config *cfg, const tq_part *pt) {
    return cfg->uniform_scope == TQ_UNIFORM_GROUP ? cfg->group_size : pt->dim;
}

/* The stored (lo, step) of group `group` of a PER_VECTOR or GROUP record. */
static void uniform_factors(const tq_config *cfg, const tq_part *pt, const uint8_t *rec, uint32_t group,
                            uint32_t levels, float *lo, float *step) {
    int sym = cfg->uniform_mode == TQ_UNIFORM_SYMMETRIC;
    if (cfg->uniform_scope == TQ_UNIFORM_PER_VECTOR) {
        *lo = sym ? 0.0f : tq_get_f32(rec);
        *step = tq_get_f32(rec + (sym ? 0 : 4));
    } else {
        const uint8_t *gp = rec + pt->off_group + (size_t)group * (sym ? 2 : 4);
        *lo = sym ? 0.0f : tq_f16_to_f32(tq_get_u16(gp));
        *step = tq_f16_to_f32(tq_get_u16(gp + (sym ? 0 : 2)));
    }
    if (sym) *lo = -0.5f * (float)(levels - 1) * *step;
}

/* ------------------------------------------------------------------ encode */

tq_status tq_work_alloc(tq_work *w, uint32_t dim) {
    memset(w, 0, sizeof *w);
    size_t d = dim;
    w->sub = malloc(d * sizeof(float));
    w->y = malloc(d * sizeof(float));
    w->e = malloc(d * sizeof(float));
    w->proj = malloc(d * sizeof(float));
    w->scratch = malloc(2 * d * sizeof(float) + 16);
    w->idx = malloc(d);
    if (!w->sub || !w->y || !w->e || !w->proj || !w->scratch || !w->idx) {
        tq_work_free(w);
        memset(w, 0, sizeof *w);
        return tq_fail(TQ_ERR_NOMEM, "out of memory for %u-dimensional work buffers", dim);
    }
    return TQ_OK;
}

void tq_work_free(tq_work *w) {
    free(w->sub); free(w->y); free(w->e); free(w->proj); free(w->scratch); free(w->idx);
}

static tq_status encode_uniform(const tq_quantizer *q, const tq_part *pt, tq_work *w, uint8_t *rec) {
    const tq_config *cfg = &q->cfg;
    uint32_t levels = 1u << pt->mse_bits, d = pt->dim;
    float *v = w->y; /* rotated values (not normalized) */
    if (cfg->uniform_scope == TQ_UNIFORM_PER_VECTOR) {
        float lo, step;
        uniform_range(v, d, cfg->uniform_mode, levels, &lo, &step);
        /* decode computes lo + step * k in float: the top level must fit too */
        TQ_RETURN_IF(!isfinite(lo) || !isfinite(step * (float)(levels - 1)), TQ_ERR_NONFINITE,
                     "its range (step %.3g) overflows float32", (double)step);
        if (cfg->uniform_mode == TQ_UNIFORM_SYMMETRIC) {
            tq_put_f32(rec, step);
        } else {
            tq_put_f32(rec, lo);
            tq_put_f32(rec + 4, step);
        }
        for (uint32_t j = 0; j < d; j++) w->idx[j] = uniform_index(v[j], lo, step, levels);
    } else if (cfg->uniform_scope == TQ_UNIFORM_GROUP) {
        uint32_t g = cfg->group_size;
        uint8_t *gp = rec + pt->off_group;
        for (uint32_t s = 0; s < d; s += g) {
            float lo, step;
            uniform_range(v + s, g, cfg->uniform_mode, levels, &lo, &step);
            /* quantize against the factors as stored (fp16), so decode agrees */
            uint16_t hs = tq_f32_to_f16(step);
            float step16 = tq_f16_to_f32(hs);
            TQ_RETURN_IF(!isfinite(step16), TQ_ERR_NONFINITE,
                         "group range %g exceeds the fp16 range of group factors", (double)step);
            float lo16;
            if (cfg->uniform_mode == TQ_UNIFORM_SYMMETRIC) {
                tq_put_u16(gp, hs);
                gp += 2;
                lo16 = -0.5f * (float)(levels - 1) * step16;
            } else {
                uint16_t hl = tq_f32_to_f16(lo);
                lo16 = tq_f16_to_f32(hl);
                TQ_RETURN_IF(!isfinite(lo16), TQ_ERR_NONFINITE,
                             "group minimum %g exceeds the fp16 range of group factors", (double)lo);
                tq_put_u16(gp, hl);
                tq_put_u16(gp + 2, hs);
                gp += 4;
            }
            for (uint32_t j = s; j < s + g; j++) w->idx[j] = uniform_index(v[j], lo16, step16, levels);
        }
    } else {
        for (uint32_t j = 0; j < d; j++) w->idx[j] = uniform_index(v[j], pt->ch_lo[j], pt->ch_step[j], levels);
    }
    tq_pack(w->idx, d, pt->mse_bits, rec + pt->off_idx);
    return TQ_OK;
}

/* An MSE record's factors from ||x|| and the dot its norm mode needs: ||c[idx]||^2 (UNIT), <y, c[idx]>
 * (UNBIASED; ||x|| is stored too), none (PLAIN). */
static tq_status mse_factors(const tq_quantizer *q, double norm, double dot, uint8_t *rec) {
    double scale = norm;
    if (q->cfg.norm == TQ_NORM_UNIT) scale = norm / sqrt(dot);
    if (q->cfg.norm == TQ_NORM_UNBIASED) {
        scale = norm / dot;
        tq_put_f32(rec + 4, (float)norm);
    }
    /* ||x|| fits float32 (check_rows), but scale = ||x|| / ||c[idx]|| or ||x|| / <y, c[idx]> may not */
    TQ_RETURN_IF(!isfinite((float)scale), TQ_ERR_NONFINITE, "its scale %.3g (norm %.3g) overflows float32", scale,
                 norm);
    tq_put_f32(rec, (float)scale);
    return TQ_OK;
}

/* Part p of row x into its record; idx_out (NULL: none) receives the indices unpacked instead of their packed
 * copy in the record (MSE only: the caller checked). */
static tq_status encode_part(const tq_quantizer *q, uint32_t p, const float *x, tq_work *w, uint8_t *rec,
                             uint8_t *idx_out) {
    const tq_part *pt = &q->part[p];
    uint32_t d = pt->dim;
    rec += pt->offset;
    tq_part_gather(q, p, x, w->sub);

    if (q->cfg.variant == TQ_VARIANT_UNIFORM) {
        tq_rotation_forward(&pt->rot, w->sub, w->y, 1, w->scratch);
        return encode_uniform(q, pt, w, rec);
    }

    const tq_kernel_table *k = tq_kernels();
    double norm = sqrt(k->dot_f64(w->sub, w->sub, d));
    if (norm == 0.0) { /* zero vector: all factors 0, decodes to 0 (documented in tq.h) */
        memset(rec, 0, pt->code_size);
        if (idx_out) memset(idx_out, 0, d); /* the indices of the zero record */
        return TQ_OK;
    }
    k->div_f32(w->sub, norm, d, w->sub);
    tq_rotation_forward(&pt->rot, w->sub, w->y, 1, w->scratch);

    const float *e = w->y; /* residual in the rotated unit domain */
    if (pt->mse_bits) {
        const tq_codebook *cb = &pt->cb;
        uint8_t *idx = idx_out ? idx_out : w->idx;
        k->nearest(cb->bounds, cb->levels, w->y, d, idx);
        if (!idx_out) tq_pack(idx, d, pt->mse_bits, rec + pt->off_idx);
        if (q->cfg.variant == TQ_VARIANT_MSE) {
            double dot = 0.0;
            if (q->cfg.norm != TQ_NORM_PLAIN) {
                k->lookup(cb->centroids, idx, d, w->e); /* c[idx] */
                dot = q->cfg.norm == TQ_NORM_UNIT ? k->dot_f64(w->e, w->e, d) : k->dot_f64(w->y, w->e, d);
            }
            return mse_factors(q, norm, dot, rec);
        }
        k->lookup(cb->centroids, w->idx, d, w->e);
        for (uint32_t j = 0; j < d; j++) w->e[j] = w->y[j] - w->e[j];
        e = w->e;
    }

    /* PROD / QJL: gamma = ||x|| * ||e||, z = sign(S e) */
    double gamma = norm * sqrt(k->dot_f64(e, e, d));
    TQ_RETURN_IF(!isfinite((float)gamma), TQ_ERR_NONFINITE, "its residual norm %.3g overflows float32", gamma);
    if (pt->mse_bits) {
        tq_put_f32(rec, (float)norm);
        tq_put_f32(rec + 4, (float)gamma);
    } else {
        tq_put_f32(rec, (float)gamma);
    }
    qjl_project(pt, e, w->proj, w->scratch);
    uint8_t *sg = rec + pt->off_sign;
    memset(sg, 0, pt->sign_bytes);
    for (uint32_t i = 0; i < d; i++) {
        if (w->proj[i] >= 0.0f) sg[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    return TQ_OK;
}

uint32_t tq_quantizer_max_part_dim(const tq_quantizer *q) {
    uint32_t m = q->part[0].dim;
    if (q->nparts == 2 && q->part[1].dim > m) m = q->part[1].dim;
    return m;
}

/* Arguments of a batch of n vectors and their n records. */
static tq_status check_batch(const tq_quantizer *q, size_t n, const float *vectors, const uint8_t *codes) {
    TQ_RETURN_IF(!vectors || !codes, TQ_ERR_INVALID_ARG, "vector or code buffer is NULL");
    size_t total;
    TQ_RETURN_IF(!tq_mul_size(n, q->cfg.dim, &total) || !tq_mul_size(total, sizeof(float), &total) ||
                     !tq_mul_size(n, q->code_size, &total),
                 TQ_ERR_SIZE, "n = %zu is too large", n);
    return TQ_OK;
}

/* Batch work is cut into chunks of at least this many coordinates, so a
 * chunk costs far more than handing it to a thread. */
#define TQ_MIN_CHUNK_COORDS 32768u

static size_t min_chunk(const tq_quantizer *q) {
    size_t c = TQ_MIN_CHUNK_COORDS / q->cfg.dim;
    return c ? c : 1;
}

typedef struct batch {
    const tq_quantizer *q;
    const tq_query *pq;
    tq_metric metric;
    const float *x;
    float *out;
    const uint8_t *codes_in;
    uint8_t *codes_out;
} batch;

/*
 * The encode failures finite input can still meet: a factor beyond its storage type. A UNIFORM GROUP range
 * beyond the fp16 of the group factors; or, for rows whose norm fits float32, a per-vector factor that
 * does not: the UNIT and UNBIASED scales divide the norm by ||c[idx]|| or <y, c[idx]> (small without a
 * rotation), a uniform range or PROD gamma can exceed the norm, and the decoded vector can be longer than
 * x (outer centroids, the QJL term). They are found before anything is written, so a failed batch leaves
 * the output untouched (as for NaN) and the message names the row. Only rows that could fail are tried,
 * each encoded once into a scratch record: norm > 16384 for GROUP (below, rotations being orthonormal,
 * every rotated value and every group's lo and step (<= 2 max|v|) stay far inside fp16), norm > 2^64
 * otherwise (the smallest |centroid| of any codebook is far above 2^-60).
 */
typedef struct factor_check {
    int have_w;
    tq_work w;
    uint8_t *rec;
    float *out;
} factor_check;

static tq_status check_row_factors(const tq_quantizer *q, const float *row, double limit2, factor_check *fc) {
    const uint32_t dim = q->cfg.dim;
    double ss = 0.0;
    for (uint32_t j = 0; j < dim; j++) ss += (double)row[j] * row[j];
    if (ss <= limit2) return TQ_OK;
    if (!fc->have_w) {
        TQ_FORWARD(tq_work_alloc(&fc->w, tq_quantizer_max_part_dim(q)));
        fc->have_w = 1;
        fc->rec = malloc(q->code_size);
        fc->out = malloc(dim * sizeof(float));
        TQ_RETURN_IF(!fc->rec || !fc->out, TQ_ERR_NOMEM, "out of memory");
    }
    for (uint32_t p = 0; p < q->nparts; p++) TQ_FORWARD(encode_part(q, p, row, &fc->w, fc->rec, NULL));
    /* and its reconstruction must fit float32 too: ||x~|| can exceed ||x|| (outer centroids, QJL term) */
    TQ_FORWARD(tq_decode(q, fc->rec, 1, fc->out));
    for (uint32_t j = 0; j < dim; j++)
        TQ_RETURN_IF(!isfinite(fc->out[j]), TQ_ERR_NONFINITE, "its reconstruction overflows float32 (channel %u)", j);
    return TQ_OK;
}

tq_status tq_encode_check(const tq_quantizer *q, const float *x, size_t n, const char *what, size_t row0) {
    const int group = q->cfg.variant == TQ_VARIANT_UNIFORM && q->cfg.uniform_scope == TQ_UNIFORM_GROUP;
    const double limit2 = group ? 16384.0 * 16384.0 : 0x1p128;
    const uint32_t dim = q->cfg.dim;
    /* a row whose every |x_j| <= sqrt(limit2 / dim) has norm^2 <= limit2 */
    const uint32_t elem = tq_f32_bits((float)sqrt(limit2 / dim));
    factor_check fc = {.have_w = 0, .rec = NULL, .out = NULL};
    tq_status s = TQ_OK;
    for (size_t i = 0; i < n && s == TQ_OK; i++) {
        const float *row = x + i * dim;
        uint32_t m;
        s = check_row(row, dim, what, row0 + i, &m);
        if (s == TQ_OK && m > elem) {
            s = check_row_factors(q, row, limit2, &fc);
            if (s != TQ_OK) s = tq_fail(s, "%s row %zu: %s", what, row0 + i, tq_last_error());
        }
    }
    if (fc.have_w) tq_work_free(&fc.w);
    free(fc.rec);
    free(fc.out);
    return s;
}

/*
 * Four rows of a single-part MSE quantizer, exactly as encode_part does them one by one, but with the dot
 * products of the four (the norms, then <y, c[idx]> or ||c[idx]||^2) computed together: each dot_f64 is a chain
 * of dependent additions, and four chains side by side run in about the time of one.
 */
static tq_status encode_mse_x4(const tq_quantizer *q, const float *x, tq_work w[4], uint8_t *codes, uint8_t *idx) {
    const tq_part *pt = &q->part[0];
    const tq_codebook *cb = &pt->cb;
    const uint32_t d = pt->dim;
    const tq_kernel_table *k = tq_kernels();
    const float *a[4], *b[4];
    double norm[4], dot[4] = {0.0, 0.0, 0.0, 0.0};
    for (int r = 0; r < 4; r++) a[r] = b[r] = x + (size_t)r * d; /* kept for a zero row: its dot is not used */
    k->dot_f64_x4(a, b, d, norm);
    for (int r = 0; r < 4; r++) {
        norm[r] = sqrt(norm[r]);
        uint8_t *rec = codes + r * q->code_size, *ix = idx ? idx + (size_t)r * d : w[r].idx;
        if (norm[r] == 0.0) {
            memset(rec, 0, pt->code_size);
            memset(ix, 0, d);
            continue;
        }
        k->div_f32(x + (size_t)r * d, norm[r], d, w[r].sub);
        tq_rotation_forward(&pt->rot, w[r].sub, w[r].y, 1, w[r].scratch);
        k->nearest(cb->bounds, cb->levels, w[r].y, d, ix);
        if (!idx) tq_pack(ix, d, pt->mse_bits, rec + pt->off_idx);
        if (q->cfg.norm != TQ_NORM_PLAIN) {
            k->lookup(cb->centroids, ix, d, w[r].e);
            a[r] = q->cfg.norm == TQ_NORM_UNIT ? w[r].e : w[r].y;
            b[r] = w[r].e;
        }
    }
    if (q->cfg.norm != TQ_NORM_PLAIN) k->dot_f64_x4(a, b, d, dot);
    for (int r = 0; r < 4; r++)
        if (norm[r] != 0.0) TQ_FORWARD(mse_factors(q, norm[r], dot[r], codes + r * q->code_size));
    return TQ_OK;
}

tq_status tq_encode_rows(const tq_quantizer *q, const float *x, size_t n, uint8_t *codes, uint8_t *idx) {
    const int mse1 = q->nparts == 1 && q->cfg.variant == TQ_VARIANT_MSE && q->part[0].mse_bits;
    TQ_RETURN_IF(idx && !mse1, TQ_ERR_INVALID_ARG, "unpacked indices are for single-part MSE quantizers");
    tq_work w[4];
    int nw = 0;
    tq_status s = TQ_OK;
    for (; nw < (mse1 && n >= 4 ? 4 : 1) && s == TQ_OK; nw++) s = tq_work_alloc(&w[nw], tq_quantizer_max_part_dim(q));
    if (s != TQ_OK) nw--; /* the failed one freed its own buffers */
    const uint32_t dim = q->cfg.dim;
    size_t i = 0;
    if (nw == 4)
        for (; i + 4 <= n && s == TQ_OK; i += 4)
            s = encode_mse_x4(q, x + i * dim, w, codes + i * q->code_size, idx ? idx + i * dim : NULL);
    for (; i < n && s == TQ_OK; i++) {
        for (uint32_t p = 0; p < q->nparts && s == TQ_OK; p++)
            s = encode_part(q, p, x + i * dim, &w[0], codes + i * q->code_size, idx ? idx + i * dim : NULL);
    }
    for (int t = 0; t < nw; t++) tq_work_free(&w[t]);
    return s;
}

static tq_status encode_range(void *ctx, size_t begin, size_t end) {
    const batch *b = ctx;
    const tq_quantizer *q = b->q;
    return tq_encode_rows(q, b->x + begin * q->cfg.dim, end - begin, b->codes_out + begin * q->code_size, NULL);
}

tq_status tq_encode(const tq_quantizer *q, const float *x, size_t n, uint8_t *codes) {
    tq_clear_error();
    TQ_RETURN_IF(!q, TQ_ERR_INVALID_ARG, "quantizer is NULL");
    if (n == 0) return TQ_OK;
    TQ_FORWARD(check_batch(q, n, x, codes));
    TQ_RETURN_IF(q->cfg.variant == TQ_VARIANT_UNIFORM && q->cfg.uniform_scope == TQ_UNIFORM_PER_CHANNEL &&
                     !q->calibrated,
                 TQ_ERR_STATE, "per-channel uniform quantizer is not calibrated: call tq_quantizer_calibrate");
    TQ_FORWARD(tq_encode_check(q, x, n, "input", 0));
    batch b = {q, NULL, TQ_METRIC_IP, x, NULL, NULL, codes};
    return tq_parallel_for(n, min_chunk(q), encode_range, &b);
}

/* ------------------------------------------------------------------ decode */

void tq_part_decode_rotated(const tq_quantizer *q, uint32_t p, const uint8_t *rec, tq_work *w, float *v,
                            float *zcoef) {
    const tq_part *pt = &q->part[p];
    const tq_config *cfg = &q->cfg;
    uint32_t d = pt->dim;
    rec += pt->offset;

    if (cfg->variant == TQ_VARIANT_UNIFORM) {
        uint32_t levels = 1u << pt->mse_bits;
        tq_unpack(rec + pt->off_idx, d, pt->mse_bits, w->idx);
        if (cfg->uniform_scope == TQ_UNIFORM_PER_CHANNEL) {
            for (uint32_t j = 0; j < d; j++) v[j] = pt->ch_lo[j] + pt->ch_step[j] * (float)w->idx[j];
        } else {
            uint32_t g = uniform_group_len(cfg, pt);
            for (uint32_t s = 0; s < d; s += g) {
                float lo, step;
                uniform_factors(cfg, pt, rec, s / g, levels, &lo, &step);
                for (uint32_t j = s; j < s + g; j++) v[j] = lo + step * (float)w->idx[j];
            }
        }
        return;
    }
    float scale = tq_get_f32(rec); /* MSE: scale; PROD: norm; QJL: gamma */
    for (uint32_t j = 0; j < d; j++) v[j] = 0.0f;
    if (pt->mse_bits) {
        tq_unpack(rec + pt->off_idx, d, pt->mse_bits, w->idx);
        for (uint32_t j = 0; j < d; j++) v[j] = scale * pt->cb.centroids[w->idx[j]];
    }
    if (pt->has_qjl) {
        float gamma = pt->mse_bits ? tq_get_f32(rec + 4) : scale;
        float k = (float)(pt->qjl_scale * gamma);
        if (zcoef) {
            *zcoef = k;
            return;
        }
        const uint8_t *sg = rec + pt->off_sign;
        for (uint32_t i = 0; i < d; i++) w->e[i] = ((sg[i / 8] >> (i % 8)) & 1u) ? 1.0f : -1.0f;
        tq_part_qjl_transpose(pt, w->e, w->proj, w->scratch);
        for (uint32_t j = 0; j < d; j++) v[j] += k * w->proj[j];
    }
}

static void decode_part(const tq_quantizer *q, uint32_t p, const uint8_t *rec, tq_work *w, float *out) {
    const tq_part *pt = &q->part[p];
    float *v = w->y; /* rotated-domain reconstruction */
    tq_part_decode_rotated(q, p, rec, w, v, NULL);
    tq_rotation_inverse(&pt->rot, v, w->sub, 1, w->scratch);
    tq_part_scatter(q, p, w->sub, out);
}

static tq_status decode_range(void *ctx, size_t begin, size_t end) {
    const batch *b = ctx;
    const tq_quantizer *q = b->q;
    tq_work w;
    TQ_FORWARD(tq_work_alloc(&w, tq_quantizer_max_part_dim(q)));
    for (size_t i = begin; i < end; i++)
        for (uint32_t p = 0; p < q->nparts; p++)
            decode_part(q, p, b->codes_in + i * q->code_size, &w, b->out + i * q->cfg.dim);
    tq_work_free(&w);
    return TQ_OK;
}

tq_status tq_decode(const tq_quantizer *q, const uint8_t *codes, size_t n, float *out) {
    tq_clear_error();
    TQ_RETURN_IF(!q, TQ_ERR_INVALID_ARG, "quantizer is NULL");
    if (n == 0) return TQ_OK;
    TQ_FORWARD(check_batch(q, n, out, codes));
    batch b = {q, NULL, TQ_METRIC_IP, NULL, out, codes, NULL};
    return tq_parallel_for(n, min_chunk(q), decode_range, &b);
}

/* -------------------------------------------------------------- calibrate */

tq_status tq_quantizer_calibrate(tq_quantizer *q, const float *x, size_t n) {
    tq_clear_error();
    TQ_RETURN_IF(!q, TQ_ERR_INVALID_ARG, "quantizer is NULL");
    TQ_RETURN_IF(q->cfg.variant != TQ_VARIANT_UNIFORM || q->cfg.uniform_scope != TQ_UNIFORM_PER_CHANNEL,
                 TQ_ERR_STATE, "only the per-channel uniform quantizer is calibrated; this one needs no training");
    TQ_RETURN_IF(!x || n == 0, TQ_ERR_INVALID_ARG, "calibration needs at least one sample row");
    size_t total;
    TQ_RETURN_IF(!tq_mul_size(n, q->cfg.dim, &total) || !tq_mul_size(total, sizeof(float), &total), TQ_ERR_SIZE,
                 "n = %zu is too large", n);
    TQ_FORWARD(check_rows(x, n, q->cfg.dim, "calibration sample"));
    tq_work w;
    TQ_FORWARD(tq_work_alloc(&w, tq_quantizer_max_part_dim(q)));
    float *mn[2] = {NULL, NULL}, *mx[2] = {NULL, NULL};
    tq_status s = TQ_OK;
    for (uint32_t p = 0; p < q->nparts; p++) {
        mn[p] = malloc(q->part[p].dim * sizeof(float));
        mx[p] = malloc(q->part[p].dim * sizeof(float));
        if (!mn[p] || !mx[p]) s = tq_fail(TQ_ERR_NOMEM, "out of memory for calibration");
    }
    for (size_t i = 0; i < n && s == TQ_OK; i++) {
        for (uint32_t p = 0; p < q->nparts; p++) {
            const tq_part *pt = &q->part[p];
            tq_part_gather(q, p, x + i * q->cfg.dim, w.sub);
            tq_rotation_forward(&pt->rot, w.sub, w.y, 1, w.scratch);
            for (uint32_t j = 0; j < pt->dim; j++) {
                if (i == 0 || w.y[j] < mn[p][j]) mn[p][j] = w.y[j];
                if (i == 0 || w.y[j] > mx[p][j]) mx[p][j] = w.y[j];
            }
        }
    }
    /* every range must fit float32 before any is stored: a refused calibration keeps the old one */
    for (uint32_t p = 0; p < q->nparts && s == TQ_OK; p++) {
        uint32_t levels = 1u << q->part[p].mse_bits;
        for (uint32_t j = 0; j < q->part[p].dim && s == TQ_OK; j++) {
            float pair[2] = {mn[p][j], mx[p][j]}, lo, step;
            uniform_range(pair, 2, q->cfg.uniform_mode, levels, &lo, &step);
            if (!isfinite(lo) || !isfinite(step * (float)(levels - 1)))
                s = tq_fail(TQ_ERR_NONFINITE, "calibration sample: the range of rotated channel %u (%g .. %g) "
                            "overflows float32", j, (double)mn[p][j], (double)mx[p][j]);
        }
    }
    if (s == TQ_OK) {
        for (uint32_t p = 0; p < q->nparts; p++) {
            tq_part *pt = &q->part[p];
            uint32_t levels = 1u << pt->mse_bits;
            for (uint32_t j = 0; j < pt->dim; j++) {
                float pair[2] = {mn[p][j], mx[p][j]};
                uniform_range(pair, 2, q->cfg.uniform_mode, levels, &pt->ch_lo[j], &pt->ch_step[j]);
            }
        }
        q->calibrated = 1;
    }
    for (uint32_t p = 0; p < 2; p++) {
        free(mn[p]);
        free(mx[p]);
    }
    tq_work_free(&w);
    return s;
}

/* ------------------------------------------------------------------ query */

tq_status tq_query_create(const tq_quantizer *q, tq_query **out) {
    tq_clear_error();
    TQ_RETURN_IF(!q || !out, TQ_ERR_INVALID_ARG, "NULL argument");
    *out = NULL;
    tq_query *pq = calloc(1, sizeof *pq);
    TQ_RETURN_IF(!pq, TQ_ERR_NOMEM, "out of memory for a query");
    pq->q = q;
    for (uint32_t p = 0; p < q->nparts; p++) {
        size_t d = q->part[p].dim;
        pq->qrot[p] = calloc(d, sizeof(float));
        int bad = !pq->qrot[p];
        if (q->part[p].has_qjl) {
            pq->qproj[p] = calloc(d, sizeof(float));
            bad |= !pq->qproj[p];
        }
        if (bad) {
            tq_query_free(pq);
            return tq_fail(TQ_ERR_NOMEM, "out of memory for a query");
        }
    }
    *out = pq;
    return TQ_OK;
}

void tq_query_free(tq_query *pq) {
    if (!pq) return;
    for (int p = 0; p < 2; p++) {
        free(pq->qrot[p]);
        free(pq->qproj[p]);
    }
    free(pq);
}

tq_status tq_query_set(tq_query *pq, const float *vec) {
    tq_clear_error();
    TQ_RETURN_IF(!pq || !vec, TQ_ERR_INVALID_ARG, "NULL argument");
    const tq_quantizer *q = pq->q;
    TQ_FORWARD(check_rows(vec, 1, q->cfg.dim, "query"));
    tq_work w;
    TQ_FORWARD(tq_work_alloc(&w, tq_quantizer_max_part_dim(q)));
    double ss = 0.0;
    for (uint32_t j = 0; j < q->cfg.dim; j++) ss += (double)vec[j] * vec[j];
    pq->qnorm2 = ss;
    for (uint32_t p = 0; p < q->nparts; p++) {
        const tq_part *pt = &q->part[p];
        tq_part_gather(q, p, vec, w.sub);
        tq_rotation_forward(&pt->rot, w.sub, pq->qrot[p], 1, w.scratch);
        if (pt->has_qjl) qjl_project(pt, pq->qrot[p], pq->qproj[p], w.scratch);
    }
    tq_work_free(&w);
    return TQ_OK;
}

/* ------------------------------------------------------------------- score */

/*
 * One part's contribution: ip (the inner-product estimate) and n2 (the
 * squared norm used for L2: the stored exact ||x||^2 for the TurboQuant
 * variants, the decoded vector's squared norm for the uniform baseline).
 */
static void score_part(const tq_quantizer *q, const tq_query *pq, uint32_t p, const uint8_t *rec, uint8_t *idx,
                       double *ip, double *n2) {
    const tq_part *pt = &q->part[p];
    const tq_config *cfg = &q->cfg;
    const float *qr = pq->qrot[p];
    uint32_t d = pt->dim;
    rec += pt->offset;

    if (cfg->variant == TQ_VARIANT_UNIFORM) {
        uint32_t levels = 1u << pt->mse_bits;
        tq_unpack(rec + pt->off_idx, d, pt->mse_bits, idx);
        /* the levels exactly as decode rounds them (float lo + step * k), then <q, v> and ||v||^2 in double:
         * the score is the inner product with the decoded vector (the uniform baselines are not fast paths) */
        double acc = 0.0, sq = 0.0;
        if (cfg->uniform_scope == TQ_UNIFORM_PER_CHANNEL) {
            for (uint32_t j = 0; j < d; j++) {
                float v = pt->ch_lo[j] + pt->ch_step[j] * (float)idx[j];
                acc += (double)qr[j] * v;
                sq += (double)v * v;
            }
        } else {
            uint32_t g = uniform_group_len(cfg, pt);
            for (uint32_t s = 0; s < d; s += g) {
                float lo, step;
                uniform_factors(cfg, pt, rec, s / g, levels, &lo, &step);
                for (uint32_t j = s; j < s + g; j++) {
                    float v = lo + step * (float)idx[j];
                    acc += (double)qr[j] * v;
                    sq += (double)v * v;
                }
            }
        }
        *ip = acc;
        *n2 = sq;
        return;
    }

    float f0 = tq_get_f32(rec);
    double acc = 0.0, cc = 0.0;
    if (pt->mse_bits) {
        const float *c = pt->cb.centroids;
        acc = tq_kernels()->ip_codes(qr, c, rec + pt->off_idx, d, pt->mse_bits, idx);
        if (cfg->variant == TQ_VARIANT_MSE && cfg->norm == TQ_NORM_UNIT) { /* only UNIT needs ||c[idx]||^2 */
            tq_unpack(rec + pt->off_idx, d, pt->mse_bits, idx); /* a kernel need not leave idx behind */
            for (uint32_t j = 0; j < d; j++) cc += (double)c[idx[j]] * c[idx[j]];
        }
    }
    if (cfg->variant == TQ_VARIANT_MSE) {
        *ip = (double)f0 * acc;
        if (cfg->norm == TQ_NORM_PLAIN) *n2 = (double)f0 * f0;
        else if (cfg->norm == TQ_NORM_UNIT) *n2 = (double)f0 * f0 * cc;
        else { double nx = tq_get_f32(rec + 4); *n2 = nx * nx; }
        return;
    }
    /* PROD / QJL */
    double gamma = pt->mse_bits ? tq_get_f32(rec + 4) : f0;
    const uint8_t *sg = rec + pt->off_sign;
    const float *qp = pq->qproj[p];
    double sk = tq_kernels()->ip_signs(qp, sg, d);
    *ip = (pt->mse_bits ? (double)f0 * acc : 0.0) + pt->qjl_scale * gamma * sk;
    *n2 = (double)f0 * f0; /* norm (PROD) or gamma = norm (QJL) */
}

double tq_query_ip_record(const tq_query *pq, const uint8_t *rec, uint8_t *idx, double *n2) {
    const tq_quantizer *q = pq->q;
    double ip = 0.0, nn = 0.0;
    for (uint32_t p = 0; p < q->nparts; p++) {
        double pip, pn2;
        score_part(q, pq, p, rec, idx, &pip, &pn2);
        ip += pip;
        nn += pn2;
    }
    if (n2) *n2 = nn;
    return ip;
}

const float *tq_query_rotated(const tq_query *pq, uint32_t p) { return pq->qrot[p]; }
const tq_quantizer *tq_query_quantizer(const tq_query *pq) { return pq->q; }
const float *tq_query_projected(const tq_query *pq, uint32_t p) { return pq->qproj[p]; }

static tq_status score_range(void *ctx, size_t begin, size_t end) {
    const batch *b = ctx;
    const tq_quantizer *q = b->q;
    uint8_t *idx = malloc(tq_quantizer_max_part_dim(q));
    TQ_RETURN_IF(!idx, TQ_ERR_NOMEM, "out of memory for scoring");
    for (size_t i = begin; i < end; i++) {
        double n2 = 0.0;
        double ip = tq_query_ip_record(b->pq, b->codes_in + i * q->code_size, idx, &n2);
        b->out[i] = (float)(b->metric == TQ_METRIC_IP ? ip : b->pq->qnorm2 - 2.0 * ip + n2);
    }
    free(idx);
    return TQ_OK;
}

tq_status tq_score(const tq_quantizer *q, const tq_query *pq, tq_metric metric, const uint8_t *codes, size_t n,
                   float *scores) {
    tq_clear_error();
    TQ_RETURN_IF(!q || !pq, TQ_ERR_INVALID_ARG, "NULL quantizer or query");
    TQ_RETURN_IF(pq->q != q, TQ_ERR_MISMATCH, "the query was prepared for another quantizer");
    TQ_RETURN_IF((unsigned)metric > TQ_METRIC_L2, TQ_ERR_INVALID_ARG, "unknown metric %d", (int)metric);
    if (n == 0) return TQ_OK;
    TQ_RETURN_IF(!codes || !scores, TQ_ERR_INVALID_ARG, "codes or scores is NULL");
    size_t total;
    TQ_RETURN_IF(!tq_mul_size(n, q->code_size, &total) || !tq_mul_size(n, sizeof(float), &total), TQ_ERR_SIZE,
                 "n = %zu is too large", n);
    batch b = {q, pq, metric, NULL, scores, codes, NULL};
    return tq_parallel_for(n, 2 * min_chunk(q), score_range, &b);
}

/* ------------------------------------------------------------ utilities */

tq_status tq_codebook_get(uint32_t dim, uint32_t bits, float *centroids, double *mse_unit) {
    tq_clear_error();
    TQ_RETURN_IF(!centroids, TQ_ERR_INVALID_ARG, "centroids is NULL");
    const tq_codebook *cb = NULL;
    TQ_FORWARD(tq_codebook_lookup(dim, bits, &cb));
    memcpy(centroids, cb->centroids, (size_t)cb->levels * sizeof(float));
    if (mse_unit) *mse_unit = cb->mse_unit;
    return TQ_OK;
}

tq_status tq_select_outliers(const float *x, size_t n, uint32_t dim, uint32_t k, uint32_t *channels) {
    tq_clear_error();
    TQ_RETURN_IF(!x || !channels, TQ_ERR_INVALID_ARG, "NULL argument");
    TQ_RETURN_IF(dim == 0 || dim > TQ_MAX_DIM, TQ_ERR_DIM, "dim %u must be 1..%u", dim, TQ_MAX_DIM);
    TQ_RETURN_IF(n == 0, TQ_ERR_INVALID_ARG, "need at least one sample row");
    TQ_RETURN_IF(k == 0 || k >= dim, TQ_ERR_INVALID_ARG, "k = %u must be 1..dim-1", k);
    size_t total;
    TQ_RETURN_IF(!tq_mul_size(n, dim, &total) || !tq_mul_size(total, sizeof(float), &total), TQ_ERR_SIZE,
                 "n = %zu is too large", n);
    TQ_FORWARD(check_rows(x, n, dim, "sample"));
    double *ms = calloc(dim, sizeof(double));
    uint8_t *taken = calloc(dim, 1);
    if (!ms || !taken) {
        free(ms);
        free(taken);
        return tq_fail(TQ_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < dim; j++) ms[j] += (double)x[i * dim + j] * x[i * dim + j];
    /* k passes of selection: fine for the k << dim of practice, and exact on ties */
    for (uint32_t t = 0; t < k; t++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t j = 0; j < dim; j++)
            if (!taken[j] && (best == UINT32_MAX || ms[j] > ms[best])) best = j;
        taken[best] = 1;
    }
    for (uint32_t j = 0, t = 0; j < dim; j++)
        if (taken[j]) channels[t++] = j;
    free(ms);
    free(taken);
    return TQ_OK;
}
