/*
 * test_concurrency.c — the threading contract of tq.h, exercised for real
 * (and run under ThreadSanitizer by .ci/run, where any data race fails it):
 *   - an index searched by several threads while another adds and removes:
 *     every search sees a consistent index (probe vectors that are never
 *     removed are always found first, with their exact score; results are
 *     ordered), and a save taken during the writes holds one of the states the
 *     writer went through;
 *   - a KV cache attended by several threads while another appends: attention
 *     over a prefix that is already there is bit-identical to the answer
 *     before the writes began;
 *   - many threads encoding through the shared thread pool while another
 *     changes the thread count: bit-identical codes;
 *   - the error message is per thread;
 *   - fork() after the pool has started: the child's batch work runs (it does
 *     not wait for the parent's workers, which the child does not have).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "tq.h"

#if defined(__SANITIZE_THREAD__)
#define TQ_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TQ_UNDER_TSAN 1
#endif
#endif

/* Test threads record failures here (check.h's counters are not thread-safe). */
static atomic_int thread_failures;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
#define TCHECK(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            atomic_fetch_add(&thread_failures, 1);                            \
            pthread_mutex_lock(&report_lock);                                 \
            fprintf(stderr, "%s:%d: TCHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            pthread_mutex_unlock(&report_lock);                               \
        }                                                                     \
    } while (0)

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static float gauss(void) {
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}
static void random_rows(float *x, size_t n, size_t d) {
    for (size_t i = 0; i < n * d; i++) x[i] = gauss();
}

static const char *tmp_path(const char *name) {
    static char buf[512];
    mkdir(TQ_TEST_TMP_DIR, 0777);
    snprintf(buf, sizeof buf, "%s/conc-%ld-%s", TQ_TEST_TMP_DIR, (long)getpid(), name);
    return buf;
}

/* ---- index: readers while a writer adds and removes ---- */

enum { IX_DIM = 64, IX_PROBES = 64, IX_BASE = 1500, IX_ROUNDS = 30, IX_BATCH = 40, IX_READERS = 3 };

typedef struct ix_shared {
    tq_index *ix;
    const float *probes;      /* IX_PROBES rows, ids 0..IX_PROBES-1, never removed */
    atomic_int writer_done;
    atomic_int searches;
    pthread_mutex_t sizes_lock;
    size_t sizes[2 * IX_ROUNDS + 2];
    int nsizes;
    const char *save_path;
    atomic_int saves;
    int l2, exact;            /* metric L2 (ascending scores); float rerank (exact self scores) */
} ix_shared;

static void *ix_reader(void *arg) {
    ix_shared *s = arg;
    int64_t ids[4 * 10];
    float sc[4 * 10];
    unsigned r = 0;
    while (!atomic_load(&s->writer_done) || r < 8) {
        size_t p = (r * 7u) % (IX_PROBES - 4);
        tq_status st = tq_index_search(s->ix, s->probes + p * IX_DIM, 4, 10, NULL, ids, sc);
        TCHECK(st == TQ_OK, "search during writes: %s (%s)", tq_status_str(st), tq_last_error());
        for (int qi = 0; qi < 4 && st == TQ_OK; qi++) {
            TCHECK(ids[qi * 10] == (int64_t)(p + qi), "probe %zu found %lld first", p + qi, (long long)ids[qi * 10]);
            if (s->exact) TCHECK(fabsf(sc[qi * 10] - 1.0f) < 1e-4f, "probe %zu self score %g", p + qi, sc[qi * 10]);
            for (int k = 1; k < 10; k++)
                TCHECK(s->l2 ? sc[qi * 10 + k] >= sc[qi * 10 + k - 1] : sc[qi * 10 + k] <= sc[qi * 10 + k - 1],
                       "scores out of order at rank %d", k);
        }
        size_t n = tq_index_size(s->ix);
        TCHECK(n >= IX_PROBES, "size %zu", n);
        tq_index_memory mem;
        TCHECK(tq_index_memory_usage(s->ix, &mem) == TQ_OK && mem.total > 0, "memory_usage");
        atomic_fetch_add(&s->searches, 1);
        r++;
    }
    return NULL;
}

static void *ix_saver(void *arg) {
    ix_shared *s = arg;
    for (int r = 0; !atomic_load(&s->writer_done) || r < 2; r++) {
        tq_status st = tq_index_save(s->ix, s->save_path);
        TCHECK(st == TQ_OK, "save during writes: %s", tq_last_error());
        if (st != TQ_OK) break;
        tq_index *back = NULL;
        st = tq_index_load(s->save_path, &back);
        TCHECK(st == TQ_OK, "load of a save made during writes: %s", tq_last_error());
        if (back) {
            size_t n = tq_index_size(back);
            int found = 0;
            pthread_mutex_lock(&s->sizes_lock);
            for (int i = 0; i < s->nsizes; i++) found |= s->sizes[i] == n;
            pthread_mutex_unlock(&s->sizes_lock);
            TCHECK(found, "a save holds %zu vectors, a size the writer never left the index at", n);
            tq_index_free(back);
        }
        atomic_fetch_add(&s->saves, 1);
    }
    return NULL;
}

static void test_index_readers_and_writer(tq_index_metric metric, tq_rerank_kind rerank) {
    tq_index_config c;
    tq_index_config_init(&c, IX_DIM, 4);
    c.metric = metric;
    c.rerank = rerank;
    tq_index *ix = NULL;
    CHECK_OK(tq_index_create(&c, &ix));
    if (!ix) return;
    float *probes = malloc(IX_PROBES * IX_DIM * sizeof *probes);
    float *more = malloc((size_t)IX_BASE * IX_DIM * sizeof *more);
    random_rows(probes, IX_PROBES, IX_DIM);
    for (size_t i = 0; i < IX_PROBES; i++) { /* unit rows: the self score is exactly 1 */
        double n2 = 0;
        for (size_t j = 0; j < IX_DIM; j++) n2 += (double)probes[i * IX_DIM + j] * probes[i * IX_DIM + j];
        for (size_t j = 0; j < IX_DIM; j++) probes[i * IX_DIM + j] = (float)(probes[i * IX_DIM + j] / sqrt(n2));
    }
    random_rows(more, IX_BASE, IX_DIM);
    for (size_t i = 0; i < (size_t)IX_BASE * IX_DIM; i++) more[i] *= 0.05f; /* short: never beat a probe */
    CHECK_OK(tq_index_add(ix, probes, IX_PROBES, NULL, NULL));
    CHECK_OK(tq_index_add(ix, more, 500, NULL, NULL));

    ix_shared s;
    memset(&s, 0, sizeof s);
    s.ix = ix;
    s.probes = probes;
    s.save_path = tmp_path("during.tqi");
    s.l2 = metric == TQ_INDEX_L2;
    s.exact = rerank == TQ_RERANK_FLOAT && metric != TQ_INDEX_L2;
    pthread_mutex_init(&s.sizes_lock, NULL);
    s.sizes[s.nsizes++] = tq_index_size(ix);
    pthread_t readers[IX_READERS], saver;
    for (int i = 0; i < IX_READERS; i++) pthread_create(&readers[i], NULL, ix_reader, &s);
    pthread_create(&saver, NULL, ix_saver, &s);

    float *batch = malloc(IX_BATCH * IX_DIM * sizeof *batch);
    int64_t next_remove = IX_PROBES; /* remove old non-probe vectors as we go */
    for (int round = 0; round < IX_ROUNDS; round++) {
        random_rows(batch, IX_BATCH, IX_DIM);
        for (size_t i = 0; i < IX_BATCH * IX_DIM; i++) batch[i] *= 0.05f;
        /* the size each write will leave is recorded before the write, so a save made right after it
         * finds its size already listed */
        size_t before = tq_index_size(ix);
        pthread_mutex_lock(&s.sizes_lock);
        s.sizes[s.nsizes++] = before + IX_BATCH;
        pthread_mutex_unlock(&s.sizes_lock);
        CHECK_OK(tq_index_add(ix, batch, IX_BATCH, NULL, NULL));
        CHECK(tq_index_size(ix) == before + IX_BATCH, "size after add");
        int64_t rm[IX_BATCH / 2];
        for (int i = 0; i < IX_BATCH / 2; i++) rm[i] = next_remove++;
        size_t removed = 0;
        pthread_mutex_lock(&s.sizes_lock);
        s.sizes[s.nsizes++] = before + IX_BATCH - IX_BATCH / 2;
        pthread_mutex_unlock(&s.sizes_lock);
        CHECK_OK(tq_index_remove(ix, rm, IX_BATCH / 2, &removed));
        CHECK(removed == IX_BATCH / 2, "removed %zu", removed);
    }
    atomic_store(&s.writer_done, 1);
    for (int i = 0; i < IX_READERS; i++) pthread_join(readers[i], NULL);
    pthread_join(saver, NULL);
    printf("index metric %d rerank %d: %d searches and %d saves during %d writes\n", (int)metric, (int)rerank,
           atomic_load(&s.searches), atomic_load(&s.saves), 2 * IX_ROUNDS);
    CHECK(atomic_load(&s.searches) >= IX_READERS * 8, "readers ran %d searches", atomic_load(&s.searches));
    CHECK(tq_index_size(ix) == (size_t)IX_PROBES + 500 + IX_ROUNDS * IX_BATCH / 2, "final size %zu", tq_index_size(ix));
    pthread_mutex_destroy(&s.sizes_lock);
    remove(s.save_path);
    free(batch);
    free(more);
    free(probes);
    tq_index_free(ix);
}

/* ---- KV cache: readers attending a fixed prefix while a writer appends ---- */

enum { KV_H = 2, KV_QH = 6, KV_D = 64, KV_PREFIX = 300, KV_APPEND = 400, KV_READERS = 3, KV_NQ = 3 };

typedef struct kv_shared {
    tq_kv *kv;
    const float *q;
    const int64_t *pos;
    const float *want;
    atomic_int writer_done;
    atomic_int attends;
} kv_shared;

static void *kv_reader(void *arg) {
    kv_shared *s = arg;
    float out[KV_NQ * KV_QH * KV_D];
    int r = 0;
    while (!atomic_load(&s->writer_done) || r < 4) {
        tq_status st = tq_kv_attend(s->kv, s->q, KV_NQ, KV_QH, s->pos, 0.0f, out);
        TCHECK(st == TQ_OK, "attend during appends: %s", tq_last_error());
        TCHECK(st != TQ_OK || memcmp(out, s->want, sizeof out) == 0, "attention over a fixed prefix changed");
        size_t len = tq_kv_length(s->kv);
        TCHECK(len >= KV_PREFIX, "length %zu", len);
        atomic_fetch_add(&s->attends, 1);
        r++;
    }
    return NULL;
}

static void test_kv_readers_and_writer(void) {
    tq_kv_config c;
    tq_kv_config_init(&c, KV_H, KV_D, 4.0, 3.0);
    tq_kv *kv = NULL;
    CHECK_OK(tq_kv_create(&c, &kv));
    if (!kv) return;
    size_t tok = KV_H * KV_D;
    float *k = malloc((KV_PREFIX + KV_APPEND) * tok * sizeof *k), *v = malloc((KV_PREFIX + KV_APPEND) * tok * sizeof *v);
    float q[KV_NQ * KV_QH * KV_D], want[KV_NQ * KV_QH * KV_D];
    random_rows(k, KV_PREFIX + KV_APPEND, tok);
    random_rows(v, KV_PREFIX + KV_APPEND, tok);
    random_rows(q, KV_NQ * KV_QH, KV_D);
    int64_t pos[KV_NQ] = {10, 150, KV_PREFIX - 1};
    CHECK_OK(tq_kv_append(kv, k, v, KV_PREFIX));
    CHECK_OK(tq_kv_attend(kv, q, KV_NQ, KV_QH, pos, 0.0f, want));

    kv_shared s;
    memset(&s, 0, sizeof s);
    s.kv = kv;
    s.q = q;
    s.pos = pos;
    s.want = want;
    pthread_t readers[KV_READERS];
    for (int i = 0; i < KV_READERS; i++) pthread_create(&readers[i], NULL, kv_reader, &s);
    for (size_t t = KV_PREFIX; t < KV_PREFIX + KV_APPEND; t += 8)
        CHECK_OK(tq_kv_append(kv, k + t * tok, v + t * tok, 8));
    atomic_store(&s.writer_done, 1);
    for (int i = 0; i < KV_READERS; i++) pthread_join(readers[i], NULL);
    printf("kv: %d attends during %d appends\n", atomic_load(&s.attends), KV_APPEND / 8);
    CHECK(tq_kv_length(kv) == KV_PREFIX + KV_APPEND, "length %zu", tq_kv_length(kv));
    free(k);
    free(v);
    tq_kv_free(kv);
}

/* ---- the thread pool shared by many callers while the count changes ---- */

enum { ENC_N = 600, ENC_DIM = 96, ENC_THREADS = 3 };

typedef struct enc_shared {
    const tq_quantizer *q;
    const float *x;
    const uint8_t *want;
    size_t cs;
    atomic_int done;
} enc_shared;

static void *encoder(void *arg) {
    enc_shared *s = arg;
    uint8_t *codes = malloc(ENC_N * s->cs);
    for (int r = 0; r < 12; r++) {
        tq_status st = tq_encode(s->q, s->x, ENC_N, codes);
        TCHECK(st == TQ_OK, "encode: %s", tq_last_error());
        TCHECK(memcmp(codes, s->want, ENC_N * s->cs) == 0, "codes differ with the pool shared");
    }
    free(codes);
    atomic_fetch_add(&s->done, 1);
    return NULL;
}

static void *thread_changer(void *arg) {
    enc_shared *s = arg;
    unsigned n = 0;
    while (atomic_load(&s->done) < ENC_THREADS) {
        TCHECK(tq_set_threads(1 + n % 4) == TQ_OK, "set_threads");
        n++;
        TCHECK(tq_get_threads() >= 1, "get_threads");
    }
    return NULL;
}

static void test_shared_pool(void) {
    tq_config c;
    tq_config_init(&c, ENC_DIM, 3);
    c.variant = TQ_VARIANT_PROD;
    tq_quantizer *q = NULL;
    CHECK_OK(tq_quantizer_create(&c, &q));
    if (!q) return;
    size_t cs = tq_quantizer_code_size(q);
    float *x = malloc(ENC_N * ENC_DIM * sizeof *x);
    uint8_t *want = malloc(ENC_N * cs);
    random_rows(x, ENC_N, ENC_DIM);
    CHECK_OK(tq_set_threads(1));
    CHECK_OK(tq_encode(q, x, ENC_N, want));
    enc_shared s = {q, x, want, cs, 0};
    pthread_t th[ENC_THREADS], ch;
    for (int i = 0; i < ENC_THREADS; i++) pthread_create(&th[i], NULL, encoder, &s);
    pthread_create(&ch, NULL, thread_changer, &s);
    for (int i = 0; i < ENC_THREADS; i++) pthread_join(th[i], NULL);
    pthread_join(ch, NULL);
    CHECK_OK(tq_set_threads(0));
    free(x);
    free(want);
    tq_quantizer_free(q);
}

/* ---- tq_last_error is per thread ---- */

static void *error_thread(void *arg) {
    uint32_t dim = (uint32_t)(size_t)arg;
    for (int r = 0; r < 200; r++) {
        tq_config c;
        tq_config_init(&c, dim, 9); /* bits 9: refused, naming this thread's bits */
        tq_quantizer *q = NULL;
        tq_status st = tq_quantizer_create(&c, &q);
        TCHECK(st == TQ_ERR_BITS, "bits 9 gave %s", tq_status_str(st));
        tq_config_init(&c, 0, 4);
        st = tq_quantizer_create(&c, &q);
        TCHECK(st == TQ_ERR_DIM && strstr(tq_last_error(), "dim") != NULL, "dim 0 gave %s: %s", tq_status_str(st),
               tq_last_error());
    }
    return NULL;
}

static void test_error_per_thread(void) {
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, error_thread, (void *)(size_t)(8 + i));
    /* meanwhile this thread's own message must stay its own */
    tq_config c;
    tq_config_init(&c, 16, 4);
    c.rotation = (tq_rotation_kind)77;
    tq_quantizer *q = NULL;
    CHECK_STATUS(tq_quantizer_create(&c, &q), TQ_ERR_INVALID_ARG);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", tq_last_error());
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK(strcmp(mine, tq_last_error()) == 0, "this thread's message changed to '%s'", tq_last_error());
}

