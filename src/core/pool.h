/*
 * pool.h — a small persistent thread pool for batch work (encode, decode,
 * score). Work is a range [0, n) cut into chunks; workers and the calling
 * thread take chunks from a shared counter until none is left.
 *
 * Results never depend on the thread count: every item (a vector, a record)
 * is computed by the same code whatever thread runs it.
 */
#ifndef TQ_POOL_H
#define TQ_POOL_H

#include <stddef.h>

#include "common.h"

/** Process [begin, end) of the range; `ctx` is the caller's. Returns TQ_OK or a failure. */
typedef tq_status (*tq_range_fn)(void *ctx, size_t begin, size_t end);

/**
 * Run fn over [0, n) in chunks of at least min_chunk items, on up to
 * tq_get_threads() threads (the caller is one of them). Ranges are processed
 * exactly once. Returns the first failure (by chunk order) or TQ_OK. When the
 * pool is busy with another caller's job, or threads cannot be started, the
 * work simply runs on the calling thread.
 */
TQ_INTERNAL tq_status tq_parallel_for(size_t n, size_t min_chunk, tq_range_fn fn, void *ctx);

#endif /* TQ_POOL_H */
