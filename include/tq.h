/*
 * tq.h — the one public header of tq, an implementation of TurboQuant
 * (Zandieh, Daliri, Hadian, Mirrokni, arXiv 2504.19874): online, training-free
 * vector quantization that keeps inner products.
 *
 * Shape of the API
 *   - Opaque handles (tq_quantizer, tq_query) made by *_create, released by
 *     *_free; *_free(NULL) is a no-op.
 *   - Every fallible call returns a tq_status. TQ_OK is 0. On failure a
 *     readable detail is left in a thread-local buffer: tq_last_error().
 *   - The library never aborts, prints or exits, whatever the input.
 *   - Vectors are float32, row-major, n rows of `dim` values. Codes are
 *     fixed-size records of tq_quantizer_code_size() bytes, one per vector,
 *     laid out as docs/format.md describes; the caller owns the buffers.
 *
 * Data flow: x -> (norm, rotate) -> codebook indices + a few per-vector
 * factors -> packed record. A query is rotated once (tq_query_set) and
 * scored straight against packed records (tq_score), never by decoding.
 *
 * Threads: a tq_quantizer is read-only after tq_quantizer_create (only
 * tq_quantizer_calibrate changes it, and needs exclusive access), so
 * tq_encode, tq_decode and tq_score may run on one quantizer from many threads
 * at once; a tq_query belongs to one thread at a time. Indexes and KV caches
 * lock themselves (see their sections). Batch work runs on one process-wide
 * pool of tq_set_threads() threads that any thread may use (a caller that
 * finds it busy runs its batch itself); the pool survives fork(): a child
 * starts its own workers. tq_last_error() is per thread. Codes do not depend
 * on how a batch is split across calls or threads. Every one of these
 * promises is tested under ThreadSanitizer (tests/test_concurrency.c).
 *
 * Zero vectors are accepted: they encode to a record whose factors are 0,
 * decode to the zero vector, and score 0 (inner product) or ||q||^2 (L2).
 * NaN or Inf anywhere in an input batch rejects the whole batch
 * (TQ_ERR_NONFINITE) and leaves the output buffer untouched; so does a
 * finite row that cannot be encoded (a norm beyond float32, a UNIFORM GROUP
 * range beyond the fp16 of its factors), and so does a count whose buffers
 * would not fit in memory (TQ_ERR_SIZE). docs/bad-input.md lists every bad
 * input the tests try and what it gets.
 */
#ifndef TQ_H
#define TQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(TQ_SHARED_BUILD)
#define TQ_API __declspec(dllexport)
#elif defined(__GNUC__)
#define TQ_API __attribute__((visibility("default")))
#else
#define TQ_API
#endif

#if defined(__GNUC__)
#define TQ_NODISCARD __attribute__((warn_unused_result))
#else
#define TQ_NODISCARD
#endif

#define TQ_VERSION_MAJOR 0
#define TQ_VERSION_MINOR 1
#define TQ_VERSION_PATCH 0

/** Largest supported dimension (any rotation but dense). */
#define TQ_MAX_DIM 65536u
/** Largest dimension for a dense (d x d) rotation or dense QJL matrix. */
#define TQ_MAX_DENSE_DIM 4096u
/** Bits per coordinate: 1..TQ_MAX_BITS. */
#define TQ_MAX_BITS 8u
/** Largest Hadamard round count. */
#define TQ_MAX_ROUNDS 8u

/** Status codes. Values are pinned: append only. */
typedef enum tq_status {
    TQ_OK = 0,
    TQ_ERR_INVALID_ARG = 1,   /* NULL pointer, bad enum, inconsistent config */
    TQ_ERR_DIM = 2,           /* dimension 0, too large, or not the quantizer's */
    TQ_ERR_BITS = 3,          /* bits outside 1..8 for this variant */
    TQ_ERR_NONFINITE = 4,     /* NaN or Inf in input */
    TQ_ERR_SIZE = 5,          /* buffer or count mismatch, size overflow */
    TQ_ERR_NOMEM = 6,         /* allocation failed */
    TQ_ERR_IO = 7,            /* open/read/write/rename failed */
    TQ_ERR_FORMAT = 8,        /* not a tq file, truncated, bad field */
    TQ_ERR_CHECKSUM = 9,      /* stored checksum does not match */
    TQ_ERR_VERSION = 10,      /* file format version not supported */
    TQ_ERR_STATE = 11,        /* call not valid in this state (e.g. not calibrated) */
    TQ_ERR_MISMATCH = 12      /* codes/query belong to another quantizer */
} tq_status;

