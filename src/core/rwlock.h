/*
 * rwlock.h — the reader-writer lock an index and a KV cache carry
 * (implemented in pool.c, beside the rest of the threading code). Files that
 * include it must ask for POSIX 2001 or later (_POSIX_C_SOURCE) before any
 * system header, as the strict C11 build otherwise hides pthread_rwlock_t.
 */
#ifndef TQ_RWLOCK_H
#define TQ_RWLOCK_H

#include <pthread.h>

#include "common.h"

/**
 * Initialise lock writer-preferring where the C library offers it (glibc), so
 * a stream of readers cannot starve a writer. @return 1 on success, 0 on failure.
 */
TQ_INTERNAL int tq_rwlock_init(pthread_rwlock_t *lock);

#endif /* TQ_RWLOCK_H */
