/*
 * speed_bench.c — single-thread speed of tq's encode, query preparation and
 * scan, plus the machine's memory bandwidth measured in the same run.
 *
 * Why it looks like this
 *   - Public API only (tq.h), like tools/tq.c: it measures what a user gets.
 *   - One process measures everything the report divides by: a read-sum over a
 *     buffer much larger than the last-level cache and a copy test give the
 *     memory limit, so encode input GB/s and scan code GB/s can be stated as a
 *     fraction of it. The figures come from the same minute on the same cores.
 *   - Medians, never best-of: the machine this runs on is shared (2 cores,
 *     other jobs), and a median of >= 5 timed repeats after a warm-up is the
 *     honest figure there. Min and max go in the JSON too.
 *   - A repeat of encode is sized by time, not by count: a warm-up call
 *     measures the rate, then each repeat encodes as many rows as fit in
 *     --encode-s seconds (capped at N). A slow path (a dense d x d rotation)
 *     is then still measured without taking minutes; the row count is printed.
 *   - Scan needs N records. If encoding all N would take longer than
 *     --fill-s, the first M encoded records are repeated to fill N and the
 *     JSON says so ("scan_unique"): scan speed does not depend on the values
 *     of the codes (no early exit), only on their count and size.
 *   - Scan is timed per query: tq_query_set (query preparation), tq_score
 *     over N records (IP), and a top-10 selection over the scores (what a
 *     FAISS search with k = 10 also does). Medians over queries.
 *   - Threads: the library's thread count is set to 1 when it has that API
 *     (tq_set_threads, declared weak so this file builds before and after it
 *     lands); the JSON records what was set.
 *
 * Output: JSON lines on stdout, one object per measurement; progress and
 * errors on stderr. Exit status 0 on success, 1 on failure, 2 on bad usage.
 *
 * Usage: tq_speed_bench (--data FILE [--queries FILE] | --random DIM N) [options]
 *   see usage() below.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tq.h>

/* Thread control arrived after this harness; weak so both builds link. */
#if defined(__GNUC__) && !defined(_WIN32)
extern tq_status tq_set_threads(uint32_t n) __attribute__((weak));
extern uint32_t tq_get_threads(void) __attribute__((weak));
#define TQ_HAVE_WEAK 1
#else
#define TQ_HAVE_WEAK 0
#endif

#define MAX_CONFIGS 32
#define TOPK 10

typedef struct bench_config {
    char name[64];
    tq_config cfg;
} bench_config;