/** @return a constant English name for a status, never NULL. */
TQ_API const char *tq_status_str(tq_status s);
/** @return the detail message of the last failure on this thread ("" if none). */
TQ_API const char *tq_last_error(void);
/** @return "tq 0.1.0" style version string. */
TQ_API const char *tq_version_string(void);
/** @return a one-line description of how the library was built: version, compiler, the kernel tables
 *  compiled in and the one that runs. */
TQ_API const char *tq_build_info(void);
/**
 * @return the name of the kernel table this process runs ("ref", "avx2" or "avx512" on
 * x86-64, "ref" or "neon" on AArch64): the best the CPU and OS support, unless the
 * environment variable TQ_FORCE_ISA=ref|avx2|neon (read once) narrows it. Codes are bit-identical
 * whichever runs; scores agree within a small stated tolerance.
 */
TQ_API const char *tq_kernel_name(void);
/**
 * Threads used for batch work (tq_encode, tq_decode, tq_score over many
 * records): 0 means all online cores (the default), 1 runs everything on the
 * calling thread. Results are bit-identical whatever the count.
 * @return TQ_OK, or TQ_ERR_INVALID_ARG above 256.
 */
TQ_API tq_status tq_set_threads(uint32_t n);
/** @return the thread count batch work uses now. */
TQ_API uint32_t tq_get_threads(void);

/** Free memory the library handed to the caller (tq_codes_load, tq_read_vectors, tq_read_ids). */
TQ_API void tq_free(void *p);

/** Quantizer families. Values are pinned (they are stored on disk). */
typedef enum tq_variant {
    TQ_VARIANT_MSE = 0,     /* Algorithm 1: norm + b-bit codebook indices */
    TQ_VARIANT_PROD = 1,    /* Algorithm 2: (b-1)-bit MSE + 1-bit QJL of the residual + gamma */
    TQ_VARIANT_QJL = 2,     /* sign(S y) + norm; bits must be 1 */
    TQ_VARIANT_UNIFORM = 3  /* textbook uniform scalar baseline */
} tq_variant;

typedef enum tq_rotation_kind {
    TQ_ROTATION_NONE = 0,
    TQ_ROTATION_DENSE = 1,    /* Haar-random orthogonal matrix (paper-exact), stored */
    TQ_ROTATION_HADAMARD = 2  /* rounds of signs, block Walsh-Hadamard, permutation; any d */
} tq_rotation_kind;

typedef enum tq_qjl_kind {
    TQ_QJL_DENSE = 0,       /* S with i.i.d. N(0,1) entries, d x d (paper-exact) */
    TQ_QJL_STRUCTURED = 1   /* orthonormal Hadamard-based map R (own seed); scale 1/(d E|u_1|) */
} tq_qjl_kind;

/** What the MSE variant stores as its per-vector scale. */
typedef enum tq_norm_mode {
    TQ_NORM_PLAIN = 0,    /* ||x|| (paper) */
    TQ_NORM_UNIT = 1,     /* ||x|| / ||c[idx]||: the decoded vector has the exact norm */
    TQ_NORM_UNBIASED = 2  /* ||x|| / <y, c[idx]> (RaBitQ-style) plus ||x||: IP estimate unbiased */
} tq_norm_mode;

typedef enum tq_uniform_mode {
    TQ_UNIFORM_SYMMETRIC = 0,  /* levels scale * (k - (2^b-1)/2), scale from max |x| */
    TQ_UNIFORM_ASYMMETRIC = 1  /* levels lo + scale * k, from min and max */
} tq_uniform_mode;

typedef enum tq_uniform_scope {
    TQ_UNIFORM_PER_VECTOR = 0,  /* one range per vector, stored in the record */
    TQ_UNIFORM_PER_CHANNEL = 1, /* one range per channel, from tq_quantizer_calibrate */
    TQ_UNIFORM_GROUP = 2        /* one range per group of group_size channels, per vector (fp16) */
} tq_uniform_scope;

typedef enum tq_metric {
    TQ_METRIC_IP = 0,  /* inner product <q, x> (larger is closer) */
    TQ_METRIC_L2 = 1   /* squared Euclidean distance ||q - x||^2 */
} tq_metric;

