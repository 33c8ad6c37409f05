/*
 * kv_speed.c — decode-attention speed, single thread: tq_kv_attend over a
 * compressed cache side by side with float32 attention and an int8 cache,
 * on a real model's keys, values and queries, plus the memory bandwidth
 * measured in the same run.
 *
 * Why it looks like this
 *   - A decode step reads the whole cache of every layer once, and nothing
 *     of it stays in cache between steps. So the bench holds all L layers
 *     (SmolLM2-135M: 30 layers x 3 KV heads x 64) at context T and times one
 *     step = one query token (9 query heads, GQA 3:1) attending in each layer
 *     in turn; at T = 32k the float32 cache is 1.5 GB, far beyond the 32 MB
 *     L3. Timing a single layer again and again would let float32 run from
 *     the L3 and flatter it.
 *   - Real data: each layer's own post-RoPE keys, values and queries dumped by
 *     bench/data/smollm2_kv.py (4096 tokens). Longer contexts repeat the 4096
 *     real tokens (speed does not depend on the values: no method exits
 *     early); the JSON says how many are unique.
 *   - The baselines are written to be fast, not strawmen: float32 reads each
 *     key and value row once for all G query heads of its KV head, with AVX2
 *     FMA and a vectorized exp; int8 stores per-token symmetric int8 rows with
 *     a float scale (K and V), converted in registers. tq goes through the
 *     public tq_kv_attend with tq_set_threads(1).
 *   - Medians of --reps timed steps after a warm-up step; min and max in the
 *     JSON. Each baseline's output is checked against tq_attention_f32 first.
 *
 * Output: JSON lines on stdout; progress on stderr.
 * Usage: tq_kv_speed --data DIR [--contexts 1024,4096,32768] [--bits 4,3.5,3,2.5,2]
 *                    [--layers L] [--reps R] [--bw-mib M]
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tq.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))
#else
#define AVX2
#endif

enum { H = 3, G = 3, QH = 9, D = 64, MAXCTX = 16, MAXBITS = 16, MAXLAYERS = 64 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- float32 and int8 baselines ---- */

#if defined(__x86_64__)
/* exp for x <= 0 (softmax weights), |rel err| < 2e-7: 2^k * p(r), r in [-ln2/2, ln2/2]. */
AVX2 static inline __m256 exp_ps(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

AVX2 static inline float hsum(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Softmax weights over s[0..n) for G interleaved queries (s[t*G+g]), in place; l receives the sums. */
AVX2 static void softmax_g(float *s, size_t n, float *l) {
    float m[G];
    for (int g = 0; g < G; g++) m[g] = -INFINITY;
    for (size_t t = 0; t < n; t++)
        for (int g = 0; g < G; g++) m[g] = s[t * G + g] > m[g] ? s[t * G + g] : m[g];
    for (size_t t = 0; t < n; t++)
        for (int g = 0; g < G; g++) s[t * G + g] -= m[g];
    size_t i = 0, total = n * G;
    for (; i + 8 <= total; i += 8) _mm256_storeu_ps(s + i, exp_ps(_mm256_loadu_ps(s + i)));
    for (; i < total; i++) s[i] = expf(s[i]);
    for (int g = 0; g < G; g++) l[g] = 0.0f;
    for (size_t t = 0; t < n; t++)
        for (int g = 0; g < G; g++) l[g] += s[t * G + g];
}

/* One KV head: K, V rows at stride H*D; q: G x D; out: G x D; s: n*G scratch. */
AVX2 static void attend_f32_head(const float *K, const float *V, size_t n, const float *q, float scale, float *out,
                                 float *s) {
    __m256 qv[G][D / 8];
    for (int g = 0; g < G; g++)
        for (int j = 0; j < D / 8; j++) qv[g][j] = _mm256_mul_ps(_mm256_loadu_ps(q + g * D + 8 * j), _mm256_set1_ps(scale));
    for (size_t t = 0; t < n; t++) {
        const float *k = K + t * H * D;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
        for (int j = 0; j < D / 8; j++) {
            __m256 kk = _mm256_loadu_ps(k + 8 * j);
            a0 = _mm256_fmadd_ps(qv[0][j], kk, a0);
            a1 = _mm256_fmadd_ps(qv[1][j], kk, a1);
            a2 = _mm256_fmadd_ps(qv[2][j], kk, a2);
        }
        s[t * G] = hsum(a0);
        s[t * G + 1] = hsum(a1);
        s[t * G + 2] = hsum(a2);
    }
    float l[G];
    softmax_g(s, n, l);
    __m256 acc[G][D / 8];
    for (int g = 0; g < G; g++)
        for (int j = 0; j < D / 8; j++) acc[g][j] = _mm256_setzero_ps();
    for (size_t t = 0; t < n; t++) {
        const float *v = V + t * H * D;
        __m256 w0 = _mm256_set1_ps(s[t * G]), w1 = _mm256_set1_ps(s[t * G + 1]), w2 = _mm256_set1_ps(s[t * G + 2]);
        for (int j = 0; j < D / 8; j++) {
            __m256 vv = _mm256_loadu_ps(v + 8 * j);
            acc[0][j] = _mm256_fmadd_ps(w0, vv, acc[0][j]);
            acc[1][j] = _mm256_fmadd_ps(w1, vv, acc[1][j]);
            acc[2][j] = _mm256_fmadd_ps(w2, vv, acc[2][j]);
        }
    }
    for (int g = 0; g < G; g++) {
        __m256 inv = _mm256_set1_ps(1.0f / l[g]);
        for (int j = 0; j < D / 8; j++) _mm256_storeu_ps(out + g * D + 8 * j, _mm256_mul_ps(acc[g][j], inv));
    }
}

/* int8 rows: [t][h] = D int8 then a float scale (68 bytes). */
enum { I8ROW = D + 4 };

AVX2 static inline __m256 i8x8(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)));
}