typedef struct options {
    const char *data, *queries, *label;
    uint32_t random_dim;
    size_t random_n, max_rows, nq;
    int normalize, reps, do_bw, do_scan, do_index;
    double encode_s, fill_s;
    size_t bw_mib;
    uint64_t seed;
    bench_config configs[MAX_CONFIGS];
    int nconfigs;
} options;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* The start of one result line: {"type":TYPE,"label":LABEL,"config":CONFIG (the caller continues it). */
static void json_head(FILE *f, const char *type, const char *label, const char *config) {
    fprintf(f, "{\"type\":");
    json_str(f, type);
    fprintf(f, ",\"label\":");
    json_str(f, label);
    fprintf(f, ",\"config\":");
    json_str(f, config);
}

static int lib_fail(tq_status s, const char *what) {
    fprintf(stderr, "tq_speed_bench: %s: %s: %s\n", what, tq_status_str(s), tq_last_error());
    return 1;
}

/* The CPU model from /proc/cpuinfo ("unknown" elsewhere). */
static void cpu_model(char *out, size_t cap) {
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ' || *p == '\t') p++;
                p[strcspn(p, "\n")] = 0;
                snprintf(out, cap, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

/* ---- deterministic random unit vectors (splitmix64 + Box-Muller) ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return ((double)(splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

static float *random_unit(size_t n, uint32_t dim, uint64_t seed) {
    float *x = malloc(sizeof(float) * n * dim);
    if (!x) return NULL;
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * dim;
        double ss = 0;
        for (uint32_t j = 0; j < dim; j += 2) {
            double u1 = uniform01(&s), u2 = uniform01(&s);
            double rad = sqrt(-2.0 * log(u1));
            r[j] = (float)(rad * cos(6.283185307179586 * u2));
            if (j + 1 < dim) r[j + 1] = (float)(rad * sin(6.283185307179586 * u2));
        }
        for (uint32_t j = 0; j < dim; j++) ss += (double)r[j] * r[j];
        float inv = (float)(1.0 / sqrt(ss));
        for (uint32_t j = 0; j < dim; j++) r[j] *= inv;
    }
    return x;
}

static void normalize_rows(float *x, size_t n, size_t dim) {
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * dim;
        double ss = 0;
        for (size_t j = 0; j < dim; j++) ss += (double)r[j] * r[j];
        if (ss > 0) {
            float inv = (float)(1.0 / sqrt(ss));
            for (size_t j = 0; j < dim; j++) r[j] *= inv;
        }
    }
}

/* ---- memory bandwidth ---- */

/* Read-sum over a buffer much larger than the LLC, and a copy between two
 * halves-size buffers. GB = 1e9 bytes. Copy is counted STREAM-style: bytes
 * read + bytes written. Medians of `reps` passes after one warm-up pass that
 * also faults the pages in. */
static int measure_bandwidth(size_t mib, int reps, FILE *out) {
    size_t bytes = mib << 20;
    size_t n = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(bytes);
    if (!buf) {
        fprintf(stderr, "tq_speed_bench: cannot allocate %zu MiB for the bandwidth test\n", mib);
        return 1;
    }
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    double *tr = malloc(sizeof(double) * (size_t)(reps + 1)), *tc = malloc(sizeof(double) * (size_t)(reps + 1));
    if (!tr || !tc) {
        free(buf), free(tr), free(tc);
        return 1;
    }
    volatile uint64_t sink = 0;
    for (int r = -1; r < reps; r++) {
        double t0 = now_s();
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 4 <= n; i += 4) {
            s0 += buf[i];
            s1 += buf[i + 1];
            s2 += buf[i + 2];
            s3 += buf[i + 3];
        }
        sink += s0 + s1 + s2 + s3;
        double t = now_s() - t0;
        if (r >= 0) tr[r] = t;
    }
    /* copy: first half -> second half */
    size_t half = bytes / 2;
    uint8_t *src = (uint8_t *)buf, *dst = (uint8_t *)buf + half;
    for (int r = -1; r < reps; r++) {
        double t0 = now_s();
        memcpy(dst, src, half);
        sink += dst[half - 1];
        double t = now_s() - t0;
        if (r >= 0) tc[r] = t;
    }
    double rmin = 1e300, cmin = 1e300;
    for (int r = 0; r < reps; r++) {
        if (tr[r] < rmin) rmin = tr[r];
        if (tc[r] < cmin) cmin = tc[r];
    }
    double rmed = median(tr, (size_t)reps), cmed = median(tc, (size_t)reps);
    fprintf(out,
            "{\"type\":\"membw\",\"buffer_mib\":%zu,\"reps\":%d,\"read_gbs\":%.3f,\"read_gbs_best\":%.3f,"
            "\"copy_gbs\":%.3f,\"copy_gbs_best\":%.3f,\"copy_convention\":\"bytes read + bytes written\","
            "\"threads\":1}\n",
            mib, reps, (double)bytes / rmed / 1e9, (double)bytes / rmin / 1e9, 2.0 * (double)half / cmed / 1e9,
            2.0 * (double)half / cmin / 1e9);
    fflush(out);
    free(buf), free(tr), free(tc);
    (void)sink; /* volatile: keeps the sums and the copy from being optimized away */
    return 0;
}

/* ---- config parsing: variant:bits:rotation[:extra...] ---- */

static int parse_config(const char *spec, uint32_t dim, bench_config *bc) {
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s", spec);
    snprintf(bc->name, sizeof bc->name, "%s", spec);
    char *save = NULL;
    char *variant = strtok_r(tmp, ":", &save);
    char *bits = strtok_r(NULL, ":", &save);
    char *rot = strtok_r(NULL, ":", &save);
    if (!variant || !bits) return -1;
    char *end = NULL;
    long b = strtol(bits, &end, 10);
    if (*end || b < 1 || b > 8) return -1;
    tq_config_init(&bc->cfg, dim, (uint32_t)b);
    if (strcmp(variant, "mse") == 0) bc->cfg.variant = TQ_VARIANT_MSE;
    else if (strcmp(variant, "prod") == 0) bc->cfg.variant = TQ_VARIANT_PROD;
    else if (strcmp(variant, "qjl") == 0) bc->cfg.variant = TQ_VARIANT_QJL;
    else if (strcmp(variant, "uniform") == 0) bc->cfg.variant = TQ_VARIANT_UNIFORM;
    else return -1;
    if (rot) {
        if (strcmp(rot, "hadamard") == 0) bc->cfg.rotation = TQ_ROTATION_HADAMARD;
        else if (strcmp(rot, "dense") == 0) bc->cfg.rotation = TQ_ROTATION_DENSE;
        else if (strcmp(rot, "none") == 0) bc->cfg.rotation = TQ_ROTATION_NONE;
        else return -1;
    }
    if (bc->cfg.variant == TQ_VARIANT_PROD || bc->cfg.variant == TQ_VARIANT_QJL)
        bc->cfg.qjl = TQ_QJL_STRUCTURED; /* the recommended QJL; ":qjl-dense" selects the paper's */
    char *x;
    while ((x = strtok_r(NULL, ":", &save)) != NULL) {
        if (strcmp(x, "plain") == 0) bc->cfg.norm = TQ_NORM_PLAIN;
        else if (strcmp(x, "unit") == 0) bc->cfg.norm = TQ_NORM_UNIT;
        else if (strcmp(x, "unbiased") == 0) bc->cfg.norm = TQ_NORM_UNBIASED;
        else if (strcmp(x, "qjl-dense") == 0) bc->cfg.qjl = TQ_QJL_DENSE;
        else if (strcmp(x, "qjl-structured") == 0) bc->cfg.qjl = TQ_QJL_STRUCTURED;
        else if (strncmp(x, "rounds=", 7) == 0) bc->cfg.rounds = (uint32_t)strtoul(x + 7, NULL, 10);
        else return -1;
    }
    return 0;
}

static const char *norm_name(tq_norm_mode m) {
    return m == TQ_NORM_UNBIASED ? "unbiased" : m == TQ_NORM_UNIT ? "unit" : "plain";
}

/* ---- top-k over scores (k small; a sorted insertion list) ---- */

static float topk_select(const float *s, size_t n, size_t *idx) {
    float best[TOPK];
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        float v = s[i];
        if (cnt == TOPK && v <= best[TOPK - 1]) continue;
        size_t j = cnt < TOPK ? cnt++ : TOPK - 1;
        while (j > 0 && best[j - 1] < v) {
            best[j] = best[j - 1];
            idx[j] = idx[j - 1];
            j--;
        }
        best[j] = v;
        idx[j] = i;
    }
    return cnt ? best[0] : 0.0f;
}

/* ---- the index: what a user's search costs (tq_index_search) ---- */

/*
 * tq_index_search is the path a user of the index gets: the blocked fast-scan
 * (in-register 4-bit lookup tables, uint8 sums) over every vector, then exact
 * scoring from the codes of a shortlist, then the top k. tq_score above is
 * the exact scorer alone. The index is filled with the same N rows (the first
 * `unique` rows repeated when encoding all of them would take too long; a
 * search does the same work whatever the values). Timed: one query per call
 * (the median over queries), and all queries in one call (the index groups
 * queries so a block of codes is read once for several of them).
 */
static int bench_index(const options *o, const bench_config *bc, const float *x, size_t n, size_t unique,
                       size_t dim, const float *qv, size_t nq, double read_gbs, FILE *out) {
    tq_index_config icfg;
    tq_index_config_init(&icfg, (uint32_t)dim, bc->cfg.bits);
    icfg.quant = bc->cfg;
    icfg.metric = TQ_INDEX_IP;
    icfg.rerank = TQ_RERANK_NONE;
    tq_index *ix = NULL;
    tq_status s = tq_index_create(&icfg, &ix);
    if (s != TQ_OK) return lib_fail(s, bc->name);
    double t0 = now_s();
    for (size_t i = 0; i < n && s == TQ_OK; i += unique) {
        size_t c = n - i < unique ? n - i : unique;
        s = tq_index_add(ix, x, c, NULL, NULL);
    }
    double add_s = now_s() - t0;
    int64_t *ids = malloc(sizeof(int64_t) * TOPK * (nq + 1));
    double *t1 = malloc(sizeof(double) * (nq + 1));
    if (s != TQ_OK || !ids || !t1) {
        if (s == TQ_OK) fprintf(stderr, "tq_speed_bench: out of memory for %s (index)\n", bc->name);
        else lib_fail(s, bc->name);
        tq_index_free(ix), free(ids), free(t1);
        return 1;
    }
    tq_index_memory mem;
    s = tq_index_memory_usage(ix, &mem);
    /* warm-up: one query, then one batch */
    if (s == TQ_OK) s = tq_index_search(ix, qv, 1, TOPK, NULL, ids, NULL);
    if (s == TQ_OK) s = tq_index_search(ix, qv, nq, TOPK, NULL, ids, NULL);
    for (size_t i = 0; i < nq && s == TQ_OK; i++) {
        double a = now_s();
        s = tq_index_search(ix, qv + i * dim, 1, TOPK, NULL, ids, NULL);
        t1[i] = now_s() - a;
    }
    double batch[5];
    int nb = 5;
    for (int r = 0; r < nb && s == TQ_OK; r++) {
        double a = now_s();
        s = tq_index_search(ix, qv, nq, TOPK, NULL, ids, NULL);
        batch[r] = (now_s() - a) / (double)nq;
    }
    if (s != TQ_OK) {
        lib_fail(s, bc->name);
        tq_index_free(ix), free(ids), free(t1);
        return 1;
    }
    double one = median(t1, nq), many = median(batch, (size_t)nb);
    double bpv = (double)mem.codes / (double)n;
    double gbs = (double)mem.codes / one / 1e9;
    json_head(out, "tq_index_search", o->label, bc->name);
    fprintf(out,
            ",\"dim\":%zu,\"n\":%zu,\"scan_unique\":%zu,\"nq\":%zu,\"index_bytes_per_vector\":%.2f,"
            "\"index_memory_total\":%llu,\"center\":\"first\",\"rerank\":\"none\",\"add_s\":%.4f,"
            "\"search_ms_per_query\":%.4f,\"batch_ms_per_query\":%.4f,\"batch_reps\":%d,\"codes_per_s\":%.1f,"
            "\"search_code_gbs\":%.4f,\"search_frac_read_bw\":%.4f,\"k\":%d,\"kernel\":",
            dim, n, unique, nq, bpv, (unsigned long long)mem.total, add_s, one * 1e3, many * 1e3, nb,
            (double)n / one, gbs, read_gbs > 0 ? gbs / read_gbs : 0.0, TOPK);
    json_str(out, tq_kernel_name());
    fprintf(out, "}\n");
    fflush(out);
    tq_index_free(ix), free(ids), free(t1);
    return 0;
}

/* ---- one config ---- */

static int bench_one(const options *o, const bench_config *bc, const float *x, size_t n, size_t dim,
                     const float *qv, size_t nq, double read_gbs, FILE *out) {
    tq_quantizer *q = NULL;
    double t0 = now_s();
    tq_status s = tq_quantizer_create(&bc->cfg, &q);
    double create_s = now_s() - t0;
    if (s != TQ_OK) return lib_fail(s, bc->name);
    size_t cs = tq_quantizer_code_size(q);
    double bpv = tq_quantizer_bits_per_value(q);
    uint8_t *codes = malloc(cs * n);
    float *scores = malloc(sizeof(float) * n);
    double *times = malloc(sizeof(double) * (size_t)(o->reps > (int)nq ? o->reps : (int)nq + 1));
    double *tprep = malloc(sizeof(double) * (nq + 1)), *ttopk = malloc(sizeof(double) * (nq + 1));
    if (!codes || !scores || !times || !tprep || !ttopk) {
        fprintf(stderr, "tq_speed_bench: out of memory for %s\n", bc->name);
        tq_quantizer_free(q), free(codes), free(scores), free(times), free(tprep), free(ttopk);
        return 1;
    }
    /* Touch every page before anything is timed (first-touch faults are not encode time). */
    memset(codes, 0, cs * n);
    memset(scores, 0, sizeof(float) * n);

    /* Warm-up: encode rows until ~0.1 s (or all) to learn the rate. */
    size_t w = n < 256 ? n : 256;
    double tw = 0;
    for (;;) {
        t0 = now_s();
        s = tq_encode(q, x, w, codes);
        tw = now_s() - t0;
        if (s != TQ_OK) goto fail;
        if (tw >= 0.05 || w == n) break;
        w = w * 4 > n ? n : w * 4;
    }
    double rate = (double)w / (tw > 1e-9 ? tw : 1e-9);
    size_t m = (size_t)(rate * o->encode_s);
    if (m < 1) m = 1;
    if (m > n) m = n;
    for (int r = 0; r < o->reps; r++) {
        t0 = now_s();
        s = tq_encode(q, x, m, codes);
        times[r] = now_s() - t0;
        if (s != TQ_OK) goto fail;
    }
    double tmin = 1e300, tmax = 0;
    for (int r = 0; r < o->reps; r++) {
        if (times[r] < tmin) tmin = times[r];
        if (times[r] > tmax) tmax = times[r];
    }
    double tmed = median(times, (size_t)o->reps);
    double vps = (double)m / tmed;
    double in_gbs = vps * (double)dim * sizeof(float) / 1e9;
    json_head(out, "tq_encode", o->label, bc->name);
    fprintf(out,
            ",\"variant\":%d,\"bits\":%u,\"rotation\":%d,\"rounds\":%u,\"norm\":\"%s\",\"qjl\":%d,\"dim\":%zu,"
            "\"code_bytes\":%zu,\"bits_per_value\":%.4f,\"create_ms\":%.3f,\"rows_per_rep\":%zu,\"reps\":%d,"
            "\"encode_s_median\":%.6f,\"encode_s_min\":%.6f,\"encode_s_max\":%.6f,\"encode_vps\":%.1f,"
            "\"encode_in_gbs\":%.4f,\"encode_frac_read_bw\":%.4f,\"kernel\":",
            (int)bc->cfg.variant, bc->cfg.bits, (int)bc->cfg.rotation, bc->cfg.rounds ? bc->cfg.rounds : 2,
            norm_name(bc->cfg.norm), (int)bc->cfg.qjl, dim, cs, bpv, create_s * 1e3, m, o->reps, tmed, tmin, tmax,
            vps, in_gbs, read_gbs > 0 ? in_gbs / read_gbs : 0.0);
    json_str(out, tq_kernel_name());
    fprintf(out, "}\n");
    fflush(out);

    if (!o->do_scan || nq == 0) goto done;

    /* Fill all n records: encode the rest if it fits in fill_s, else repeat. */
    size_t unique = m;
    if (m < n) {
        double est = (double)(n - m) / vps;
        if (est <= o->fill_s) {
            s = tq_encode(q, x + m * dim, n - m, codes + m * cs);
            if (s != TQ_OK) goto fail;
            unique = n;
        } else {
            for (size_t i = m; i < n; i += m) memcpy(codes + i * cs, codes, (n - i < m ? n - i : m) * cs);
        }
    }

    tq_query *pq = NULL;
    s = tq_query_create(q, &pq);
    if (s != TQ_OK) goto fail;
    size_t idx[TOPK];
    float sink = 0;
    /* warm-up query */
    s = tq_query_set(pq, qv);
    if (s == TQ_OK) s = tq_score(q, pq, TQ_METRIC_IP, codes, n, scores);
    if (s != TQ_OK) {
        tq_query_free(pq);
        goto fail;
    }
    for (size_t i = 0; i < nq; i++) {
        double a = now_s();
        s = tq_query_set(pq, qv + i * dim);
        double b = now_s();
        if (s == TQ_OK) s = tq_score(q, pq, TQ_METRIC_IP, codes, n, scores);
        double c = now_s();
        sink += topk_select(scores, n, idx);
        double d = now_s();
        if (s != TQ_OK) {
            tq_query_free(pq);
            goto fail;
        }
        tprep[i] = b - a;
        times[i] = c - b;
        ttopk[i] = d - c;
    }
    tq_query_free(pq);
    double prep_med = median(tprep, nq), score_med = median(times, nq), topk_med = median(ttopk, nq);
    double cps = (double)n / score_med;
    double code_gbs = cps * (double)cs / 1e9;
    json_head(out, "tq_scan", o->label, bc->name);
    fprintf(out,
            ",\"dim\":%zu,\"n\":%zu,\"scan_unique\":%zu,\"nq\":%zu,\"code_bytes\":%zu,\"metric\":\"ip\","
            "\"query_prep_us\":%.3f,\"score_ms_per_query\":%.4f,\"topk_ms_per_query\":%.4f,"
            "\"scan_ms_per_query\":%.4f,\"codes_per_s\":%.1f,\"scan_code_gbs\":%.4f,\"scan_frac_read_bw\":%.4f,"
            "\"k\":%d,\"kernel\":",
            dim, n, unique, nq, cs, prep_med * 1e6, score_med * 1e3, topk_med * 1e3,
            (prep_med + score_med + topk_med) * 1e3, cps, code_gbs, read_gbs > 0 ? code_gbs / read_gbs : 0.0, TOPK);
    json_str(out, tq_kernel_name());
    fprintf(out, ",\"sink\":%.3g}\n", (double)sink);
    fflush(out);

    if (o->do_index && bench_index(o, bc, x, n, unique, dim, qv, nq, read_gbs, out) != 0) goto fail_quiet;

done:
    tq_quantizer_free(q), free(codes), free(scores), free(times), free(tprep), free(ttopk);
    return 0;
fail:
    lib_fail(s, bc->name);
fail_quiet:
    tq_quantizer_free(q), free(codes), free(scores), free(times), free(tprep), free(ttopk);
    return 1;
}

static void usage(void) {
    fprintf(stderr,
            "usage: tq_speed_bench (--data FILE [--queries FILE] | --random DIM N) [options]\n"
            "  --data FILE        base vectors (.fvecs or .npy float32)\n"
            "  --queries FILE     query vectors (default: the first --nq base rows)\n"
            "  --random DIM N     N random unit vectors in R^DIM (theory-style scaling only)\n"
            "  --max-rows N       read at most N base rows\n"
            "  --normalize        scale every base and query row to unit length\n"
            "  --configs LIST     comma list of variant:bits[:rotation[:norm|qjl-dense|rounds=R]]\n"
            "                     (default mse:2:hadamard,mse:4:hadamard,prod:3:hadamard)\n"
            "  --nq N             queries timed for scan (default 50)\n"
            "  --reps R           timed encode repeats after the warm-up (default 7, at least 5)\n"
            "  --encode-s S       seconds one encode repeat aims at (default 0.5)\n"
            "  --fill-s S         encode all N for scan only if it takes <= S s, else repeat codes (default 30)\n"
            "  --bw-mib M         bandwidth buffer in MiB (default 1024); --no-bw skips it\n"
            "  --no-scan          encode only\n"
            "  --no-index         skip the index search timing (tq_index_search: fast-scan + shortlist)\n"
            "  --label NAME       dataset label written into every JSON line\n"
            "  --seed S           seed of the quantizers and of --random (default 0)\n");
}

int main(int argc, char **argv) {
    options o;
    memset(&o, 0, sizeof o);
    o.nq = 50, o.reps = 7, o.do_bw = 1, o.do_scan = 1, o.do_index = 1, o.encode_s = 0.5, o.fill_s = 30, o.bw_mib = 1024;
    o.label = "";
    const char *configs = "mse:2:hadamard,mse:4:hadamard,prod:3:hadamard";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), exit(2), ""))
        if (strcmp(a, "--data") == 0) o.data = NEXT();
        else if (strcmp(a, "--queries") == 0) o.queries = NEXT();
        else if (strcmp(a, "--random") == 0) {
            o.random_dim = (uint32_t)strtoul(NEXT(), NULL, 10);
            o.random_n = (size_t)strtoull(NEXT(), NULL, 10);
        } else if (strcmp(a, "--max-rows") == 0) o.max_rows = (size_t)strtoull(NEXT(), NULL, 10);
        else if (strcmp(a, "--normalize") == 0) o.normalize = 1;
        else if (strcmp(a, "--configs") == 0) configs = NEXT();
        else if (strcmp(a, "--nq") == 0) o.nq = (size_t)strtoull(NEXT(), NULL, 10);
        else if (strcmp(a, "--reps") == 0) o.reps = atoi(NEXT());
        else if (strcmp(a, "--encode-s") == 0) o.encode_s = atof(NEXT());
        else if (strcmp(a, "--fill-s") == 0) o.fill_s = atof(NEXT());
        else if (strcmp(a, "--bw-mib") == 0) o.bw_mib = (size_t)strtoull(NEXT(), NULL, 10);
        else if (strcmp(a, "--no-bw") == 0) o.do_bw = 0;
        else if (strcmp(a, "--no-scan") == 0) o.do_scan = 0;
        else if (strcmp(a, "--no-index") == 0) o.do_index = 0;
        else if (strcmp(a, "--label") == 0) o.label = NEXT();
        else if (strcmp(a, "--seed") == 0) o.seed = (uint64_t)strtoull(NEXT(), NULL, 10);
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            return 0;
        } else {
            fprintf(stderr, "tq_speed_bench: unknown option %s\n", a);
            usage();
            return 2;
        }