/**
 * Quantizer configuration. Start from tq_config_init() and change fields.
 *
 * Fractional bits: with outlier_count = k > 0 the channels are split into an
 * outlier set (k channels, outlier_bits each) and a regular set (dim - k
 * channels, `bits` each); each set gets its own independent quantizer of the
 * same variant (own rotation, codebook and norm). The outlier set is the list
 * outlier_channels (k distinct indices < dim, copied at create) or, if that is
 * NULL, channels 0..k-1. tq_select_outliers() picks a list from sample data.
 * Example: dim 128, bits 2, outlier_count 32, outlier_bits 3 -> 2.25 bits per
 * channel before factors.
 */
typedef struct tq_config {
    uint32_t dim;
    uint32_t bits;               /* total bits per coordinate, 1..8 (PROD: includes the QJL bit) */
    tq_variant variant;
    tq_rotation_kind rotation;
    uint32_t rounds;             /* Hadamard rounds (1..8); 0 means the default, 2 */
    tq_qjl_kind qjl;             /* PROD and QJL only */
    tq_norm_mode norm;           /* MSE only; PROD/QJL require TQ_NORM_PLAIN */
    uint64_t seed;               /* everything random derives from it */
    uint32_t outlier_count;      /* 0: no split */
    uint32_t outlier_bits;       /* bits of the outlier set */
    const uint32_t *outlier_channels;
    tq_uniform_mode uniform_mode;   /* UNIFORM only */
    tq_uniform_scope uniform_scope; /* UNIFORM only */
    uint32_t group_size;            /* UNIFORM GROUP only; must divide the set's dim */
} tq_config;

/** Defaults: MSE, Hadamard rotation (2 rounds), plain norm, seed 0, no split. */
TQ_API void tq_config_init(tq_config *cfg, uint32_t dim, uint32_t bits);

typedef struct tq_quantizer tq_quantizer;
typedef struct tq_query tq_query;

/**
 * Build a quantizer. Deterministic: the same config gives bit-identical
 * rotations and codes on every machine.
 * @return TQ_OK, or TQ_ERR_DIM / TQ_ERR_BITS / TQ_ERR_INVALID_ARG / TQ_ERR_NOMEM.
 */
TQ_API TQ_NODISCARD tq_status tq_quantizer_create(const tq_config *cfg, tq_quantizer **out);
TQ_API void tq_quantizer_free(tq_quantizer *q);
/**
 * Copy the config out; outlier_channels then points into q (valid while q
 * lives). rounds 0 reads back as 2. After tq_quantizer_load, fields the
 * quantizer never used (e.g. the seed of a dense-only quantizer, group_size of
 * a non-uniform one) read back as 0: the file format is canonical.
 */
TQ_API tq_status tq_quantizer_get_config(const tq_quantizer *q, tq_config *out);
TQ_API size_t tq_quantizer_dim(const tq_quantizer *q);
/** Bytes of one encoded vector. */
TQ_API size_t tq_quantizer_code_size(const tq_quantizer *q);
/** Stored bits per coordinate, every per-vector factor included (code_size*8/dim). */
TQ_API double tq_quantizer_bits_per_value(const tq_quantizer *q);
/**
 * Per-channel uniform baseline only: learn each channel's range from n sample
 * rows. Other quantizers need no calibration and return TQ_ERR_STATE.
 */
TQ_API TQ_NODISCARD tq_status tq_quantizer_calibrate(tq_quantizer *q, const float *x, size_t n);

/** Encode n rows of x into n * code_size bytes at codes. */
TQ_API TQ_NODISCARD tq_status tq_encode(const tq_quantizer *q, const float *x, size_t n, uint8_t *codes);
/** Decode n records into n rows of dim floats. */
TQ_API TQ_NODISCARD tq_status tq_decode(const tq_quantizer *q, const uint8_t *codes, size_t n, float *out);

/** A prepared query: rotated and projected once, scored against many codes. */
TQ_API TQ_NODISCARD tq_status tq_query_create(const tq_quantizer *q, tq_query **out);
TQ_API void tq_query_free(tq_query *pq);
/** Load a query vector (dim floats) into pq. */
TQ_API TQ_NODISCARD tq_status tq_query_set(tq_query *pq, const float *vec);
/**
 * Score n records straight from their codes: scores[i] estimates <q, x_i>
 * (TQ_METRIC_IP) or ||q - x_i||^2 (TQ_METRIC_L2).
 */
TQ_API TQ_NODISCARD tq_status tq_score(const tq_quantizer *q, const tq_query *pq, tq_metric metric,
                                       const uint8_t *codes, size_t n, float *scores);

