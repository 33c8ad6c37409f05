/*
 * kv_quality.c — attention quality of compressed KV caches on a real model's
 * keys, values and queries (SmolLM2-135M, bench/data/smollm2_kv.py), every
 * method compared with exact attention at the same decode positions.
 *
 * For every layer and a fixed set P of decode positions (default 64, evenly
 * spaced over [1024, 4095], 4095 always included), each query head h (9, GQA
 * 3:1) at position p attends tokens 0..p. The exact reference is computed in
 * double precision: logits scale * <q, k_t> (scale 1/8), softmax, output
 * sum_t p_t v_t. Each method is measured three ways:
 *   K only  scores from the method, values exact  (output softmax(est) V)
 *   V only  scores exact, values from the method   (output softmax(exact) V^)
 *   K+V     both from the method
 * and reports, per layer: logit RMS error (and over the RMS of the exact
 * logits), top-1 agreement, top-8 overlap, KL(p || p^) (natural log, p^
 * clamped >= 1e-30), output relative error ||o - o^|| / ||o|| and cosine
 * (means over heads and positions).
 *
 * Where the numbers come from
 *   - tq methods (mse, mse plain, prod dense / structured, qjl, uniform
 *     per-token): a real tq_kv per layer, tq_kv_config_init defaults (centering,
 *     exact sink tokens) except uniform and "mse plain" (no centering, no sinks). The first append is the "prompt", tokens
 *     0..prompt-1 (default 1024: the outlier channels of fractional bits are
 *     chosen per head from it, TQ_KV_OUTLIERS_FIRST), then the rest in one
 *     append. K-side logits are tq_kv_logits (scored from the codes, fp16
 *     factors: the numbers tq_kv_attend feeds its softmax); K+V outputs are
 *     tq_kv_attend with q_pos. V-only outputs use the values decoded by
 *     tq_encode / tq_decode with the cache's value config and, per head, the
 *     outlier channels tq_select_outliers picks from the prompt (the rule
 *     TQ_KV_OUTLIERS_FIRST documents); tq_decode keeps float32 factors where
 *     the cache keeps fp16, centered on the prompt's mean value per head when
 *     the cache centers values, sink tokens exact, centers and outlier channels
 *     from the prompt's non-sink tokens (as the cache does). Check, reported as "kv_check": float attention
 *     over (tq_kv_logits, decoded values) against tq_kv_attend, max relative
 *     output difference over all (position, head).
 *   - kivi: KIVI-style fake quantization (quantize -> dequantize, then float
 *     attention): keys per channel over groups of 32 consecutive tokens,
 *     values per token over groups of 32 channels, asymmetric, fp16 min and
 *     step per group. The last (p + 1) mod 32 tokens (an incomplete key group)
 *     are kept in full precision as KIVI does (rounded to fp16, counted at 16
 *     bits). Integer bits only.
 *   - Bits per value count every factor: tq_kv_token_bytes for tq, plus its
 *     float32 sink tokens and centers (averaged over P); KIVI's
 *     fp16 min+step per group and its fp16 residual tokens, averaged over P.
 *
 * Output: JSON lines on stdout (one per layer x method x bits x side);
 * progress on stderr.
 * Usage: tq_kv_quality [--data DIR] [--layers all|0,15,29] [--positions N]
 *                      [--methods mse,mse-plain,prod-dense,prod-struct,qjl,uniform,kivi]
 *                      [--bits 2,2.5,3,3.5,4] [--prompt N] [--threads N]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tq.h>

enum { H = 3, G = 3, QH = 9, D = 64, TOPK = 8, KIVI_GROUP = 32, MAXLAYERS = 64, MAXBITS = 16, MAXTHREADS = 64 };
static const double SCALE = 0.125;

enum { M_MSE, M_MSE_NOCENTER, M_PROD_DENSE, M_PROD_STRUCT, M_QJL, M_UNIFORM, M_KIVI, M_COUNT };
static const char *method_key[M_COUNT] = {"mse", "mse-plain", "prod-dense", "prod-struct", "qjl", "uniform",
                                          "kivi"};
static const char *method_name[M_COUNT] = {"tq mse", "tq mse plain", "tq prod dense", "tq prod structured",
                                           "tq qjl", "uniform per-token", "kivi"};
static const char *side_name[3] = {"K only", "V only", "K+V"};
static const char *center_name[4] = {"none", "keys", "values", "both"};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "tq_kv_quality: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* Round to the nearest IEEE half value (ties to even), as a float. */
static float f16r(float x) {
    if (x == 0.0f || !isfinite(x)) return x;
    float ax = fabsf(x);
    if (ax >= 65520.0f) return copysignf(INFINITY, x);
    int e;
    frexpf(ax, &e); /* ax in [2^(e-1), 2^e): half spacing 2^(e-11), subnormal spacing 2^-24 */
    int qe = e - 11 < -24 ? -24 : e - 11;
    float qf = ldexpf(1.0f, qe);
    return copysignf(nearbyintf(ax / qf) * qf, x);
}