/* ---- fork after the pool started ---- */

static void test_fork_child_uses_pool(void) {
#ifdef TQ_UNDER_TSAN
    printf("fork test skipped under ThreadSanitizer (it does not support threads after a multi-threaded fork)\n");
#else
    tq_config c;
    tq_config_init(&c, 128, 4);
    tq_quantizer *q = NULL;
    CHECK_OK(tq_quantizer_create(&c, &q));
    if (!q) return;
    enum { N = 4000 };
    size_t cs = tq_quantizer_code_size(q);
    float *x = malloc((size_t)N * 128 * sizeof *x);
    uint8_t *a = malloc(N * cs), *b = malloc(N * cs);
    random_rows(x, N, 128);
    CHECK_OK(tq_set_threads(4)); /* start the workers in the parent */
    CHECK_OK(tq_encode(q, x, N, a));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60); /* a child stuck waiting for the parent's workers dies here instead of hanging the test */
        int ok = tq_encode(q, x, N, b) == TQ_OK && memcmp(a, b, N * cs) == 0;
        ok &= tq_encode(q, x, N, b) == TQ_OK && memcmp(a, b, N * cs) == 0;
        _exit(ok ? 0 : 1);
    }
    CHECK(pid > 0, "fork failed");
    int status = 0;
    if (pid > 0) waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child after fork: %s %d",
          WIFSIGNALED(status) ? "killed by signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    /* and the parent's pool still works */
    CHECK_OK(tq_encode(q, x, N, b));
    CHECK(memcmp(a, b, N * cs) == 0, "parent codes after fork");
    CHECK_OK(tq_set_threads(0));
    free(x);
    free(a);
    free(b);
    tq_quantizer_free(q);
#endif
}

int main(void) {
    CHECK_OK(tq_set_threads(2));
    test_error_per_thread();
    test_shared_pool();
    test_fork_child_uses_pool();
    CHECK_OK(tq_set_threads(2));
    test_kv_readers_and_writer();
    test_index_readers_and_writer(TQ_INDEX_IP, TQ_RERANK_NONE);
    test_index_readers_and_writer(TQ_INDEX_COSINE, TQ_RERANK_FLOAT);
    test_index_readers_and_writer(TQ_INDEX_L2, TQ_RERANK_CODE);
    CHECK(atomic_load(&thread_failures) == 0, "%d failures in test threads", atomic_load(&thread_failures));
    return CHECK_DONE();
}