/**
 * The Lloyd-Max codebook for one coordinate of a uniform unit vector in R^dim
 * (density ∝ (1-t^2)^((dim-3)/2) on [-1,1]) with 2^bits levels, sorted.
 * centroids must hold 2^bits floats; mse_unit (may be NULL) receives the
 * predicted E||x - x~||^2 for unit x: 1 - dim * sum_k P(cell k) c_k^2.
 */
TQ_API TQ_NODISCARD tq_status tq_codebook_get(uint32_t dim, uint32_t bits, float *centroids, double *mse_unit);

/**
 * Pick the k channels with the largest mean square over n sample rows
 * (ties: lower index first); channels[] receives them in increasing order.
 */
TQ_API TQ_NODISCARD tq_status tq_select_outliers(const float *x, size_t n, uint32_t dim, uint32_t k,
                                                 uint32_t *channels);

/* ---- Persistence (docs/format.md). Files are written atomically: a temp file
 *      then rename, so a failed save never damages an existing file. ---- */

TQ_API TQ_NODISCARD tq_status tq_quantizer_serialized_size(const tq_quantizer *q, size_t *size);
TQ_API TQ_NODISCARD tq_status tq_quantizer_serialize(const tq_quantizer *q, uint8_t *buf, size_t cap,
                                                     size_t *written);
TQ_API TQ_NODISCARD tq_status tq_quantizer_deserialize(const uint8_t *buf, size_t len, tq_quantizer **out);
TQ_API TQ_NODISCARD tq_status tq_quantizer_save(const tq_quantizer *q, const char *path);
TQ_API TQ_NODISCARD tq_status tq_quantizer_load(const char *path, tq_quantizer **out);

/** A code-array file: n records of q's code size, tied to q by a fingerprint. */
TQ_API TQ_NODISCARD tq_status tq_codes_save(const tq_quantizer *q, const uint8_t *codes, size_t n,
                                            const char *path);
/** Load records written for q; *codes is freed with tq_free. */
TQ_API TQ_NODISCARD tq_status tq_codes_load(const tq_quantizer *q, const char *path, uint8_t **codes,
                                            size_t *n);

/** What a code-array file's header says (see tq_codes_inspect). */
typedef struct tq_codes_info {
    uint32_t format_major, format_minor;
    uint64_t n;            /* records */
    uint32_t code_size;    /* bytes per record */
    uint32_t fingerprint;  /* tq_quantizer_fingerprint of the quantizer that wrote them */
} tq_codes_info;

/**
 * Check a code-array file as far as that is possible without its quantizer
 * (magic, version, header and records checksums, reserved fields, length) and
 * report its header; the records are streamed, not held in memory.
 */
TQ_API TQ_NODISCARD tq_status tq_codes_inspect(const char *path, tq_codes_info *info);
/** The fingerprint that ties code files to q (docs/format.md §3). */
TQ_API TQ_NODISCARD tq_status tq_quantizer_fingerprint(const tq_quantizer *q, uint32_t *fp);

/**
 * Read float32 vectors (docs/format.md §5 has every rule), the format chosen
 * by content first, then by name:
 *   .npy    (by magic) float32 '<f4', C order, 2-D (rows, dim);
 *   HDF5    (by signature) "file.hdf5" or "file.hdf5:DATASET" (a path that
 *           exists is taken whole; otherwise the part before the last ':'
 *           is the file). Default dataset "train" (ann-benchmarks layout:
 *           train, test, neighbors, distances). Any 2-D float or integer
 *           dataset is converted to float; only max_rows rows are read.
 *           TQ_ERR_FORMAT "built without HDF5 support" when libhdf5 was not
 *           found at build time (see tq_build_info);
 *   .bvecs  (by name) little-endian int32 dim + dim uint8 per row, as float;
 *   .fvecs  (anything else) little-endian int32 dim + dim float32 per row.
 * NaN/Inf are TQ_ERR_NONFINITE (naming row and column); malformed files
 * TQ_ERR_FORMAT; dims outside 1..TQ_MAX_DIM TQ_ERR_DIM. *data is freed with
 * tq_free (NULL when 0 rows). max_rows = 0 means all rows.
 */
TQ_API TQ_NODISCARD tq_status tq_read_vectors(const char *path, size_t max_rows, float **data, size_t *n,
                                              size_t *dim);

/**
 * Read integer rows (ground truth, search results) as int64: .npy (by magic;
 * 2-D '<i4' or '<i8', C order), an HDF5 integer dataset "file.hdf5[:DATASET]"
 * (default "neighbors"), otherwise .ivecs (int32 dim + dim int32 per row; an
 * empty file is 0 rows with *cols = 0). *data (n * cols values, NULL when 0
 * rows) is freed with tq_free. max_rows = 0 means all rows.
 */
