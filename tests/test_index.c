/*
 * test_index.c — tq_index against brute force over the same codes, on the
 * committed Fashion-MNIST fixture (500 base rows, 50 queries):
 *   - with the whole base as shortlist, the index returns exactly the top k
 *     that tq_score over every record gives (ties to the smaller id), for both
 *     storage layouts (blocked 2/4-bit MSE; records for PROD and outlier
 *     splits), for IP, L2 and cosine; float rerank over everything gives the
 *     exact float top k;
 *   - the default shortlist finds nearly all of that top k;
 *   - batches, thread counts, removal and re-adding do not change answers;
 *   - bad input (NaN, duplicate or negative ids, k > n) is refused or padded
 *     and leaves the index as it was;
 *   - save / load / mmap give identical answers and byte-identical files;
 *     every truncation and many bit flips of a file are refused.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tq.h"

static const char *tmp_dir(void) {
    static char dir[400];
    if (!dir[0]) {
        mkdir(TQ_TEST_TMP_DIR, 0777);
        snprintf(dir, sizeof dir, "%s/index-%ld", TQ_TEST_TMP_DIR, (long)getpid());
        mkdir(dir, 0777);
    }
    return dir;
}

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir(), name);
    return buf[k];
}

static float *base, *queries;
static size_t nb, nq, dim;

static void load_fixture(void) {
    size_t d2;
    CHECK_OK(tq_read_vectors(TQ_TEST_DATA_DIR "/fmnist_base_500.fvecs", 0, &base, &nb, &dim));
    CHECK_OK(tq_read_vectors(TQ_TEST_DATA_DIR "/fmnist_queries_50.npy", 0, &queries, &nq, &d2));
    CHECK(d2 == dim && nb == 500 && nq == 50, "fixture shape %zu x %zu, %zu x %zu", nb, dim, nq, d2);
    /* unit rows: the Figure-5 setting; raw pixels would make L2 and IP rank the same way less often */
    for (size_t i = 0; i < nb + nq; i++) {
        float *r = i < nb ? base + i * dim : queries + (i - nb) * dim;
        double s = 0;
        for (size_t j = 0; j < dim; j++) s += (double)r[j] * r[j];
        for (size_t j = 0; j < dim; j++) r[j] = (float)(r[j] / sqrt(s));
    }
}

/* Brute-force top k from scores (larger better unless l2), ties to the smaller id. */
static void topk_ref(const float *scores, const int64_t *ids, size_t n, size_t k, int l2, int64_t *out) {
    char *taken = calloc(n, 1);
    for (size_t r = 0; r < k; r++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            if (taken[i]) continue;
            if (best == SIZE_MAX) { best = i; continue; }
            float a = scores[i], b = scores[best];
            int better = l2 ? a < b : a > b;
            if (better || (a == b && ids[i] < ids[best])) best = i;
        }
        out[r] = best == SIZE_MAX ? -1 : ids[best];
        if (best != SIZE_MAX) taken[best] = 1;
    }
    free(taken);
}

/* The mean of n rows as the index computes a TQ_CENTER_FIRST center. */
static void mean_rows(const float *x, size_t n, float *c) {
    for (size_t j = 0; j < dim; j++) {
        double a = 0;
        for (size_t i = 0; i < n; i++) a += x[i * dim + j];
        c[j] = (float)(a / (double)n);
    }
}

/* The exact-code top k of every query: tq_score over every record of the index's quantizer. With a
 * center c: codes of x - c scored against q - c, plus <x, c> for the inner product (docs: tq_center_mode). */