#undef NEXT
    }
    if ((!o.data && !o.random_dim) || (o.data && o.random_dim) || o.reps < 5 || o.encode_s <= 0 ||
        (o.random_dim && (o.random_n == 0 || o.random_dim > TQ_MAX_DIM)) || o.bw_mib < 64) {
        if (o.reps < 5) fprintf(stderr, "tq_speed_bench: --reps must be at least 5\n");
        usage();
        return 2;
    }

    /* configs: checked before any data is loaded; their dim is set once the data is known */
    char *list = strdup(configs), *save = NULL;
    for (char *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        if (o.nconfigs == MAX_CONFIGS || parse_config(c, 0, &o.configs[o.nconfigs]) != 0) {
            fprintf(stderr, "tq_speed_bench: bad config \"%s\"\n", c);
            free(list);
            usage();
            return 2;
        }
        o.configs[o.nconfigs++].cfg.seed = o.seed;
    }
    free(list);

    /* threads: 1 */
    int threads_api = 0;
    uint32_t threads = 1;
#if TQ_HAVE_WEAK
    if (tq_set_threads && tq_get_threads) {
        threads_api = 1;
        if (tq_set_threads(1) != TQ_OK) return lib_fail(TQ_ERR_INVALID_ARG, "tq_set_threads(1)");
        threads = tq_get_threads();
    }