TQ_API TQ_NODISCARD tq_status tq_read_ids(const char *path, size_t max_rows, int64_t **data, size_t *n,
                                          size_t *cols);
/**
 * Write n rows of cols integers atomically, as .ivecs or (by a ".npy" name)
 * an int32 .npy laid out as numpy's np.save writes it. Values must fit int32
 * (TQ_ERR_SIZE otherwise, nothing written; -1 is fine); cols 1..TQ_MAX_DIM
 * (TQ_ERR_DIM). n = 0 is legal (data may be NULL): an empty .ivecs file, or an
 * npy of shape (0, cols); tq_read_ids reads both back as 0 rows.
 */
TQ_API TQ_NODISCARD tq_status tq_write_ids(const char *path, const int64_t *data, size_t n, size_t cols);

/* ---- Vector index: a flat, training-free compressed index (docs/format.md §6).
 *
 * Vectors are searchable the moment tq_index_add returns. Every vector is
 * encoded with the index's quantizer; search scores straight from the codes
 * (for single-part MSE quantizers at 2 or 4 bits through an 8-bit
 * lookup-table scan of a blocked layout, then exact code scores for a
 * shortlist), optionally reranks the best candidates with stored float32
 * vectors or a second, finer code, and returns the top k.
 *
 * Threads: every call may come from any thread at any time, except
 * tq_index_free (no other call on the index may be running or start). The
 * index holds a reader-writer lock: searches, saves, tq_index_size,
 * tq_index_memory_usage and tq_index_get_config share it and run side by
 * side; tq_index_add and tq_index_remove take it alone (writer-preferring on
 * glibc, so a stream of searches cannot starve them), so each search sees
 * the index wholly before or wholly after a write, and a save taken during
 * writes holds one of the states the writer went through. A batch search
 * uses tq_set_threads() threads, parallel over queries. ---- */

typedef enum tq_index_metric {
    TQ_INDEX_IP = 0,     /* inner product, larger is closer */
    TQ_INDEX_L2 = 1,     /* squared Euclidean distance, smaller is closer */
    TQ_INDEX_COSINE = 2  /* cosine similarity: vectors and queries normalized first */
} tq_index_metric;

typedef enum tq_rerank_kind {
    TQ_RERANK_NONE = 0,   /* scores from the codes only */
    TQ_RERANK_FLOAT = 1,  /* keep float32 vectors; exact scores for the shortlist */
    TQ_RERANK_CODE = 2    /* keep a second code (MSE, rerank_bits, unbiased norm) for the shortlist */
} tq_rerank_kind;

/**
 * Centering. With a center c the index encodes x - c instead of x, scores a
 * query q by the estimate of <q - c, x - c> plus the exact <x, c> (one
 * float32 per vector, stored) and a per-query constant, and so estimates the
 * same <q, x> with the error of the much shorter residuals: on data whose
 * vectors share a common direction (image features, text embeddings) recall
 * rises sharply (README). The center is fixed once and never retrained:
 * every vector is still encoded on its own, on arrival.
 */
typedef enum tq_center_mode {
    TQ_CENTER_NONE = 0,   /* encode x itself */
    TQ_CENTER_FIRST = 1,  /* c = the mean of the vectors of the first tq_index_add (make it representative) */
    TQ_CENTER_GIVEN = 2   /* c = center_vector (dim floats, copied at create) */
} tq_center_mode;

typedef struct tq_index_config {
    tq_config quant;        /* the search quantizer (quant.dim is the index's dimension) */
    tq_index_metric metric;
    tq_rerank_kind rerank;
    uint32_t rerank_bits;   /* TQ_RERANK_CODE: 1..8 (default 8) */
    tq_center_mode center;
    const float *center_vector; /* TQ_CENTER_GIVEN only; NULL otherwise (reads back NULL) */
} tq_index_config;

/** Defaults: quantizer as tq_config_init but with TQ_NORM_UNBIASED (the best
 *  ranking, see README), metric IP, no rerank, rerank_bits 8, TQ_CENTER_FIRST. */
TQ_API void tq_index_config_init(tq_index_config *cfg, uint32_t dim, uint32_t bits);

typedef struct tq_index tq_index;

/** Search knobs; zero fields mean defaults. */
typedef struct tq_search_params {
    uint32_t shortlist;  /* candidates the lookup-table scan passes to exact code scoring
                            (default max(2k, k + 32)) */
    uint32_t rerank;     /* candidates rescored by the rerank data (default max(4k, 64)) */
} tq_search_params;