static void code_truth(const tq_index *ix, const float *x, const int64_t *ids, size_t n, int metric, size_t k,
                       const float *c, int64_t *out) {
    const tq_quantizer *q = tq_index_quantizer(ix);
    size_t cs = tq_quantizer_code_size(q);
    uint8_t *codes = malloc(n * cs);
    float *xs = malloc(n * dim * sizeof(float)), *qs = malloc(dim * sizeof(float)), *sc = malloc(n * sizeof(float));
    float *xc = calloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        /* <x, c> as the index sums it: four double partial sums, the tail into the first */
        double p[4] = {0, 0, 0, 0};
        size_t d4 = dim / 4 * 4;
        for (size_t j = 0; j < dim; j++) {
            xs[i * dim + j] = c ? x[i * dim + j] - c[j] : x[i * dim + j];
            if (c) p[j < d4 ? j % 4 : 0] += (double)x[i * dim + j] * c[j];
        }
        xc[i] = (float)((p[0] + p[1]) + (p[2] + p[3]));
    }
    CHECK_OK(tq_encode(q, xs, n, codes));
    tq_query *pq = NULL;
    CHECK_OK(tq_query_create(q, &pq));
    for (size_t i = 0; i < nq; i++) {
        for (size_t j = 0; j < dim; j++) qs[j] = c ? queries[i * dim + j] - c[j] : queries[i * dim + j];
        CHECK_OK(tq_query_set(pq, qs));
        CHECK_OK(tq_score(q, pq, metric == TQ_INDEX_L2 ? TQ_METRIC_L2 : TQ_METRIC_IP, codes, n, sc));
        if (c && metric != TQ_INDEX_L2)
            for (size_t t = 0; t < n; t++) sc[t] += xc[t];
        topk_ref(sc, ids, n, k, metric == TQ_INDEX_L2, out + i * k);
    }
    free(xc);
    tq_query_free(pq);
    free(codes);
    free(xs);
    free(qs);
    free(sc);
}

static size_t count_equal(const int64_t *a, const int64_t *b, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += a[i] == b[i];
    return c;
}

/* Overlap of result sets, per query (order ignored). */
static double overlap(const int64_t *a, const int64_t *b, size_t nq_, size_t k) {
    size_t hit = 0;
    for (size_t i = 0; i < nq_; i++)
        for (size_t r = 0; r < k; r++)
            for (size_t t = 0; t < k; t++)
                if (a[i * k + r] == b[i * k + t]) { hit++; break; }
    return (double)hit / (double)(nq_ * k);
}

static tq_center_mode make_center = TQ_CENTER_NONE;
static const float *make_center_vec;

static tq_index *make(uint32_t bits, tq_variant v, tq_index_metric m, tq_rerank_kind rr, uint32_t outliers) {
    tq_index_config c;
    tq_index_config_init(&c, (uint32_t)dim, bits);
    CHECK(c.center == TQ_CENTER_FIRST, "centering is the default");
    c.center = make_center;
    c.center_vector = make_center_vec;
    c.quant.variant = v;
    if (v != TQ_VARIANT_MSE) {
        c.quant.norm = TQ_NORM_PLAIN;
        c.quant.qjl = TQ_QJL_STRUCTURED;
    }
    c.quant.seed = 7;
    if (outliers) {
        c.quant.outlier_count = outliers;
        c.quant.outlier_bits = bits + 1;
    }
    c.metric = m;
    c.rerank = rr;
    tq_index *ix = NULL;
    CHECK_OK(tq_index_create(&c, &ix));
    return ix;
}

static const char *metric_name(int m) { return m == TQ_INDEX_IP ? "ip" : m == TQ_INDEX_L2 ? "l2" : "cosine"; }