/* Asymmetric b-bit fake quantization of n values at stride s: fp16 lo and step. */
static void fake_asym(float *x, size_t n, size_t s, uint32_t bits) {
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        lo = x[i * s] < lo ? x[i * s] : lo;
        hi = x[i * s] > hi ? x[i * s] : hi;
    }
    const float levels = (float)((1u << bits) - 1u);
    float lo16 = f16r(lo), step16 = f16r((hi - lo) / levels);
    for (size_t i = 0; i < n; i++) {
        float c = step16 > 0.0f ? nearbyintf((x[i * s] - lo16) / step16) : 0.0f;
        c = c < 0.0f ? 0.0f : (c > levels ? levels : c);
        x[i * s] = lo16 + c * step16;
    }
}

/* ---- data ---- */

typedef struct layer_data {
    float *k, *v, *q; /* T x H*D, T x H*D, T x QH*D */
    size_t T;
} layer_data;

static int load_layer(const char *dir, int l, layer_data *ly) {
    char path[8192];
    size_t n[3], dim[3];
    float **dst[3] = {&ly->k, &ly->v, &ly->q};
    const char *part[3] = {"k", "v", "q"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/layer%02d-%s.npy", dir, l, part[i]);
        tq_status s = tq_read_vectors(path, 0, dst[i], &n[i], &dim[i]);
        if (s != TQ_OK) {
            fprintf(stderr, "tq_kv_quality: %s: %s: %s (make it with python3 bench/data/smollm2_kv.py)\n", path,
                    tq_status_str(s), tq_last_error());
            return 1;
        }
    }
    if (dim[0] != H * D || dim[1] != H * D || dim[2] != QH * D || n[0] != n[1] || n[0] != n[2]) {
        fprintf(stderr, "tq_kv_quality: layer %d: unexpected shapes\n", l);
        return 1;
    }
    ly->T = n[0];
    return 0;
}

/* ---- per-position work, run on a few threads ---- */

typedef struct pos_acc {
    double se2, sx2, ntok;     /* logit squared error, squared exact logits, (head, token) count */
    double top1, top8, kl;     /* sums over heads */
    double rel[3], cos[3];     /* per side (K, V, K+V): sums over heads */
    double chk;                /* max relative difference: tq_kv_attend vs float attention over decoded */
    double pmax, gap, ent;     /* exact attention (phase 0): max weight, top-1 minus top-2 logit, entropy */
} pos_acc;

typedef struct work {
    const layer_data *ly;
    size_t npos;
    const int64_t *pos;
    const size_t *off;          /* off[pi]: start of position pi's block (QH x (p+1)) in the logit arrays */
    double *s_ex, *p_ex, *o_ex; /* exact logits, probabilities, outputs (o_ex: [pi][QH][D]) */
    int phase;                  /* 0: exact; 1: a method */
    /* method inputs */
    const tq_kv *kv;            /* K-side logits from the cache (tq methods) */
    const float *kdeq, *kres;   /* kivi: keys dequantized by complete groups, and fp16-rounded keys */
    const float *vdec;          /* values from the method, [T][H][D] */
    const float *okv;           /* K+V outputs of tq_kv_attend, [pi][QH][D]; NULL: float attention */
    pos_acc *acc;               /* [npos] */
    int nthreads;
    volatile int failed;
} work;

typedef struct thread_arg {
    work *w;
    int id;
} thread_arg;

static void softmax(const double *s, size_t n, double *p) {
    double m = -INFINITY;
    for (size_t t = 0; t < n; t++) m = s[t] > m ? s[t] : m;
    double z = 0.0;
    for (size_t t = 0; t < n; t++) z += (p[t] = exp(s[t] - m));
    for (size_t t = 0; t < n; t++) p[t] /= z;
}