/** What the index holds in memory (bytes). */
typedef struct tq_index_memory {
    uint64_t codes;      /* codes and per-vector factors */
    uint64_t rerank;     /* float vectors or second codes */
    uint64_t ids;        /* ids and the id -> slot table */
    uint64_t total;      /* all of the above plus the quantizers */
    uint64_t mapped;     /* of total, bytes read from a memory-mapped file */
} tq_index_memory;

TQ_API TQ_NODISCARD tq_status tq_index_create(const tq_index_config *cfg, tq_index **out);
TQ_API void tq_index_free(tq_index *ix);
TQ_API TQ_NODISCARD tq_status tq_index_get_config(const tq_index *ix, tq_index_config *out);
TQ_API size_t tq_index_size(const tq_index *ix);
TQ_API size_t tq_index_dim(const tq_index *ix);
/** The search quantizer (owned by the index). */
TQ_API const tq_quantizer *tq_index_quantizer(const tq_index *ix);
TQ_API TQ_NODISCARD tq_status tq_index_memory_usage(const tq_index *ix, tq_index_memory *out);

/**
 * Add n vectors. ids: n distinct ids not in the index (>= 0), or NULL to
 * number them automatically (one more than the largest id ever added, from
 * 0). assigned (may be NULL) receives the n ids used. All or nothing: on
 * failure (NaN, a norm beyond float32 unless the metric is cosine, duplicate
 * id, no memory) the index is unchanged.
 */
TQ_API TQ_NODISCARD tq_status tq_index_add(tq_index *ix, const float *x, size_t n, const int64_t *ids,
                                           int64_t *assigned);
/** Remove the vectors with these ids; ids not present (negative ones too) are skipped. *removed (may be NULL)
 *  counts the rest. */
TQ_API TQ_NODISCARD tq_status tq_index_remove(tq_index *ix, const int64_t *ids, size_t n, size_t *removed);
/**
 * Top k for each of nq queries: ids[qi * k + r] and scores[qi * k + r]
 * (scores may be NULL), best first (IP and cosine: descending; L2:
 * ascending). Fewer than k vectors: the rest are id -1, score NaN.
 * params may be NULL. Queries must be finite and, unless the metric is
 * cosine, of norm <= FLT_MAX / sqrt(dim), so scores cannot overflow
 * (TQ_ERR_NONFINITE); a refused batch writes no result.
 */
TQ_API TQ_NODISCARD tq_status tq_index_search(const tq_index *ix, const float *queries, size_t nq, size_t k,
                                              const tq_search_params *params, int64_t *ids, float *scores);

/** Save atomically (temp file, fsync, rename): a failed save leaves the old file. */
TQ_API TQ_NODISCARD tq_status tq_index_save(const tq_index *ix, const char *path);
/** Load an index file into memory (every checksum verified). */
TQ_API TQ_NODISCARD tq_status tq_index_load(const char *path, tq_index **out);
/**
 * Open an index file memory-mapped: codes, ids and rerank data stay in the
 * page cache (checksums verified once at open). The index is fully usable;
 * the first add or remove copies the data into memory.
 */
TQ_API TQ_NODISCARD tq_status tq_index_open_mmap(const char *path, tq_index **out);


/* ---- KV cache: compressed keys and values for one attention layer, with
 *      decode attention computed straight from the codes.
 *
 * A tq_kv holds the keys and values of kv_heads heads of head_dim channels
 * for a growing sequence of tokens. Every token is encoded on its own, the
 * moment it is appended (or the moment it leaves the exact window), by the
 * key quantizer and the value quantizer: any tq_config (mse, prod, qjl,
 * uniform; fractional bits by the outlier split; K may get more bits than V).
 * Per-token factors are stored as fp16 by default (TQ_KV_FACTOR_F16); factors
 * attention never reads (the exact norm of TQ_NORM_UNBIASED) are not stored.
 *
 * tq_kv_attend computes softmax(scale * q K^T) V for query heads that share
 * KV heads (GQA: query head i reads KV head i / (q_heads / kv_heads)):
 * scores come from the rotated query against the packed key codes, the
 * softmax is an online (streaming, max-subtracted) one, values are
 * accumulated in the rotated domain of the value quantizer and rotated back
 * once per output. tq_attention_f32 is the float32 reference on plain arrays.
 *
 * Layouts: keys/values [n][kv_heads][head_dim], queries and outputs
 * [nq][q_heads][head_dim], all float32 row-major.
 *
 * Threads: as for tq_index, any call from any thread except tq_kv_free. A
 * reader-writer lock lets attend, logits, decode, length and memory usage
 * run side by side while tq_kv_append waits for them and runs alone, so an
 * attend sees the cache wholly before or after an append. attend runs over
 * (query token, KV head) items on tq_set_threads() threads; results do not
 * depend on the thread count. ---- */