AVX2 static void attend_i8_head(const int8_t *K, const int8_t *V, size_t n, const float *q, float scale, float *out,
                                float *s) {
    __m256 qv[G][D / 8];
    for (int g = 0; g < G; g++)
        for (int j = 0; j < D / 8; j++) qv[g][j] = _mm256_mul_ps(_mm256_loadu_ps(q + g * D + 8 * j), _mm256_set1_ps(scale));
    for (size_t t = 0; t < n; t++) {
        const int8_t *k = K + t * H * I8ROW;
        float ks;
        memcpy(&ks, k + D, 4);
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
        for (int j = 0; j < D / 8; j++) {
            __m256 kk = i8x8(k + 8 * j);
            a0 = _mm256_fmadd_ps(qv[0][j], kk, a0);
            a1 = _mm256_fmadd_ps(qv[1][j], kk, a1);
            a2 = _mm256_fmadd_ps(qv[2][j], kk, a2);
        }
        s[t * G] = ks * hsum(a0);
        s[t * G + 1] = ks * hsum(a1);
        s[t * G + 2] = ks * hsum(a2);
    }
    float l[G];
    softmax_g(s, n, l);
    __m256 acc[G][D / 8];
    for (int g = 0; g < G; g++)
        for (int j = 0; j < D / 8; j++) acc[g][j] = _mm256_setzero_ps();
    for (size_t t = 0; t < n; t++) {
        const int8_t *v = V + t * H * I8ROW;
        float vs;
        memcpy(&vs, v + D, 4);
        __m256 w0 = _mm256_set1_ps(s[t * G] * vs), w1 = _mm256_set1_ps(s[t * G + 1] * vs),
               w2 = _mm256_set1_ps(s[t * G + 2] * vs);
        for (int j = 0; j < D / 8; j++) {
            __m256 vv = i8x8(v + 8 * j);
            acc[0][j] = _mm256_fmadd_ps(w0, vv, acc[0][j]);
            acc[1][j] = _mm256_fmadd_ps(w1, vv, acc[1][j]);
            acc[2][j] = _mm256_fmadd_ps(w2, vv, acc[2][j]);
        }
    }
    for (int g = 0; g < G; g++) {
        __m256 inv = _mm256_set1_ps(1.0f / l[g]);
        for (int j = 0; j < D / 8; j++) _mm256_storeu_ps(out + g * D + 8 * j, _mm256_mul_ps(acc[g][j], inv));
    }
}
#endif