/* out[D] = sum_t p[t] * x[t] with rows of x at stride H*D (one head's column block). */
static void weighted(const double *p, size_t n, const float *x, double *out) {
    for (int j = 0; j < D; j++) out[j] = 0.0;
    for (size_t t = 0; t < n; t++) {
        const float *r = x + t * H * D;
        const double w = p[t];
        for (int j = 0; j < D; j++) out[j] += w * r[j];
    }
}

static void topk_idx(const double *s, size_t n, size_t *idx) {
    double val[TOPK];
    size_t m = 0;
    for (size_t t = 0; t < n; t++) {
        if (m == TOPK && !(s[t] > val[TOPK - 1])) continue;
        size_t i = m < TOPK ? m++ : TOPK - 1;
        while (i > 0 && s[t] > val[i - 1]) {
            val[i] = val[i - 1];
            idx[i] = idx[i - 1];
            i--;
        }
        val[i] = s[t];
        idx[i] = t;
    }
    for (size_t i = m; i < TOPK; i++) idx[i] = SIZE_MAX;
}

static void out_err(const double *o, const double *e, double *rel, double *cos) {
    double d2 = 0.0, e2 = 0.0, o2 = 0.0, oe = 0.0;
    for (int j = 0; j < D; j++) {
        d2 += (o[j] - e[j]) * (o[j] - e[j]);
        e2 += e[j] * e[j];
        o2 += o[j] * o[j];
        oe += o[j] * e[j];
    }
    *rel += e2 > 0 ? sqrt(d2 / e2) : 0.0;
    *cos += (o2 > 0 && e2 > 0) ? oe / sqrt(o2 * e2) : 0.0;
}

static void *worker(void *arg) {
    thread_arg *ta = arg;
    work *w = ta->w;
    const layer_data *ly = w->ly;
    const size_t T = ly->T;
    double *s_est = xmalloc(T * sizeof(double)), *p_est = xmalloc(T * sizeof(double));
    float *lg = xmalloc((size_t)QH * T * sizeof(float));
    double oK[D], oV[D], oKV[D], oR[D];
    for (size_t pi = (size_t)ta->id; pi < w->npos; pi += (size_t)w->nthreads) {
        const size_t p = (size_t)w->pos[pi], n = p + 1;
        const float *qrow = ly->q + p * QH * D;
        if (w->phase == 0) {
            pos_acc *a = &w->acc[pi];
            memset(a, 0, sizeof *a);
            for (int h = 0; h < QH; h++) {
                double *s = w->s_ex + w->off[pi] + (size_t)h * n, *pe = w->p_ex + w->off[pi] + (size_t)h * n;
                const float *qq = qrow + h * D;
                for (size_t t = 0; t < n; t++) {
                    const float *kk = ly->k + t * H * D + (h / G) * D;
                    double acc = 0.0;
                    for (int j = 0; j < D; j++) acc += (double)qq[j] * kk[j];
                    s[t] = SCALE * acc;
                }
                softmax(s, n, pe);
                weighted(pe, n, ly->v + (h / G) * D, w->o_ex + (pi * QH + h) * D);
                size_t ie[TOPK];
                topk_idx(s, n, ie);
                double ent = 0.0;
                for (size_t t = 0; t < n; t++) ent -= pe[t] > 0.0 ? pe[t] * log(pe[t]) : 0.0;
                a->pmax += pe[ie[0]];
                a->gap += s[ie[0]] - s[ie[1]];
                a->ent += ent;
            }
            continue;
        }
        pos_acc *a = &w->acc[pi];
        memset(a, 0, sizeof *a);
        if (w->kv && tq_kv_logits(w->kv, qrow, QH, n, (float)SCALE, lg) != TQ_OK) {
            fprintf(stderr, "tq_kv_quality: tq_kv_logits: %s\n", tq_last_error());
            w->failed = 1;
            break;
        }
        const size_t nfull = n / KIVI_GROUP * KIVI_GROUP;
        for (int h = 0; h < QH; h++) {
            const double *s = w->s_ex + w->off[pi] + (size_t)h * n, *pe = w->p_ex + w->off[pi] + (size_t)h * n;
            const double *oe = w->o_ex + (pi * QH + h) * D;
            if (w->kv) {
                for (size_t t = 0; t < n; t++) s_est[t] = lg[(size_t)h * n + t];
            } else {
                const float *qq = qrow + h * D;
                for (size_t t = 0; t < n; t++) {
                    const float *kk = (t < nfull ? w->kdeq : w->kres) + t * H * D + (h / G) * D;
                    double acc = 0.0;
                    for (int j = 0; j < D; j++) acc += (double)qq[j] * kk[j];
                    s_est[t] = SCALE * acc;
                }
            }
            softmax(s_est, n, p_est);
            /* attention metrics */
            double kl = 0.0;
            for (size_t t = 0; t < n; t++) {
                double d = s_est[t] - s[t];
                a->se2 += d * d;
                a->sx2 += s[t] * s[t];
                if (pe[t] > 0.0) kl += pe[t] * (log(pe[t]) - log(p_est[t] > 1e-30 ? p_est[t] : 1e-30));
            }
            a->ntok += (double)n;
            a->kl += kl;
            size_t ie[TOPK], is[TOPK];
            topk_idx(s, n, ie);
            topk_idx(s_est, n, is);
            a->top1 += ie[0] == is[0];
            int common = 0;
            for (int i = 0; i < TOPK; i++)
                for (int j = 0; j < TOPK; j++) common += ie[i] != SIZE_MAX && ie[i] == is[j];
            a->top8 += common / (double)TOPK;
            /* outputs */
            const float *vcol = ly->v + (h / G) * D, *vdcol = w->vdec + (h / G) * D;
            weighted(p_est, n, vcol, oK);
            weighted(pe, n, vdcol, oV);
            weighted(p_est, n, vdcol, oKV);
            out_err(oK, oe, &a->rel[0], &a->cos[0]);
            out_err(oV, oe, &a->rel[1], &a->cos[1]);
            if (w->okv) {
                const float *r = w->okv + (pi * QH + h) * D;
                double d2 = 0.0, r2 = 0.0;
                for (int j = 0; j < D; j++) {
                    oR[j] = r[j];
                    d2 += (oR[j] - oKV[j]) * (oR[j] - oKV[j]);
                    r2 += oR[j] * oR[j];
                }
                double c = r2 > 0 ? sqrt(d2 / r2) : sqrt(d2);
                a->chk = c > a->chk ? c : a->chk;
                out_err(oR, oe, &a->rel[2], &a->cos[2]);
            } else {
                out_err(oKV, oe, &a->rel[2], &a->cos[2]);
            }
        }
    }
    free(s_est);
    free(p_est);
    free(lg);
    return NULL;
}