/* Exact agreement with brute force over the codes when the shortlist is everything. */
static void test_exact(void) {
    const size_t k = 10;
    struct { uint32_t bits; tq_variant v; uint32_t outliers; } qs[] = {
        {4, TQ_VARIANT_MSE, 0}, {2, TQ_VARIANT_MSE, 0}, {3, TQ_VARIANT_MSE, 0},
        {3, TQ_VARIANT_PROD, 0}, {2, TQ_VARIANT_MSE, 64}};
    int64_t *ids = malloc(nb * sizeof(int64_t)), *got = malloc(nq * k * sizeof(int64_t)),
            *want = malloc(nq * k * sizeof(int64_t)), *dflt = malloc(nq * k * sizeof(int64_t));
    for (size_t i = 0; i < nb; i++) ids[i] = (int64_t)i;
    float *mean = malloc(dim * sizeof(float));
    mean_rows(base, nb, mean); /* the rows are unit-norm: the cosine center is the same */
    for (int centered = 0; centered <= 1; centered++)
    for (size_t t = 0; t < sizeof qs / sizeof qs[0]; t++) {
        make_center = centered ? TQ_CENTER_FIRST : TQ_CENTER_NONE;
        for (int m = 0; m <= TQ_INDEX_COSINE; m++) {
            tq_index *ix = make(qs[t].bits, qs[t].v, (tq_index_metric)m, TQ_RERANK_NONE, qs[t].outliers);
            if (!ix) continue;
            CHECK_OK(tq_index_add(ix, base, nb, NULL, NULL));
            CHECK(tq_index_size(ix) == nb, "size");
            tq_search_params p = {(uint32_t)nb, 0};
            CHECK_OK(tq_index_search(ix, queries, nq, k, &p, got, NULL));
            /* cosine on unit rows is IP */
            code_truth(ix, base, ids, nb, m == TQ_INDEX_COSINE ? TQ_INDEX_IP : m, k, centered ? mean : NULL, want);
            size_t eq = count_equal(got, want, nq * k);
            CHECK(eq == nq * k, "bits %u variant %d outliers %u %s centered %d: %zu of %zu equal to brute force",
                  qs[t].bits, (int)qs[t].v, qs[t].outliers, metric_name(m), centered, eq, nq * k);
            CHECK_OK(tq_index_search(ix, queries, nq, k, NULL, dflt, NULL));
            double ov = overlap(dflt, want, nq, k);
            CHECK(ov >= 0.97, "bits %u %s: default shortlist finds %.3f of the exact-code top %zu", qs[t].bits,
                  metric_name(m), ov, k);
            tq_index_free(ix);
        }
    }
    make_center = TQ_CENTER_FIRST;
    /* float rerank of everything: the exact float top k */
    for (int m = 0; m <= TQ_INDEX_L2; m++) {
        tq_index *ix = make(2, TQ_VARIANT_MSE, (tq_index_metric)m, TQ_RERANK_FLOAT, 0);
        CHECK_OK(tq_index_add(ix, base, nb, NULL, NULL));
        tq_search_params p = {(uint32_t)nb, (uint32_t)nb};
        float *sc = malloc(nq * k * sizeof(float)), *all = malloc(nb * sizeof(float));
        CHECK_OK(tq_index_search(ix, queries, nq, k, &p, got, sc));
        for (size_t i = 0; i < nq; i++) {
            for (size_t j = 0; j < nb; j++) {
                double acc = 0;
                for (size_t t = 0; t < dim; t++) {
                    double a = queries[i * dim + t], b = base[j * dim + t];
                    acc += m == TQ_INDEX_L2 ? (a - b) * (a - b) : a * b;
                }
                all[j] = (float)acc;
            }
            topk_ref(all, ids, nb, k, m == TQ_INDEX_L2, want + i * k);
            CHECK(fabsf(sc[i * k] - all[want[i * k]]) <= 1e-5f, "reranked score is the exact one");
        }
        size_t eq = count_equal(got, want, nq * k);
        CHECK(eq == nq * k, "float rerank %s: %zu of %zu equal to exact search", metric_name(m), eq, nq * k);
        /* rerank from a finer code: close to exact float search */
        tq_index_free(ix);
        ix = make(2, TQ_VARIANT_MSE, (tq_index_metric)m, TQ_RERANK_CODE, 0);
        CHECK_OK(tq_index_add(ix, base, nb, NULL, NULL));
        CHECK_OK(tq_index_search(ix, queries, nq, k, &p, got, NULL));
        CHECK(overlap(got, want, nq, k) >= 0.9, "8-bit code rerank %s overlap %.3f", metric_name(m),
              overlap(got, want, nq, k));
        tq_index_memory mem;
        CHECK_OK(tq_index_memory_usage(ix, &mem));
        CHECK(mem.rerank > 0 && mem.total >= mem.codes + mem.rerank, "memory report");
        tq_index_free(ix);
        free(sc);
        free(all);
    }
    /* centering pays on this data: code-only recall@10 of the exact float top 10 rises (2 bits, ip) */
    double ov[2];
    for (int centered = 0; centered <= 1; centered++) {
        make_center = centered ? TQ_CENTER_FIRST : TQ_CENTER_NONE;
        tq_index *ix = make(2, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_FLOAT, 0);
        CHECK_OK(tq_index_add(ix, base, nb, NULL, NULL));
        tq_search_params all = {(uint32_t)nb, (uint32_t)nb};
        CHECK_OK(tq_index_search(ix, queries, nq, k, &all, want, NULL)); /* exact */
        tq_index_free(ix);
        ix = make(2, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, 0);
        CHECK_OK(tq_index_add(ix, base, nb, NULL, NULL));
        CHECK_OK(tq_index_search(ix, queries, nq, k, NULL, got, NULL));
        ov[centered] = overlap(got, want, nq, k);
        tq_index_free(ix);
    }
    CHECK(ov[1] > ov[0], "centered recall@10 %.3f > uncentered %.3f", ov[1], ov[0]);
    make_center = TQ_CENTER_NONE;
    free(mean);
    free(ids);
    free(got);
    free(want);
    free(dflt);
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len + 1);
    if (fread(b, 1, *len, f) != *len) *len = 0;
    fclose(f);
    return b;
}