static void quantize_i8(const float *x, size_t rows, int8_t *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *v = x + r * D;
        float m = 0.0f;
        for (int j = 0; j < D; j++) m = fabsf(v[j]) > m ? fabsf(v[j]) : m;
        float sc = m > 0.0f ? m / 127.0f : 0.0f;
        int8_t *o = out + r * I8ROW;
        for (int j = 0; j < D; j++) o[j] = (int8_t)(sc > 0.0f ? lrintf(v[j] / sc) : 0);
        memcpy(o + D, &sc, 4);
    }
}

/* ---- data ---- */

typedef struct layer {
    float *k, *v, *q; /* real: T0 x H*D, T0 x H*D, T0 x QH*D */
    size_t t0;
} layer;

static int load_layer(const char *dir, int l, layer *ly) {
    char path[4096];
    size_t n[3], dim[3];
    float **dst[3] = {&ly->k, &ly->v, &ly->q};
    const char *part[3] = {"k", "v", "q"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/layer%02d-%s.npy", dir, l, part[i]);
        tq_status s = tq_read_vectors(path, 0, dst[i], &n[i], &dim[i]);
        if (s != TQ_OK) {
            fprintf(stderr, "tq_kv_speed: %s: %s (make it with python3 bench/data/smollm2_kv.py)\n", path,
                    tq_last_error());
            return 1;
        }
    }
    if (dim[0] != H * D || dim[1] != H * D || dim[2] != QH * D || n[0] != n[1] || n[0] != n[2]) {
        fprintf(stderr, "tq_kv_speed: layer %d: unexpected shapes\n", l);
        return 1;
    }
    ly->t0 = n[0];
    return 0;
}

/* rows 0..T-1 of the real tokens, repeating them past t0 */
static void tile(const float *src, size_t t0, size_t T, size_t row, float *dst) {
    for (size_t t = 0; t < T; t++) memcpy(dst + t * row, src + (t % t0) * row, row * sizeof(float));
}

static double bandwidth_gbs(size_t mib, int reps) {
    size_t n = (mib << 20) / sizeof(uint64_t);
    uint64_t *buf = malloc(n * sizeof(uint64_t));
    if (!buf) return 0.0;
    for (size_t i = 0; i < n; i++) buf[i] = i;
    double ts[32];
    volatile uint64_t sink = 0;
    if (reps > 31) reps = 31;
    for (int r = -1; r < reps; r++) {
        double a = now_s();
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 4 <= n; i += 4) {
            s0 += buf[i];
            s1 += buf[i + 1];
            s2 += buf[i + 2];
            s3 += buf[i + 3];
        }
        sink += s0 + s1 + s2 + s3;
        if (r >= 0) ts[r] = now_s() - a;
    }
    free(buf);
    qsort(ts, (size_t)reps, sizeof(double), cmp_d);
    return (double)(n * sizeof(uint64_t)) / ts[reps / 2] / 1e9;
}

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

typedef struct timing {
    double med, min, max;
} timing;

static timing summarize(double *t, int reps) {
    qsort(t, (size_t)reps, sizeof(double), cmp_d);
    timing r = {t[reps / 2], t[0], t[reps - 1]};
    return r;
}

