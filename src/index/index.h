/*
 * index.h — the inside of a tq_index, shared by src/index (add, remove,
 * search) and src/io (the TQIX file, docs/format.md §6). Nothing here is public.
 *
 * Storage. Vectors live in slots 0..n-1 (a removal moves the last slot into the
 * hole). Two layouts, fixed by the configuration:
 *   - blocked (fs = 1): single-part MSE quantizers at 2 or 4 bits, except L2
 *     with the UNIT norm (whose squared norm needs the whole code). The
 *     record's float32 factors go to `factors` (nf per slot) and its indices
 *     to the fast-scan layout `blocks` (src/kernels/fastscan.h), so the scan
 *     reads 4 or 2 bits per coordinate and nothing else. A slot's record is
 *     rebuilt on demand (factors + packed indices) for exact scoring.
 *   - records (fs = 0): everything else; `records` holds n full records.
 * Rerank data, when configured: n float32 rows (`rerank_f`) or n records of
 * the rerank quantizer (`rerank_c`).
 *
 * Memory-mapped indexes point these arrays into the file's mapping
 * (`map_base`); the first change copies them into owned memory (materialize).
 * The id -> slot table exists only when ids are not simply 0..n-1 in slot
 * order (explicit ids, or after a removal): automatic ids cost 8 bytes a vector.
 */
#ifndef TQ_INDEX_H
#define TQ_INDEX_H

#include "../core/common.h"
#include "../core/rwlock.h"

struct tq_index {
    tq_index_config cfg;   /* cfg.quant.outlier_channels points into q */
    tq_quantizer *q;       /* search quantizer */
    tq_quantizer *rq;      /* TQ_RERANK_CODE: the rerank quantizer */
    int fs;                /* blocked layout */
    uint32_t fs_bits;      /* its index bits (2 or 4) */
    uint32_t nf;           /* blocked: float32 factors per slot */
    size_t code_size;      /* q's record bytes */
    size_t rcode_size;     /* rq's record bytes (0 without) */
    size_t n;              /* vectors */
    size_t cap;            /* slots allocated (owned storage) */
    int64_t next_id;       /* automatic ids continue from here */
    int64_t *ids;          /* slot -> id */
    uint8_t *records;      /* !fs: n * code_size */
    float *factors;        /* fs: n * nf */
    uint8_t *blocks;       /* fs: tq_fs_size(cap) */
    float *rerank_f;       /* TQ_RERANK_FLOAT: n * dim */
    uint8_t *rerank_c;     /* TQ_RERANK_CODE: n * rcode_size */
    /* centering: codes are of x - center; xc[s] = <x, center> (metrics ip and cosine) */
    float *center;         /* dim floats once set (TQ_CENTER_FIRST: at the first add), else NULL */
    float *xc;             /* n floats when center is set and the metric is not l2, else NULL */
    double cc;             /* ||center||^2 */
    int dense_ids;         /* slot s holds id s for every s and next_id == n: no table needed */
    /* id -> slot, open addressing with linear probing; key -1 is empty */
    int64_t *map_keys;
    size_t *map_slots;
    size_t map_cap;        /* 0: not built */
    /* memory-mapped file (NULL when the storage is owned) */
    void *map_base;
    size_t map_len;
    /* readers (search, save, size, memory usage, config) share it; add and remove hold it alone.
     * Writer-preferring where the C library offers it, so searches cannot starve an add. */
    pthread_rwlock_t lock;
};

/** Take the index's lock for reading / writing, and release it (the lock is not part of the index's
 *  value, so the const versions cast it away). */
TQ_INTERNAL void tq_index_rdlock(const tq_index *ix);
TQ_INTERNAL void tq_index_wrlock(tq_index *ix);
TQ_INTERNAL void tq_index_unlock(const tq_index *ix);

/**
 * A new empty index around existing quantizers (ownership of q and rq passes to
 * the index, also on failure). cfg's quantizer fields must describe q.
 */
TQ_INTERNAL tq_status tq_index_wrap(const tq_index_config *cfg, tq_quantizer *q, tq_quantizer *rq, tq_index **out);
/** Whether cfg (with its quantizer q) gets the blocked layout, and its factors per slot. */
TQ_INTERNAL int tq_index_uses_blocks(const tq_index_config *cfg, const tq_quantizer *q, uint32_t *nf);
/** Forget the storage arrays without freeing them (they point into a mapping someone else releases). */
TQ_INTERNAL void tq_index_detach(tq_index *ix);
/** Release a file mapping (used by the io layer on failure paths and by tq_index_free). */
TQ_INTERNAL void tq_index_unmap(tq_index *ix);
/** Copy mapped storage into owned memory (no-op when owned). */
TQ_INTERNAL tq_status tq_index_materialize(tq_index *ix);
/** After a load: note dense ids, or build the id -> slot table; TQ_ERR_FORMAT if an id appears twice. */
TQ_INTERNAL tq_status tq_index_check_ids(tq_index *ix);
/** Whether the index keeps <x, center> per vector (centered, metric ip or cosine). */
TQ_INTERNAL int tq_index_keeps_xc(const tq_index *ix);
/** Install a center (dim floats, copied): sets center and cc. */
TQ_INTERNAL tq_status tq_index_set_center(tq_index *ix, const float *c);
/** Bytes of each stored array for n vectors (what the file holds). */
TQ_INTERNAL size_t tq_index_blocks_bytes(const tq_index *ix, size_t n);

#endif /* TQ_INDEX_H */