/* Whether two indexes save to the same bytes. */
static int same_file(const tq_index *x, const tq_index *y) {
    const char *p1 = tmp_path("same1.tqi"), *p2 = tmp_path("same2.tqi");
    size_t l1 = 0, l2 = 0;
    if (tq_index_save(x, p1) != TQ_OK || tq_index_save(y, p2) != TQ_OK) return 0;
    uint8_t *f1 = slurp(p1, &l1), *f2 = slurp(p2, &l2);
    int same = f1 && f2 && l1 == l2 && l1 > 0 && memcmp(f1, f2, l1) == 0;
    free(f1);
    free(f2);
    remove(p1);
    remove(p2);
    return same;
}

/* Batches, threads, ids, removal. */
static void test_updates(void) {
    const size_t k = 8;
    float *given = malloc(dim * sizeof(float));
    mean_rows(base, 100, given); /* any fixed center: results must not depend on batches or removals */
    make_center = TQ_CENTER_GIVEN;
    make_center_vec = given;
    int64_t *a = malloc(nq * k * sizeof(int64_t)), *b = malloc(nq * k * sizeof(int64_t));
    float *sa = malloc(nq * k * sizeof(float)), *sb = malloc(nq * k * sizeof(float));
    tq_index *one = make(4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, 0);
    tq_index *many = make(4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, 0);
    CHECK_OK(tq_index_add(one, base, nb, NULL, NULL));
    for (size_t i = 0; i < nb; i += 37) {
        size_t m = nb - i < 37 ? nb - i : 37;
        int64_t got[37];
        CHECK_OK(tq_index_add(many, base + i * dim, m, NULL, got));
        CHECK(got[0] == (int64_t)i && got[m - 1] == (int64_t)(i + m - 1), "automatic ids continue");
    }
    /* the stored codes do not depend on the threads or on how the rows were cut into batches (partial blocks) */
    CHECK_OK(tq_set_threads(1));
    tq_index *single = make(4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, 0);
    CHECK_OK(tq_index_add(single, base, nb, NULL, NULL));
    CHECK(same_file(one, single), "one batch on two threads saves the same bytes as on one thread");
    CHECK(same_file(one, many), "one batch saves the same bytes as 37-row batches");
    tq_index_free(single);
    CHECK_OK(tq_index_search(one, queries, nq, k, NULL, a, sa));
    CHECK_OK(tq_set_threads(2));
    CHECK_OK(tq_index_search(many, queries, nq, k, NULL, b, sb));
    CHECK(!memcmp(a, b, nq * k * sizeof(int64_t)) && !memcmp(sa, sb, nq * k * sizeof(float)),
          "one batch on one thread == 37-row batches on two threads");
    CHECK_OK(tq_set_threads(0));

    /* bad input leaves the index unchanged */
    size_t before = tq_index_size(one);
    float *bad = malloc(3 * dim * sizeof(float));
    memcpy(bad, base, 3 * dim * sizeof(float));
    bad[dim + 5] = NAN;
    CHECK_STATUS(tq_index_add(one, bad, 3, NULL, NULL), TQ_ERR_NONFINITE);
    int64_t dup[3] = {1000, 1001, 1000}, taken[3] = {1000, 1001, 3}, neg[3] = {1000, -5, 1002};
    memcpy(bad, base, 3 * dim * sizeof(float));
    CHECK_STATUS(tq_index_add(one, bad, 3, dup, NULL), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_index_add(one, bad, 3, taken, NULL), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_index_add(one, bad, 3, neg, NULL), TQ_ERR_INVALID_ARG);
    CHECK(tq_index_size(one) == before, "size unchanged after refused adds");
    {
        /* a NaN in the last row of a large batch: the workers may have stored every other row by the time it is
         * found; the index must still save to the same bytes as before */
        tq_index *twin = make(4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, 0);
        CHECK_OK(tq_index_add(twin, base, 5, NULL, NULL));
        tq_index *ref = make(4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, 0);
        CHECK_OK(tq_index_add(ref, base, 5, NULL, NULL));
        float *late = malloc(nb * dim * sizeof(float));
        memcpy(late, base, nb * dim * sizeof(float));
        late[(nb - 1) * dim + 3] = NAN;
        CHECK_STATUS(tq_index_add(twin, late, nb, NULL, NULL), TQ_ERR_NONFINITE);
        char want[64];
        snprintf(want, sizeof want, "vector row %zu, column 3 is NaN", nb - 1);
        CHECK(strstr(tq_last_error(), want) != NULL, "the message names the batch row: %s", tq_last_error());
        CHECK(same_file(twin, ref), "a refused batch leaves the stored codes as they were");
        free(late);
        tq_index_free(twin);
        tq_index_free(ref);
    }
    CHECK_OK(tq_index_search(one, queries, nq, k, NULL, b, sb));
    CHECK(!memcmp(a, b, nq * k * sizeof(int64_t)), "answers unchanged after refused adds");
    CHECK_STATUS(tq_index_search(one, bad + 0, 1, k, NULL, b, NULL), TQ_OK);
    bad[3] = INFINITY;
    CHECK_STATUS(tq_index_search(one, bad, 1, k, NULL, b, NULL), TQ_ERR_NONFINITE);

    /* remove every third vector; compare with an index built from the rest under the same ids */
    size_t nr = 0, nk = 0, removed = 0;
    int64_t *rm = malloc(nb * sizeof(int64_t)), *keep_ids = malloc(nb * sizeof(int64_t));
    float *keep = malloc(nb * dim * sizeof(float));
    for (size_t i = 0; i < nb; i++) {
        if (i % 3 == 1) {
            rm[nr++] = (int64_t)i;
        } else {
            keep_ids[nk] = (int64_t)i;
            memcpy(keep + nk * dim, base + i * dim, dim * sizeof(float));
            nk++;
        }
    }
    rm[nr] = 99999; /* absent: skipped */
    CHECK_OK(tq_index_remove(one, rm, nr + 1, &removed));
    CHECK(removed == nr && tq_index_size(one) == nk, "removed %zu of %zu", removed, nr);
    CHECK_OK(tq_index_remove(one, rm, nr, &removed));
    CHECK(removed == 0, "removing again removes nothing");
    tq_index *rest = make(4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, 0);
    CHECK_OK(tq_index_add(rest, keep, nk, keep_ids, NULL));
    CHECK_OK(tq_index_search(one, queries, nq, k, NULL, a, sa));
    CHECK_OK(tq_index_search(rest, queries, nq, k, NULL, b, sb));
    CHECK(!memcmp(a, b, nq * k * sizeof(int64_t)) && !memcmp(sa, sb, nq * k * sizeof(float)),
          "after removal == built from the rest");
    int found_removed = 0;
    for (size_t i = 0; i < nq * k; i++) found_removed |= a[i] % 3 == 1;
    CHECK(!found_removed, "no removed id is returned");
    /* re-add the removed ones under their ids: answers of the full index again */
    float *back = malloc(nr * dim * sizeof(float));
    for (size_t r = 0; r < nr; r++) memcpy(back + r * dim, base + (size_t)rm[r] * dim, dim * sizeof(float));
    CHECK_OK(tq_index_add(one, back, nr, rm, NULL));
    tq_index *full = make(4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, 0);
    CHECK_OK(tq_index_add(full, base, nb, NULL, NULL));
    CHECK_OK(tq_index_search(one, queries, nq, k, NULL, a, sa));
    CHECK_OK(tq_index_search(full, queries, nq, k, NULL, b, sb));
    CHECK(!memcmp(a, b, nq * k * sizeof(int64_t)), "removed and re-added == never removed");
    int64_t auto_id;
    CHECK_OK(tq_index_add(one, base, 1, NULL, &auto_id));
    CHECK(auto_id == (int64_t)nb, "automatic id after explicit ones: %lld", (long long)auto_id);

    /* k larger than the index */
    tq_index *small = make(4, TQ_VARIANT_MSE, TQ_INDEX_L2, TQ_RERANK_NONE, 0);
    int64_t r5[5];
    float s5[5];
    CHECK_OK(tq_index_search(small, queries, 1, 5, NULL, r5, s5));
    CHECK(r5[0] == -1 && isnan(s5[0]), "empty index: -1 / NaN");
    CHECK_OK(tq_index_add(small, base, 3, NULL, NULL));
    CHECK_OK(tq_index_search(small, queries, 1, 5, NULL, r5, s5));
    CHECK(r5[2] >= 0 && r5[3] == -1 && r5[4] == -1 && isnan(s5[4]) && s5[0] <= s5[1] && s5[1] <= s5[2],
          "k > n pads with -1, L2 ascending");
    CHECK_STATUS(tq_index_search(NULL, queries, 1, 5, NULL, r5, s5), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_index_add(NULL, base, 1, NULL, NULL), TQ_ERR_INVALID_ARG);
    tq_index_config c;
    tq_index_config_init(&c, (uint32_t)dim, 4);
    c.metric = (tq_index_metric)7;
    tq_index *none = NULL;
    CHECK_STATUS(tq_index_create(&c, &none), TQ_ERR_INVALID_ARG);
    c.metric = TQ_INDEX_IP;
    c.center = TQ_CENTER_GIVEN; /* without a vector */
    CHECK_STATUS(tq_index_create(&c, &none), TQ_ERR_INVALID_ARG);
    float *nanc = calloc(dim, sizeof(float));
    nanc[3] = NAN;
    c.center_vector = nanc;
    CHECK_STATUS(tq_index_create(&c, &none), TQ_ERR_NONFINITE);
    free(nanc);
    /* a failed first add leaves no center behind: the next add computes it from its own rows */
    make_center = TQ_CENTER_FIRST;
    tq_index *fc = make(4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, 0), *fc2 = make(4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE, 0);
    memcpy(bad, base, 3 * dim * sizeof(float));
    bad[7] = NAN;
    CHECK_STATUS(tq_index_add(fc, bad, 3, NULL, NULL), TQ_ERR_NONFINITE);
    int64_t dup2[2] = {4, 4};
    CHECK_STATUS(tq_index_add(fc, base + 10 * dim, 2, dup2, NULL), TQ_ERR_INVALID_ARG);
    CHECK_OK(tq_index_add(fc, base, 200, NULL, NULL));
    CHECK_OK(tq_index_add(fc2, base, 200, NULL, NULL));
    CHECK_OK(tq_index_search(fc, queries, nq, k, NULL, a, sa));
    CHECK_OK(tq_index_search(fc2, queries, nq, k, NULL, b, sb));
    CHECK(!memcmp(a, b, nq * k * sizeof(int64_t)) && !memcmp(sa, sb, nq * k * sizeof(float)),
          "failed first adds leave no trace");
    tq_index_free(fc);
    tq_index_free(fc2);
    CHECK(none == NULL, "no index on failure");

    tq_index_free(one);
    tq_index_free(many);
    tq_index_free(rest);
    tq_index_free(full);
    tq_index_free(small);
    make_center = TQ_CENTER_NONE;
    make_center_vec = NULL;
    free(given);
    free(a);
    free(b);
    free(sa);
    free(sb);
    free(bad);
    free(rm);
    free(keep_ids);
    free(keep);
    free(back);
}