static void emit(const char *method, double bits, size_t T, int L, size_t unique, timing tm, double bytes_tok,
                 double bw) {
    double per_layer = tm.med / L;
    printf("{\"method\":\"%s\",\"bits\":%g,\"context\":%zu,\"layers\":%d,\"unique_tokens\":%zu,"
           "\"step_ms\":%.4f,\"step_ms_min\":%.4f,\"step_ms_max\":%.4f,\"layer_ms\":%.5f,"
           "\"ns_per_token_head\":%.3f,\"bytes_per_token_head\":%.1f,\"gbs\":%.2f,\"bw_fraction\":%.3f}\n",
           method, bits, T, L, unique, tm.med * 1e3, tm.min * 1e3, tm.max * 1e3, per_layer * 1e3,
           per_layer / ((double)T * H) * 1e9, bytes_tok, bytes_tok * T * H * L / tm.med / 1e9,
           bw > 0 ? bytes_tok * T * H * L / tm.med / 1e9 / bw : 0.0);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    double ctx[MAXCTX] = {1024, 4096, 16384, 32768}, bits[MAXBITS] = {4, 3.5, 3, 2.5, 2};
    size_t nctx = 4, nbits = 5;
    int L = 30, reps = 5;
    size_t bw_mib = 1024;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "tq_kv_speed: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--data")) dir = v;
        else if (!strcmp(a, "--contexts")) nctx = parse_list(v, ctx, MAXCTX);
        else if (!strcmp(a, "--bits")) nbits = parse_list(v, bits, MAXBITS);
        else if (!strcmp(a, "--layers")) L = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--bw-mib")) bw_mib = (size_t)atol(v);
        else {
            fprintf(stderr, "tq_kv_speed: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (!dir || nctx == 0 || L < 1 || L > MAXLAYERS || reps < 1 || reps > 64) {
        fprintf(stderr, "usage: tq_kv_speed --data DIR [--contexts 1024,4096] [--bits 4,3.5] [--layers L] "
                        "[--reps R] [--bw-mib M]\n");
        return 2;
    }
#if !defined(__x86_64__)
    fprintf(stderr, "tq_kv_speed: the baselines are written for x86-64 AVX2\n");
    return 1;
#else
    if (tq_set_threads(1) != TQ_OK) return 1;
    layer *ly = calloc((size_t)L, sizeof *ly);
    for (int l = 0; l < L; l++)
        if (load_layer(dir, l, &ly[l])) return 1;
    double bw = bw_mib ? bandwidth_gbs(bw_mib, 5) : 0.0;
    printf("{\"machine\":\"single thread\",\"kernel\":\"%s\",\"build\":\"%s\",\"memory_read_gbs\":%.2f,"
           "\"shape\":{\"layers\":%d,\"kv_heads\":%d,\"q_heads\":%d,\"head_dim\":%d}}\n",
           tq_kernel_name(), tq_build_info(), bw, L, H, QH, D);
    fflush(stdout);
    double *times = malloc(sizeof(double) * (size_t)(reps + 1));
    for (size_t c = 0; c < nctx; c++) {
        size_t T = (size_t)ctx[c];
        size_t unique = T < ly[0].t0 ? T : ly[0].t0;
        float *out = malloc(QH * D * sizeof(float)), *ref = malloc(QH * D * sizeof(float));
        float *s = malloc(T * G * sizeof(float));
        /* the query of a decode step: the last real query row of each layer */
        /* float32 */
        float **kf = calloc((size_t)L, sizeof *kf), **vf = calloc((size_t)L, sizeof *vf);
        for (int l = 0; l < L; l++) {
            kf[l] = malloc(T * H * D * sizeof(float));
            vf[l] = malloc(T * H * D * sizeof(float));
            if (!kf[l] || !vf[l]) {
                fprintf(stderr, "tq_kv_speed: out of memory at context %zu\n", T);
                return 1;
            }
            tile(ly[l].k, ly[l].t0, T, H * D, kf[l]);
            tile(ly[l].v, ly[l].t0, T, H * D, vf[l]);
        }
        const float scale = 0.125f;
        /* check the baseline once against the library's float reference */
        const float *q0 = ly[0].q + (unique - 1) * QH * D;
        for (int h = 0; h < H; h++) attend_f32_head(kf[0] + h * D, vf[0] + h * D, T, q0 + h * G * D, scale, out + h * G * D, s);
        if (tq_attention_f32(kf[0], vf[0], T, H, D, q0, 1, QH, NULL, scale, ref) != TQ_OK) return 1;
        double err = 0.0;
        for (int i = 0; i < QH * D; i++) err = fmax(err, fabs(out[i] - ref[i]));
        fprintf(stderr, "context %zu: float32 baseline vs reference max diff %.2g\n", T, err);
        for (int r = -1; r < reps; r++) {
            double a = now_s();
            for (int l = 0; l < L; l++) {
                const float *q = ly[l].q + (unique - 1) * QH * D;
                for (int h = 0; h < H; h++)
                    attend_f32_head(kf[l] + h * D, vf[l] + h * D, T, q + h * G * D, scale, out + h * G * D, s);
            }
            if (r >= 0) times[r] = now_s() - a;
        }
        emit("float32", 32, T, L, unique, summarize(times, reps), 2.0 * D * 4, bw);
        /* int8 */
        int8_t **ki = calloc((size_t)L, sizeof *ki), **vi = calloc((size_t)L, sizeof *vi);
        for (int l = 0; l < L; l++) {
            ki[l] = malloc(T * H * I8ROW);
            vi[l] = malloc(T * H * I8ROW);
            quantize_i8(kf[l], T * H, ki[l]);
            quantize_i8(vf[l], T * H, vi[l]);
            free(kf[l]);
            free(vf[l]);
        }
        for (int r = -1; r < reps; r++) {
            double a = now_s();
            for (int l = 0; l < L; l++) {
                const float *q = ly[l].q + (unique - 1) * QH * D;
                for (int h = 0; h < H; h++)
                    attend_i8_head(ki[l] + h * I8ROW, vi[l] + h * I8ROW, T, q + h * G * D, scale, out + h * G * D, s);
            }
            if (r >= 0) times[r] = now_s() - a;
        }
        emit("int8", 8 + 32.0 / D, T, L, unique, summarize(times, reps), 2.0 * I8ROW, bw);
        for (int l = 0; l < L; l++) {
            free(ki[l]);
            free(vi[l]);
        }
        free(ki);
        free(vi);
        free(kf);
        free(vf);
        /* tq at each bit width (keys and values alike, the library's defaults) */
        for (size_t b = 0; b < nbits; b++) {
            tq_kv **kv = calloc((size_t)L, sizeof *kv);
            float *buf = malloc(ly[0].t0 * H * D * sizeof(float) * 2);
            size_t kb = 0, vb = 0;
            for (int l = 0; l < L; l++) {
                tq_kv_config cfg;
                tq_kv_config_init(&cfg, H, D, bits[b], bits[b]);
                cfg.capacity = (uint32_t)T;
                if (tq_kv_create(&cfg, &kv[l]) != TQ_OK || tq_kv_token_bytes(&cfg, NULL, &kb, &vb) != TQ_OK) {
                    fprintf(stderr, "tq_kv_speed: %s\n", tq_last_error());
                    return 1;
                }
                for (size_t t = 0; t < T; t += ly[l].t0) {
                    size_t m = T - t < ly[l].t0 ? T - t : ly[l].t0;
                    if (tq_kv_append(kv[l], ly[l].k, ly[l].v, m) != TQ_OK) {
                        fprintf(stderr, "tq_kv_speed: append: %s\n", tq_last_error());
                        return 1;
                    }
                }
            }
            for (int r = -1; r < reps; r++) {
                double a = now_s();
                for (int l = 0; l < L; l++) {
                    const float *q = ly[l].q + (unique - 1) * QH * D;
                    if (tq_kv_attend(kv[l], q, 1, QH, NULL, scale, out) != TQ_OK) {
                        fprintf(stderr, "tq_kv_speed: attend: %s\n", tq_last_error());
                        return 1;
                    }
                }
                if (r >= 0) times[r] = now_s() - a;
            }
            char name[32];
            snprintf(name, sizeof name, "tq mse %g", bits[b]);
            emit(name, (double)(kb + vb) * 8.0 / (2.0 * D), T, L, unique, summarize(times, reps), (double)(kb + vb),
                 bw);
            for (int l = 0; l < L; l++) tq_kv_free(kv[l]);
            free(kv);
            free(buf);
        }
        free(out);
        free(ref);
        free(s);
    }
    free(times);
    for (int l = 0; l < L; l++) {
        tq_free(ly[l].k);
        tq_free(ly[l].v);
        tq_free(ly[l].q);
    }
    free(ly);
    return 0;
#endif
}
