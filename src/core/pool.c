/*
 * pool.c — the persistent thread pool behind tq_parallel_for.
 *
 * Design: up to TQ_POOL_MAX - 1 worker threads are started lazily the first
 * time a job wants them and then sleep on a condition variable. A job is
 * (fn, ctx, n, chunk) plus an atomic "next chunk" counter; the caller takes
 * chunks too, so a pool of k workers gives k + 1 threads. One job runs at a
 * time: a second caller that finds the pool busy runs its job inline instead
 * of waiting (no deadlock, no unbounded queue). Failures are collected per
 * chunk and the lowest-numbered failing chunk's status is returned, so the
 * reported error does not depend on scheduling. Thread-count changes take
 * effect on the next job. Nothing here prints or aborts; if a thread cannot be
 * created the pool just runs with the threads it has.
 *
 * fork(): a child process has none of the parent's workers, only their count,
 * and may inherit the locks held. pthread_atfork handlers (registered when the
 * first worker starts) make fork wait for a running job, then give the child
 * an empty pool with fresh locks, so a forked child (Python multiprocessing,
 * pre-forking servers) starts its own workers instead of waiting forever for
 * threads that do not exist.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np (glibc), and POSIX 2008 */
#include "pool.h"
#include "rwlock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define TQ_POOL_MAX 256u

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER; /* guards everything below */
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;   /* workers: a new job */
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;   /* caller: workers finished */
static pthread_mutex_t pool_busy = PTHREAD_MUTEX_INITIALIZER; /* held by the caller running a job */

static unsigned pool_threads_wanted; /* 0 = not set yet: all online cores */
static unsigned pool_started;        /* worker threads alive */

/* the current job */
static tq_range_fn job_fn;
static void *job_ctx;
static size_t job_n, job_chunk, job_nchunks;
static atomic_size_t job_next;
static unsigned job_workers;   /* workers that should join this job */
static unsigned job_active;    /* workers still inside this job */
static unsigned long job_seq;  /* increments per job so sleeping workers see a new one */
static size_t job_fail_chunk;  /* lowest failing chunk, or SIZE_MAX */
static tq_status job_fail_status;
static char job_fail_msg[512]; /* its message: the error buffer is per thread, so carry it to the caller */

static unsigned online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 1;
    return n > (long)TQ_POOL_MAX ? TQ_POOL_MAX : (unsigned)n;
}

tq_status tq_set_threads(uint32_t n) {
    tq_clear_error();
    TQ_RETURN_IF(n > TQ_POOL_MAX, TQ_ERR_INVALID_ARG, "threads = %u, at most %u (0 = all cores)", n, TQ_POOL_MAX);
    pthread_mutex_lock(&pool_lock);
    pool_threads_wanted = n == 0 ? online_cores() : n;
    pthread_mutex_unlock(&pool_lock);
    return TQ_OK;
}

uint32_t tq_get_threads(void) {
    pthread_mutex_lock(&pool_lock);
    if (pool_threads_wanted == 0) pool_threads_wanted = online_cores();
    unsigned n = pool_threads_wanted;
    pthread_mutex_unlock(&pool_lock);
    return n;
}

/* Take chunks until none is left; record the lowest failing chunk. */
static void run_chunks(tq_range_fn fn, void *ctx, size_t n, size_t chunk, size_t nchunks) {
    for (;;) {
        size_t c = atomic_fetch_add(&job_next, 1);
        if (c >= nchunks) return;
        size_t begin = c * chunk, end = begin + chunk < n ? begin + chunk : n;
        tq_status s = fn(ctx, begin, end);
        if (s != TQ_OK) {
            pthread_mutex_lock(&pool_lock);
            if (c < job_fail_chunk) {
                job_fail_chunk = c;
                job_fail_status = s;
                snprintf(job_fail_msg, sizeof job_fail_msg, "%s", tq_last_error());
            }
            pthread_mutex_unlock(&pool_lock);
        }
    }
}

static void *worker_main(void *arg) {
    unsigned id = (unsigned)(size_t)arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool_lock);
    for (;;) {
        while (job_seq == seen) pthread_cond_wait(&pool_wake, &pool_lock);
        seen = job_seq;
        if (id >= job_workers) continue; /* not needed for this job */
        tq_range_fn fn = job_fn;
        void *ctx = job_ctx;
        size_t n = job_n, chunk = job_chunk, nchunks = job_nchunks;
        pthread_mutex_unlock(&pool_lock);
        run_chunks(fn, ctx, n, chunk, nchunks);
        pthread_mutex_lock(&pool_lock);
        if (--job_active == 0) pthread_cond_signal(&pool_done);
    }
    return NULL;
}

static void fork_prepare(void) {
    pthread_mutex_lock(&pool_busy);
    pthread_mutex_lock(&pool_lock);
}

static void fork_parent(void) {
    pthread_mutex_unlock(&pool_lock);
    pthread_mutex_unlock(&pool_busy);
}

static void fork_child(void) {
    /* the workers are gone; their sleeping state and the locks start over */
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pool_lock = m;
    pool_busy = m;
    pool_wake = c;
    pool_done = c;
    pool_started = 0;
    job_active = 0;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { (void)pthread_atfork(fork_prepare, fork_parent, fork_child); }

tq_status tq_parallel_for(size_t n, size_t min_chunk, tq_range_fn fn, void *ctx) {
    if (n == 0) return TQ_OK;
    if (min_chunk == 0) min_chunk = 1;
    unsigned threads = tq_get_threads();
    size_t max_chunks = (n + min_chunk - 1) / min_chunk;
    if (threads <= 1 || max_chunks <= 1) return fn(ctx, 0, n);
    pthread_once(&atfork_once, register_atfork);
    if (pthread_mutex_trylock(&pool_busy) != 0) return fn(ctx, 0, n);

    pthread_mutex_lock(&pool_lock);
    while (pool_started + 1 < threads) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, worker_main, (void *)(size_t)pool_started);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool_started++;
    }
    unsigned workers = threads - 1 < pool_started ? threads - 1 : pool_started;
    /* about 4 chunks per thread balances uneven items without tiny chunks */
    size_t chunks = (size_t)(workers + 1) * 4;
    if (chunks > max_chunks) chunks = max_chunks;
    job_fn = fn;
    job_ctx = ctx;
    job_n = n;
    job_chunk = (n + chunks - 1) / chunks;
    job_nchunks = (n + job_chunk - 1) / job_chunk;
    atomic_store(&job_next, 0);
    job_workers = workers;
    job_active = workers;
    job_fail_chunk = SIZE_MAX;
    job_fail_status = TQ_OK;
    job_seq++;
    pthread_cond_broadcast(&pool_wake);
    size_t chunk = job_chunk, nchunks = job_nchunks;
    pthread_mutex_unlock(&pool_lock);

    run_chunks(fn, ctx, n, chunk, nchunks);

    pthread_mutex_lock(&pool_lock);
    while (job_active > 0) pthread_cond_wait(&pool_done, &pool_lock);
    tq_status s = job_fail_status;
    if (s != TQ_OK) tq_fail(s, "%s", job_fail_msg);
    pthread_mutex_unlock(&pool_lock);
    pthread_mutex_unlock(&pool_busy);
    return s;
}

int tq_rwlock_init(pthread_rwlock_t *lock) {
    pthread_rwlockattr_t attr;
    if (pthread_rwlockattr_init(&attr) != 0) return 0;
#if defined(__GLIBC__)
    (void)pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    int ok = pthread_rwlock_init(lock, &attr) == 0;
    pthread_rwlockattr_destroy(&attr);
    return ok;
}