static int run_work(work *w) {
    pthread_t th[MAXTHREADS];
    thread_arg ta[MAXTHREADS];
    w->failed = 0;
    for (int i = 0; i < w->nthreads; i++) {
        ta[i].w = w;
        ta[i].id = i;
        if (i > 0 && pthread_create(&th[i], NULL, worker, &ta[i]) != 0) {
            fprintf(stderr, "tq_kv_quality: pthread_create failed\n");
            exit(1);
        }
    }
    worker(&ta[0]);
    for (int i = 1; i < w->nthreads; i++) pthread_join(th[i], NULL);
    return w->failed;
}

/* ---- methods ---- */

static uint32_t gcd_u(uint32_t a, uint32_t b) {
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The cache config of a tq method at b bits; 0 when the method does not apply at b. */
static int make_cfg(int m, double bits, tq_kv_config *cfg) {
    if (m == M_KIVI) return 0;
    if (m == M_QJL && bits != 1.0) return 0;
    if (m != M_QJL && bits < 2.0) return 0;
    int cfg_plain = m == M_MSE_NOCENTER || m == M_UNIFORM;
    tq_kv_config_init(cfg, H, D, bits, bits);
    if (cfg->key.bits == 0 || cfg->value.bits == 0) return 0;
    tq_config *c[2] = {&cfg->key, &cfg->value};
    for (int s = 0; s < 2; s++) {
        switch (m) {
        case M_PROD_DENSE:
        case M_PROD_STRUCT:
            c[s]->variant = TQ_VARIANT_PROD;
            c[s]->norm = TQ_NORM_PLAIN;
            c[s]->qjl = m == M_PROD_DENSE ? TQ_QJL_DENSE : TQ_QJL_STRUCTURED;
            break;
        case M_QJL:
            c[s]->variant = TQ_VARIANT_QJL;
            c[s]->norm = TQ_NORM_PLAIN;
            c[s]->qjl = TQ_QJL_DENSE;
            break;
        case M_UNIFORM:
            c[s]->variant = TQ_VARIANT_UNIFORM;
            c[s]->norm = TQ_NORM_PLAIN;
            c[s]->rotation = TQ_ROTATION_NONE;
            c[s]->uniform_mode = TQ_UNIFORM_ASYMMETRIC;
            c[s]->uniform_scope = TQ_UNIFORM_GROUP;
            /* one group per token per head; with a split, one per part (group_size divides both) */
            c[s]->group_size = c[s]->outlier_count ? gcd_u(c[s]->outlier_count, D - c[s]->outlier_count) : D;
            break;
        default:
            break;
        }
    }
    /* tq methods keep the cache's defaults (centering, exact sink tokens); the uniform baseline is the
     * textbook one, and "tq mse plain" shows what those defaults buy: no centering, no sinks */
    if (cfg_plain) {
        cfg->center = TQ_KV_CENTER_NONE;
        cfg->sinks = 0;
    }
    return 1;
}

/* All tokens through one side's quantizer config c0, per head ([T][H][D] in and out), outlier channels per
 * head from the prompt as TQ_KV_OUTLIERS_FIRST chooses them. center (may be NULL): per head, subtract the
 * mean of the prompt's rows before encoding and add it back after decoding. */
static int decode_side(const tq_config *c0, const float *v, size_t T, size_t sinks, size_t prompt, int center,
                       float *out) {
    float *col = xmalloc(T * D * sizeof(float)), *dec = xmalloc(T * D * sizeof(float));
    uint32_t ch[D];
    int rc = 0;
    for (int h = 0; h < H && !rc; h++) {
        for (size_t t = 0; t < T; t++) memcpy(col + t * D, v + (t * H + h) * D, D * sizeof(float));
        double mu[D] = {0};
        if (center) {
            for (size_t t = sinks; t < prompt; t++)
                for (int j = 0; j < D; j++) mu[j] += col[t * D + j];
            for (int j = 0; j < D; j++) mu[j] /= (double)(prompt - sinks);
            for (size_t t = 0; t < T; t++)
                for (int j = 0; j < D; j++) col[t * D + j] -= (float)mu[j];
        }
        tq_config c = *c0;
        if (c.outlier_count) {
            if (tq_select_outliers(col + sinks * D, prompt - sinks, D, c.outlier_count, ch) != TQ_OK) {
                rc = 1;
                break;
            }
            c.outlier_channels = ch;
        }
        tq_quantizer *q = NULL;
        if (tq_quantizer_create(&c, &q) != TQ_OK) {
            rc = 1;
            break;
        }
        size_t cs = tq_quantizer_code_size(q);
        uint8_t *codes = xmalloc(T * cs);
        if (tq_encode(q, col, T, codes) != TQ_OK || tq_decode(q, codes, T, dec) != TQ_OK) rc = 1;
        for (size_t t = 0; t < T && !rc; t++) /* sink tokens stay exact */
            for (int j = 0; j < D; j++)
                out[(t * H + h) * D + j] = t < sinks ? v[(t * H + h) * D + j] : dec[t * D + j] + (float)mu[j];
        free(codes);
        tq_quantizer_free(q);
    }
    if (rc) fprintf(stderr, "tq_kv_quality: encode/decode: %s\n", tq_last_error());
    free(col);
    free(dec);
    return rc;
}

/* ---- main ---- */

static size_t parse_list(const char *s, double *out, size_t cap) {
    size_t n = 0;
    while (*s && n < cap) {
        char *end;
        out[n++] = strtod(s, &end);
        if (end == s) return 0;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static void usage(void) {
    fprintf(stderr, "usage: tq_kv_quality [--data DIR] [--layers all|0,15,29] [--positions N] "
                    "[--methods mse,mse-plain,prod-dense,prod-struct,qjl,uniform,kivi] [--bits 2,2.5,3,3.5,4] "
                    "[--prompt N] [--threads N]\n");
}

int main(int argc, char **argv) {
    char defdir[4096];
    const char *home = getenv("HOME");
    snprintf(defdir, sizeof defdir, "%s/.cache/tq/smollm2", home ? home : ".");
    const char *dir = defdir, *layers_s = "all", *methods_s = "mse,mse-plain,prod-dense,prod-struct,qjl,uniform,kivi";
    double bits[MAXBITS] = {2, 2.5, 3, 3.5, 4};
    size_t nbits = 5, npos = 64, prompt = 1024;
    long nthreads = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        if (!v) {
            fprintf(stderr, "tq_kv_quality: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--data")) dir = v;
        else if (!strcmp(a, "--layers")) layers_s = v;
        else if (!strcmp(a, "--positions")) npos = (size_t)atol(v);
        else if (!strcmp(a, "--methods")) methods_s = v;
        else if (!strcmp(a, "--bits")) nbits = parse_list(v, bits, MAXBITS);
        else if (!strcmp(a, "--prompt")) prompt = (size_t)atol(v);
        else if (!strcmp(a, "--threads")) nthreads = atol(v);
        else {
            fprintf(stderr, "tq_kv_quality: unknown option %s\n", a);
            usage();
            return 2;
        }
        i++;
    }
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAXTHREADS) nthreads = MAXTHREADS;
    if (npos < 1 || npos > 4096 || nbits == 0 || prompt < 1 || prompt > 1024) {
        usage();
        return 2;
    }
    int want[M_COUNT] = {0};
    {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", methods_s);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            int found = 0;
            for (int m = 0; m < M_COUNT; m++)
                if (!strcmp(tok, method_key[m]) || !strcmp(tok, "all")) want[m] = found = 1;
            if (!found) {
                fprintf(stderr, "tq_kv_quality: unknown method %s\n", tok);
                return 2;
            }
        }
    }
    int layers[MAXLAYERS], nlayers = 0;
    if (!strcmp(layers_s, "all")) {
        for (int l = 0; l < 30; l++) layers[nlayers++] = l;
    } else {
        double tmp[MAXLAYERS];
        size_t n = parse_list(layers_s, tmp, MAXLAYERS);
        for (size_t i = 0; i < n; i++) layers[nlayers++] = (int)tmp[i];
        if (!nlayers) {
            usage();
            return 2;
        }
    }
    if (tq_set_threads(0) != TQ_OK) return 1;

    /* positions: npos evenly spaced over [1024, 4095] (set per layer below, once T is known) */
    int64_t *pos = xmalloc(npos * sizeof(int64_t));
    size_t *off = xmalloc((npos + 1) * sizeof(size_t));
    printf("{\"type\":\"header\",\"data\":\"%s\",\"build\":\"%s\",\"kernel\":\"%s\",\"positions\":%zu,"
           "\"prompt\":%zu,\"scale\":%g,\"shape\":{\"kv_heads\":%d,\"q_heads\":%d,\"head_dim\":%d},"
           "\"threads\":%ld}\n",
           dir, tq_build_info(), tq_kernel_name(), npos, prompt, SCALE, H, QH, D, nthreads);
    fflush(stdout);
    const double t_start = now_s();
    for (int li = 0; li < nlayers; li++) {
        const int l = layers[li];
        layer_data ly;
        if (load_layer(dir, l, &ly)) return 1;
        const size_t T = ly.T;
        if (T < 4096) {
            fprintf(stderr, "tq_kv_quality: layer %d has %zu tokens, need 4096\n", l, T);
            return 1;
        }
        const double lo = 1024.0, hi = 4095.0;
        for (size_t i = 0; i < npos; i++)
            pos[i] = npos == 1 ? (int64_t)hi : (int64_t)llround(lo + (hi - lo) * (double)i / (double)(npos - 1));
        off[0] = 0;
        for (size_t i = 0; i < npos; i++) off[i + 1] = off[i] + (size_t)QH * ((size_t)pos[i] + 1);
        work w;
        memset(&w, 0, sizeof w);
        w.ly = &ly;
        w.npos = npos;
        w.pos = pos;
        w.off = off;
        w.nthreads = (int)nthreads;
        w.s_ex = xmalloc(off[npos] * sizeof(double));
        w.p_ex = xmalloc(off[npos] * sizeof(double));
        w.o_ex = xmalloc(npos * QH * D * sizeof(double));
        w.acc = xmalloc(npos * sizeof(pos_acc));
        w.phase = 0;
        run_work(&w);
        {
            double pm = 0.0, gp = 0.0, en = 0.0;
            for (size_t i = 0; i < npos; i++) {
                pm += w.acc[i].pmax;
                gp += w.acc[i].gap;
                en += w.acc[i].ent;
            }
            const double nhp = (double)npos * QH;
            printf("{\"type\":\"exact\",\"layer\":%d,\"pmax_mean\":%.6f,\"top1_gap_mean\":%.6f,"
                   "\"entropy_mean\":%.6f,\"positions\":%zu}\n",
                   l, pm / nhp, gp / nhp, en / nhp, npos);
        }
        w.phase = 1;
        float *vdec = xmalloc(T * H * D * sizeof(float)), *kdeq = xmalloc(T * H * D * sizeof(float));
        float *kres = xmalloc(T * H * D * sizeof(float)), *okv = xmalloc(npos * QH * D * sizeof(float));
        float *qb = xmalloc(npos * QH * D * sizeof(float));
        for (size_t i = 0; i < npos; i++) memcpy(qb + i * QH * D, ly.q + (size_t)pos[i] * QH * D, QH * D * sizeof(float));
        for (int m = 0; m < M_COUNT; m++) {
            if (!want[m]) continue;
            double mbits[MAXBITS];
            size_t nmb = 0;
            if (m == M_QJL) mbits[nmb++] = 1.0; /* the library's QJL is 1 bit only */
            else
                for (size_t b = 0; b < nbits; b++)
                    if (m != M_KIVI || bits[b] == floor(bits[b])) mbits[nmb++] = bits[b];
            for (size_t b = 0; b < nmb; b++) {
                const double t0 = now_s();
                double bpv_k, bpv_v, code_k = 0.0, code_v = 0.0;
                int center = 0;
                uint32_t sinks = 0;
                tq_kv *kv = NULL;
                w.kv = NULL;
                w.okv = NULL;
                if (m == M_KIVI) {
                    const uint32_t ib = (uint32_t)mbits[b];
                    memcpy(kdeq, ly.k, T * H * D * sizeof(float));
                    for (size_t g = 0; g + KIVI_GROUP <= T; g += KIVI_GROUP)
                        for (int c = 0; c < H * D; c++) fake_asym(kdeq + g * H * D + c, KIVI_GROUP, H * D, ib);
                    for (size_t i = 0; i < T * H * D; i++) kres[i] = f16r(ly.k[i]);
                    memcpy(vdec, ly.v, T * H * D * sizeof(float));
                    for (size_t t = 0; t < T; t++)
                        for (int g = 0; g < H * D; g += KIVI_GROUP) fake_asym(vdec + t * H * D + g, KIVI_GROUP, 1, ib);
                    w.kdeq = kdeq;
                    w.kres = kres;
                    /* bits per key value at position p: quantized groups (b bits + fp16 min and step per
                     * channel per 32 tokens) and the fp16 residual, averaged over the positions */
                    bpv_k = 0.0;
                    for (size_t i = 0; i < npos; i++) {
                        size_t n = (size_t)pos[i] + 1, nf = n / KIVI_GROUP * KIVI_GROUP;
                        bpv_k += ((double)nf * (ib + 32.0 / KIVI_GROUP) + (double)(n - nf) * 16.0) / (double)n;
                    }
                    bpv_k /= (double)npos;
                    bpv_v = ib + 32.0 / KIVI_GROUP;
                } else {
                    tq_kv_config cfg;
                    if (!make_cfg(m, mbits[b], &cfg)) {
                        fprintf(stderr, "tq_kv_quality: %s does not apply at %g bits, skipped\n", method_name[m],
                                mbits[b]);
                        continue;
                    }
                    size_t kb = 0, vb = 0;
                    tq_status st = tq_kv_token_bytes(&cfg, NULL, &kb, &vb);
                    if (st == TQ_OK) st = tq_kv_create(&cfg, &kv);
                    if (st == TQ_OK) st = tq_kv_append(kv, ly.k, ly.v, prompt);
                    if (st == TQ_OK) st = tq_kv_append(kv, ly.k + prompt * H * D, ly.v + prompt * H * D, T - prompt);
                    if (st == TQ_OK) st = tq_kv_attend(kv, qb, npos, QH, pos, (float)SCALE, okv);
                    if (st != TQ_OK) {
                        fprintf(stderr, "tq_kv_quality: %s %g bits, layer %d: %s: %s\n", method_name[m], mbits[b], l,
                                tq_status_str(st), tq_last_error());
                        return 1;
                    }
                    if (decode_side(&cfg.value, ly.v, T, cfg.sinks, prompt, (cfg.center & TQ_KV_CENTER_VALUES) != 0,
                                    vdec))
                        return 1;
                    center = cfg.center;
                    sinks = cfg.sinks;
                    w.kv = kv;
                    w.okv = okv;
                    /* codes and factors (tq_kv_token_bytes), plus the exact float32 sink tokens and the
                     * float32 centers, averaged over the positions */
                    bpv_k = bpv_v = 0.0;
                    for (size_t i = 0; i < npos; i++) {
                        double n = (double)pos[i] + 1.0, ns = sinks < n ? sinks : n;
                        bpv_k += ((n - ns) * kb * 8.0 / D + ns * 32.0 + ((center & 1) ? 32.0 : 0.0)) / n;
                        bpv_v += ((n - ns) * vb * 8.0 / D + ns * 32.0 + ((center & 2) ? 32.0 : 0.0)) / n;
                    }
                    bpv_k /= (double)npos;
                    bpv_v /= (double)npos;
                    code_k = kb * 8.0 / D;
                    code_v = vb * 8.0 / D;
                }
                w.vdec = vdec;
                if (run_work(&w)) return 1;
                tq_kv_free(kv);
                /* reduce in position order (independent of the thread count) */
                pos_acc s;
                memset(&s, 0, sizeof s);
                for (size_t i = 0; i < npos; i++) {
                    const pos_acc *a = &w.acc[i];
                    s.se2 += a->se2;
                    s.sx2 += a->sx2;
                    s.ntok += a->ntok;
                    s.top1 += a->top1;
                    s.top8 += a->top8;
                    s.kl += a->kl;
                    for (int k = 0; k < 3; k++) {
                        s.rel[k] += a->rel[k];
                        s.cos[k] += a->cos[k];
                    }
                    s.chk = a->chk > s.chk ? a->chk : s.chk;
                }
                const double nhp = (double)npos * QH;
                for (int side = 0; side < 3; side++) {
                    const int exact_scores = side == 1;
                    double bpv = side == 0 ? bpv_k : side == 1 ? bpv_v : 0.5 * (bpv_k + bpv_v);
                    double rms = exact_scores ? 0.0 : sqrt(s.se2 / s.ntok);
                    printf("{\"type\":\"quality\",\"layer\":%d,\"method\":\"%s\",\"bits\":%g,\"side\":\"%s\","
                           "\"bpv\":%.4f,\"bpv_k\":%.4f,\"bpv_v\":%.4f,\"logit_rms\":%.6g,\"logit_rel\":%.6g,"
                           "\"top1\":%.6f,\"top8\":%.6f,\"kl\":%.6g,\"out_rel_err\":%.6g,\"out_cos\":%.8f,"
                           "\"positions\":%zu,\"heads\":%d",
                           l, method_name[m], mbits[b], side_name[side], bpv, bpv_k, bpv_v, rms,
                           exact_scores ? 0.0 : rms / sqrt(s.sx2 / s.ntok), exact_scores ? 1.0 : s.top1 / nhp,
                           exact_scores ? 1.0 : s.top8 / nhp, exact_scores ? 0.0 : s.kl / nhp, s.rel[side] / nhp,
                           s.cos[side] / nhp, npos, QH);
                    if (m == M_KIVI) printf(",\"fake_quant\":true");
                    else printf(",\"center\":\"%s\",\"sinks\":%u,\"code_bpv_k\":%.4f,\"code_bpv_v\":%.4f",
                                center_name[center & 3], sinks, code_k, code_v);
                    if (side == 2 && m != M_KIVI) printf(",\"kv_check\":%.3g", s.chk);
                    printf("}\n");
                }
                fflush(stdout);
                fprintf(stderr, "layer %2d  %-20s %4g bits  bpv K %.3f V %.3f  K+V top1 %.4f cos %.6f  KL %.3g%s  "
                                "(%.1f s)\n",
                        l, method_name[m], mbits[b], bpv_k, bpv_v, s.top1 / nhp, s.cos[2] / nhp, s.kl / nhp,
                        m == M_KIVI ? "" : "", now_s() - t0);
                if (m != M_KIVI && s.chk > 1e-2)
                    fprintf(stderr, "tq_kv_quality: WARNING: layer %d %s %g bits: tq_kv_attend differs from float "
                                    "attention over (tq_kv_logits, decoded values) by %.3g (relative)\n",
                            l, method_name[m], mbits[b], s.chk);
            }
        }
        fprintf(stderr, "layer %d done, %.0f s so far\n", l, now_s() - t_start);
        free(vdec);
        free(kdeq);
        free(kres);
        free(okv);
        free(qb);
        free(w.s_ex);
        free(w.p_ex);
        free(w.o_ex);
        free(w.acc);
        tq_free(ly.k);
        tq_free(ly.v);
        tq_free(ly.q);
    }
    free(pos);
    free(off);
    fprintf(stderr, "done in %.0f s\n", now_s() - t_start);
    return 0;
}