/** Precision of the per-token factors (norms, scales, gamma) in the cache. */
typedef enum tq_kv_factor {
    TQ_KV_FACTOR_F16 = 0,  /* IEEE half: 2 bytes each (values beyond 65504 are refused) */
    TQ_KV_FACTOR_F32 = 1   /* float32, as tq_encode writes them */
} tq_kv_factor;

/** How the outlier channels of a split quantizer (outlier_count > 0) are chosen. */
typedef enum tq_kv_outliers {
    TQ_KV_OUTLIERS_FIXED = 0, /* the config's outlier_channels (or 0..k-1), the same for every head */
    TQ_KV_OUTLIERS_FIRST = 1  /* per head: the k channels of largest mean square in the first append
                                 (make it the prompt), fixed for good after that */
} tq_kv_outliers;

/**
 * Centering: the cache encodes k - c_k and v - c_v, with c the per-head mean
 * of the first append (make it the prompt), fixed for good. Exact, not an
 * approximation: softmax is unchanged when every key moves by the same c_k
 * (q.c_k is one constant per query, added back to the logits tq_kv_logits
 * reports), and sum_t p_t v_t = sum_t p_t (v_t - c_v) + c_v because the
 * weights sum to 1. What changes is the error: the residuals are shorter than
 * the keys and values, whose heads share a large common direction. On
 * SmolLM2 centering keys halves the KL divergence of the attention at 4 bits;
 * centering values does not help there (the attention-sink token, which takes
 * much of the weight, has a small value that centering makes longer), so the
 * default centers keys only.
 */
typedef enum tq_kv_center {
    TQ_KV_CENTER_NONE = 0,
    TQ_KV_CENTER_KEYS = 1,
    TQ_KV_CENTER_VALUES = 2,
    TQ_KV_CENTER_BOTH = 3
} tq_kv_center;

typedef struct tq_kv_config {
    uint32_t kv_heads;       /* 1..4096 */
    uint32_t head_dim;       /* key.dim and value.dim must equal it */
    tq_config key;           /* key quantizer */
    tq_config value;         /* value quantizer */
    uint32_t window;         /* the most recent `window` tokens are kept exact (float32); 0: none */
    uint32_t sinks;          /* the first `sinks` tokens are kept exact (float32): attention sinks */
    uint32_t capacity;       /* initial capacity in tokens (grows as needed); 0: 256 */
    tq_kv_factor factors;
    tq_kv_outliers outliers;
    tq_kv_center center;
} tq_kv_config;

/**
 * Defaults: kv_heads x head_dim, keys at key_bits and values at value_bits
 * (fractional bits such as 2.5 or 3.5 by the outlier split, see
 * tq_config_set_bits), MSE, Hadamard rotation; keys with TQ_NORM_UNBIASED
 * (unbiased scores), values with TQ_NORM_PLAIN; value seed = key seed + 1;
 * outliers TQ_KV_OUTLIERS_FIRST; TQ_KV_CENTER_KEYS; 4 sink tokens; fp16 factors; no window. Invalid bits are
 * left for tq_kv_create to report.
 */
TQ_API void tq_kv_config_init(tq_kv_config *cfg, uint32_t kv_heads, uint32_t head_dim, double key_bits,
                              double value_bits);

/**
 * Set cfg->bits (and the outlier split) for a possibly fractional bit count:
 * b = n + f with 0 < f < 1 puts round(f * dim) channels (outlier_count) at n + 1
 * bits (outlier_bits) and the rest at n; an integer b clears the split.
 * outlier_channels is left NULL. @return TQ_ERR_BITS when b is outside
 * 1..TQ_MAX_BITS, or the split would be empty or need more than TQ_MAX_BITS.
 */
TQ_API TQ_NODISCARD tq_status tq_config_set_bits(tq_config *cfg, double bits);

typedef struct tq_kv tq_kv;