static void spit(const char *path, const uint8_t *b, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "write %s", path);
    if (!f) return;
    fwrite(b, 1, len, f);
    fclose(f);
}

static void test_files(void) {
    const size_t k = 10;
    make_center = TQ_CENTER_FIRST; /* the center and <x, c> travel through the file too */
    int64_t *a = malloc(nq * k * sizeof(int64_t)), *b = malloc(nq * k * sizeof(int64_t));
    float *sa = malloc(nq * k * sizeof(float)), *sb = malloc(nq * k * sizeof(float));
    struct { uint32_t bits; tq_variant v; tq_index_metric m; tq_rerank_kind r; } kinds[] = {
        {4, TQ_VARIANT_MSE, TQ_INDEX_IP, TQ_RERANK_NONE}, {2, TQ_VARIANT_MSE, TQ_INDEX_L2, TQ_RERANK_FLOAT},
        {3, TQ_VARIANT_PROD, TQ_INDEX_COSINE, TQ_RERANK_CODE}};
    for (size_t t = 0; t < 3; t++) {
        tq_index *ix = make(kinds[t].bits, kinds[t].v, kinds[t].m, kinds[t].r, 0);
        CHECK_OK(tq_index_add(ix, base, 300, NULL, NULL));
        int64_t gone[2] = {5, 17};
        CHECK_OK(tq_index_remove(ix, gone, 2, NULL));
        const char *p1 = tmp_path("a.tqi"), *p2 = tmp_path("b.tqi");
        CHECK_OK(tq_index_save(ix, p1));
        CHECK_OK(tq_index_search(ix, queries, nq, k, NULL, a, sa));
        tq_index *ld = NULL, *mm = NULL;
        CHECK_OK(tq_index_load(p1, &ld));
        CHECK_OK(tq_index_open_mmap(p1, &mm));
        if (!ld || !mm) continue;
        tq_index_memory mem;
        CHECK_OK(tq_index_memory_usage(mm, &mem));
        CHECK(mem.mapped > 0, "mmap reported as mapped");
        CHECK_OK(tq_index_search(ld, queries, nq, k, NULL, b, sb));
        CHECK(!memcmp(a, b, nq * k * sizeof(int64_t)) && !memcmp(sa, sb, nq * k * sizeof(float)), "load == saved");
        CHECK_OK(tq_index_search(mm, queries, nq, k, NULL, b, sb));
        CHECK(!memcmp(a, b, nq * k * sizeof(int64_t)) && !memcmp(sa, sb, nq * k * sizeof(float)), "mmap == saved");
        CHECK_OK(tq_index_save(ld, p2));
        size_t l1 = 0, l2 = 0;
        uint8_t *f1 = slurp(p1, &l1), *f2 = slurp(p2, &l2);
        CHECK(l1 == l2 && l1 > 0 && !memcmp(f1, f2, l1), "save(load(f)) is byte-identical");
        /* appending: to the original, the loaded and the mapped index alike */
        CHECK_OK(tq_index_add(ix, base + 300 * dim, 200, NULL, NULL));
        CHECK_OK(tq_index_add(ld, base + 300 * dim, 200, NULL, NULL));
        CHECK_OK(tq_index_add(mm, base + 300 * dim, 200, NULL, NULL));
        CHECK_OK(tq_index_save(mm, p1)); /* over the file it maps: the old mapping stays valid */
        CHECK_OK(tq_index_search(ix, queries, nq, k, NULL, a, sa));
        CHECK_OK(tq_index_search(ld, queries, nq, k, NULL, b, sb));
        CHECK(!memcmp(a, b, nq * k * sizeof(int64_t)), "append after load");
        CHECK_OK(tq_index_search(mm, queries, nq, k, NULL, b, sb));
        CHECK(!memcmp(a, b, nq * k * sizeof(int64_t)), "append after mmap");
        tq_index *again = NULL;
        CHECK_OK(tq_index_load(p1, &again));
        CHECK(again && tq_index_size(again) == 498, "appended file has %zu", again ? tq_index_size(again) : 0);
        if (again) {
            CHECK_OK(tq_index_search(again, queries, nq, k, NULL, b, sb));
            CHECK(!memcmp(a, b, nq * k * sizeof(int64_t)), "appended file answers the same");
        }
        tq_index_free(again);
        /* a failed save leaves the file alone */
        CHECK(tq_index_save(ix, "/nonexistent-dir/x.tqi") == TQ_ERR_IO, "save into a missing folder");
        size_t l3 = 0;
        uint8_t *f3 = slurp(p1, &l3);
        free(f1);
        f1 = slurp(p1, &l1);
        CHECK(l3 == l1 && !memcmp(f1, f3, l1), "file intact");
        free(f3);
        /* damage: every truncation and bit flip in the header and at the end, ~300 more in between */
        const char *pd = tmp_path("bad.tqi");
        int refused = 1;
        size_t stride = l1 / 300 + 1;
        for (size_t cut = 0; cut < l1; cut += (cut < 256 || cut > l1 - 64) ? 1 : stride) {
            spit(pd, f1, cut);
            tq_index *x = NULL;
            tq_status s = tq_index_load(pd, &x);
            refused &= s != TQ_OK && x == NULL;
            tq_index_free(x);
        }
        CHECK(refused, "every truncation refused");
        refused = 1;
        for (size_t pos = 0; pos < l1; pos += (pos < 256 ? 1 : stride)) {
            f1[pos] ^= (uint8_t)(1u << (pos % 8));
            spit(pd, f1, l1);
            f1[pos] ^= (uint8_t)(1u << (pos % 8));
            tq_index *x = NULL;
            tq_status s = tq_index_open_mmap(pd, &x);
            refused &= s == TQ_ERR_CHECKSUM || s == TQ_ERR_FORMAT || s == TQ_ERR_VERSION;
            if (s != TQ_OK && x == NULL) continue;
            refused = 0;
            tq_index_free(x);
        }
        CHECK(refused, "every bit flip refused");
        free(f1);
        free(f2);
        tq_index_free(ix);
        tq_index_free(ld);
        tq_index_free(mm);
    }
    tq_index *x = NULL;
    CHECK_STATUS(tq_index_load(tmp_path("missing.tqi"), &x), TQ_ERR_IO);
    spit(tmp_path("junk.tqi"), (const uint8_t *)"hello", 5);
    CHECK_STATUS(tq_index_load(tmp_path("junk.tqi"), &x), TQ_ERR_FORMAT);
    free(a);
    free(b);
    free(sa);
    free(sb);
}

int main(void) {
    load_fixture();
    if (base && queries) {
        test_exact();
        test_updates();
        test_files();
    }
    tq_free(base);
    tq_free(queries);
    return CHECK_DONE();
}