#endif

    char cpu[256];
    cpu_model(cpu, sizeof cpu);

    /* data */
    float *x = NULL, *qv = NULL;
    size_t n = 0, dim = 0, nq = 0;
    int x_lib = 0, q_lib = 0;
    if (o.data) {
        tq_status s = tq_read_vectors(o.data, o.max_rows, &x, &n, &dim);
        if (s != TQ_OK) return lib_fail(s, o.data);
        x_lib = 1;
        if (o.normalize) normalize_rows(x, n, dim);
        if (o.queries) {
            size_t qd = 0;
            s = tq_read_vectors(o.queries, o.nq, &qv, &nq, &qd);
            if (s != TQ_OK) return lib_fail(s, o.queries);
            q_lib = 1;
            if (qd != dim) {
                fprintf(stderr, "tq_speed_bench: queries have dim %zu, base %zu\n", qd, dim);
                return 1;
            }
            if (o.normalize) normalize_rows(qv, nq, dim);
        } else {
            qv = x;
            nq = o.nq < n ? o.nq : n;
        }
    } else {
        dim = o.random_dim, n = o.random_n;
        x = random_unit(n, o.random_dim, o.seed * 2 + 1);
        nq = o.nq;
        qv = random_unit(nq ? nq : 1, o.random_dim, o.seed * 2 + 2);
        if (!x || !qv) {
            fprintf(stderr, "tq_speed_bench: out of memory for %zu x %u vectors\n", n, o.random_dim);
            return 1;
        }
    }

    for (int c = 0; c < o.nconfigs; c++) o.configs[c].cfg.dim = (uint32_t)dim;

    FILE *out = stdout;
    fprintf(out, "{\"type\":\"info\",\"label\":");
    json_str(out, o.label);
    fprintf(out, ",\"build_info\":");
    json_str(out, tq_build_info());
    fprintf(out, ",\"kernel\":");
    json_str(out, tq_kernel_name());
    fprintf(out, ",\"force_isa\":");
    json_str(out, getenv("TQ_FORCE_ISA") ? getenv("TQ_FORCE_ISA") : "");
    fprintf(out, ",\"cpu\":");
    json_str(out, cpu);
    fprintf(out, ",\"data\":");
    json_str(out, o.data ? o.data : "random-unit");
    fprintf(out,
            ",\"n\":%zu,\"dim\":%zu,\"nq\":%zu,\"normalized\":%s,\"threads\":%u,\"threads_api\":%s,"
            "\"reps\":%d,\"encode_s_target\":%.3f}\n",
            n, dim, nq, (o.normalize || !o.data) ? "true" : "false", threads, threads_api ? "true" : "false", o.reps,
            o.encode_s);
    fflush(out);

    double read_gbs = 0;
    if (o.do_bw) {
        /* run it, then read it back from our own line: keep one code path */
        char *bw_line = NULL;
        size_t bw_len = 0;
        FILE *mem = open_memstream(&bw_line, &bw_len);
        if (!mem || measure_bandwidth(o.bw_mib, 5, mem) != 0) return 1;
        fclose(mem);
        fputs(bw_line, out);
        fflush(out);
        const char *p = strstr(bw_line, "\"read_gbs\":");
        if (p) read_gbs = atof(p + 11);
        free(bw_line);
    }

    int rc = 0;
    for (int c = 0; c < o.nconfigs; c++) {
        fprintf(stderr, "tq_speed_bench: %s %s (n=%zu, d=%zu)\n", o.label, o.configs[c].name, n, dim);
        if (bench_one(&o, &o.configs[c], x, n, dim, qv, nq, read_gbs, out) != 0) rc = 1;
    }

    if (x_lib) tq_free(x);
    else free(x);
    if (q_lib) tq_free(qv);
    else if (qv != x) free(qv);
    return rc;
}