/** What a KV cache holds (bytes), every byte of metadata counted. */
typedef struct tq_kv_memory {
    uint64_t tokens;          /* tokens appended */
    uint64_t compressed;      /* tokens held as codes (the rest are in the window) */
    uint64_t key_codes;       /* key records: packed indices, signs, factors */
    uint64_t value_codes;
    uint64_t window;          /* float32 keys and values of the exact window and sink tokens */
    uint64_t reserved;        /* allocated capacity beyond the tokens held */
    uint64_t quantizers;      /* rotations, codebooks, QJL matrices, channel lists */
    uint64_t centers;         /* the per-head centers (float32) */
    uint64_t total;           /* all of the above */
} tq_kv_memory;

TQ_API TQ_NODISCARD tq_status tq_kv_create(const tq_kv_config *cfg, tq_kv **out);
TQ_API void tq_kv_free(tq_kv *kv);
/** Copy the config out (key/value outlier_channels are NULL: they may differ per head). */
TQ_API TQ_NODISCARD tq_status tq_kv_get_config(const tq_kv *kv, tq_kv_config *out);
/** Tokens appended so far. */
TQ_API size_t tq_kv_length(const tq_kv *kv);
/**
 * Bytes one compressed token takes in a cache with this config, all heads,
 * keys and values, every factor counted (the exact sink and window tokens,
 * the centers and unused capacity are not: tq_kv_memory_usage has them). Fills *key_bytes / *value_bytes per head when not NULL.
 */
TQ_API TQ_NODISCARD tq_status tq_kv_token_bytes(const tq_kv_config *cfg, size_t *bytes, size_t *key_bytes,
                                                size_t *value_bytes);
TQ_API TQ_NODISCARD tq_status tq_kv_memory_usage(const tq_kv *kv, tq_kv_memory *out);

/**
 * Append n tokens (positions length .. length + n - 1). keys and values are
 * [n][kv_heads][head_dim]. All or nothing: NaN/Inf, a factor beyond fp16
 * range or no memory leave the cache unchanged. Every token is checked by
 * the append that brings it, also one that stays exact in the window for
 * now, so a later append never fails on an earlier token.
 */
TQ_API TQ_NODISCARD tq_status tq_kv_append(tq_kv *kv, const float *keys, const float *values, size_t n);

/**
 * Attention for nq query tokens: q is [nq][q_heads][head_dim], q_heads a
 * multiple of kv_heads. q_pos (may be NULL) gives each query token's
 * position: it attends tokens 0..q_pos[i] (causal; q_pos[i] < length).
 * NULL means every token (decode). scale 0 means 1/sqrt(head_dim).
 * out is [nq][q_heads][head_dim].
 */
TQ_API TQ_NODISCARD tq_status tq_kv_attend(const tq_kv *kv, const float *q, size_t nq, uint32_t q_heads,
                                           const int64_t *q_pos, float scale, float *out);

/**
 * The attention logits scale * <q, k_t> the cache computes, for one query
 * token (q [q_heads][head_dim]) and tokens 0..ntok-1 (ntok <= length):
 * logits[h * ntok + t]. Compressed tokens are scored from their codes,
 * window tokens exactly: the numbers tq_kv_attend feeds its softmax.
 */
TQ_API TQ_NODISCARD tq_status tq_kv_logits(const tq_kv *kv, const float *q, uint32_t q_heads, size_t ntok,
                                           float scale, float *logits);

/**
 * Tokens [start, start + n) back as float32 keys and values
 * ([n][kv_heads][head_dim]; either pointer may be NULL to skip that side):
 * sink and window tokens exactly, compressed tokens decoded from their codes
 * (tq_decode of the stored record, the center added back). For inspection,
 * and for engines whose attention kernels need float tensors; tq_kv_attend
 * never decodes.
 */
TQ_API TQ_NODISCARD tq_status tq_kv_decode(const tq_kv *kv, size_t start, size_t n, float *keys, float *values);

/**
 * Float32 reference attention on plain arrays (no compression), with the
 * same conventions as tq_kv_attend: keys, values [ntok][kv_heads][head_dim],
 * q [nq][q_heads][head_dim], q_pos as above (q_pos[i] < ntok). Scores and the
 * softmax are computed in double. NaN/Inf in keys, values or q:
 * TQ_ERR_NONFINITE; every argument is checked before out is written.
 */
TQ_API TQ_NODISCARD tq_status tq_attention_f32(const float *keys, const float *values, size_t ntok,
                                               uint32_t kv_heads, uint32_t head_dim, const float *q, size_t nq,
                                               uint32_t q_heads, const int64_t *q_pos, float scale, float *out);

#ifdef __cplusplus
}
#endif
#endif /* TQ_H */
