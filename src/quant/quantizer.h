/*
 * quantizer.h — the inside of a tq_quantizer, shared by src/quant (encode,
 * decode, score) and src/io (serialization). Nothing here is public.
 *
 * A quantizer is one or two "parts". Without an outlier split there is one
 * part over all channels. With a split, part 0 covers the outlier channels and
 * part 1 the regular ones; each part is a complete, independent quantizer of
 * the same variant over its own channel subset (own rotation stream, codebook
 * for its own dimension, own per-vector factors). A record is part 0's record
 * followed by part 1's.
 *
 * A part's record (all multi-byte fields little-endian, docs/format.md):
 *     [nfactors x float32][uniform group factors][packed indices][QJL sign bits]
 *   MSE   PLAIN/UNIT : factors = {scale}           scale = ||x|| or ||x||/||c||
 *   MSE   UNBIASED   : factors = {scale, norm}     scale = ||x||/<y,c>
 *   PROD  bits >= 2  : factors = {norm, gamma}, indices at bits-1, signs
 *   PROD  bits == 1,
 *   QJL              : factors = {gamma}, no indices, signs  (gamma = ||x||)
 *   UNIFORM PER_VECTOR: factors = {step} (sym) or {lo, step} (asym)
 *   UNIFORM PER_CHANNEL: no factors (ranges live in the quantizer)
 *   UNIFORM GROUP    : no float32 factors; per group fp16 {step} or {lo, step}
 */
#ifndef TQ_QUANTIZER_H
#define TQ_QUANTIZER_H

#include "../core/codebook.h"
#include "../core/common.h"
#include "../core/rotation.h"

typedef struct tq_part {
    uint32_t dim;        /* channels in this part */
    uint32_t bits;       /* total bits per coordinate of this part */
    uint32_t mse_bits;   /* codebook/uniform index bits: MSE, UNIFORM: bits; PROD: bits-1; QJL: 0 */
    int has_qjl;         /* PROD, QJL */
    tq_rotation rot;     /* Pi, stream TQ_STREAM_ROTATION + 16*part */
    tq_codebook cb;      /* valid when mse_bits > 0 and variant is MSE or PROD */
    /* QJL stage */
    float *qjl_matrix;   /* TQ_QJL_DENSE: dim x dim row-major N(0,1), stream TQ_STREAM_QJL + 16*part */
    tq_rotation qjl_rot; /* TQ_QJL_STRUCTURED: Hadamard map R, stream TQ_STREAM_QJL + 16*part */
    double qjl_scale;    /* kappa: <q, r> ~= kappa * gamma * <S q, z>, z = sign(S e) in {-1,+1} */
    /* UNIFORM PER_CHANNEL ranges (after calibration): value = ch_lo[j] + ch_step[j] * k */
    float *ch_lo;
    float *ch_step;
    /* record layout of this part */
    uint32_t nfactors;   /* float32 factors at the record start */
    size_t group_bytes;  /* UNIFORM GROUP: fp16 factors of all groups */
    size_t idx_bytes;    /* packed indices */
    size_t sign_bytes;   /* ceil(dim / 8) when has_qjl */
    size_t off_group, off_idx, off_sign;
    size_t code_size;
    size_t offset;       /* where this part's record starts inside the full record */
} tq_part;

struct tq_quantizer {
    tq_config cfg;          /* cfg.outlier_channels points at outliers (or is NULL) */
    uint32_t nparts;        /* 1 or 2 */
    uint32_t *outliers;     /* sorted outlier channels (outlier_count), or NULL */
    uint32_t *channels[2];  /* with a split: channel list of each part; NULL otherwise */
    tq_part part[2];
    size_t code_size;
    int calibrated;         /* UNIFORM PER_CHANNEL: ranges are set */
};

/**
 * Validate cfg and build a quantizer. With fill_dense = 0 the dense rotation
 * and dense QJL matrices are allocated but left zero, for a loader to fill from
 * a file; with 1 they are generated from the seed. Everything else (Hadamard
 * signs and permutations, codebooks, layout) is always built.
 */
TQ_INTERNAL tq_status tq_quantizer_build(const tq_config *cfg, int fill_dense, tq_quantizer **out);

/** Work buffers for one vector of up to dim channels (encode, decode, query preparation). */
typedef struct tq_work {
    float *sub, *y, *e, *proj, *scratch; /* scratch holds 2*dim floats + 16 bytes */
    uint8_t *idx;
} tq_work;
TQ_INTERNAL tq_status tq_work_alloc(tq_work *w, uint32_t dim);
TQ_INTERNAL void tq_work_free(tq_work *w);
/** The larger part dimension (work buffers are sized by it). */
TQ_INTERNAL uint32_t tq_quantizer_max_part_dim(const tq_quantizer *q);

/** Part p's channels of x (dim floats) into sub, and back. */
TQ_INTERNAL void tq_part_gather(const tq_quantizer *q, uint32_t p, const float *x, float *sub);
TQ_INTERNAL void tq_part_scatter(const tq_quantizer *q, uint32_t p, const float *sub, float *x);
/** S^T z (dense QJL) or R^T z (structured) for z in R^dim; scratch as tq_work's. */
TQ_INTERNAL void tq_part_qjl_transpose(const tq_part *pt, const float *z, float *out, float *scratch);
/**
 * Part p of a full record rec, reconstructed in the part's rotated domain
 * (tq_decode before the inverse rotation): v (part dim floats). With zcoef
 * NULL the QJL term is included; otherwise it is left out of v and *zcoef
 * receives its coefficient k = kappa * gamma, so that the full value is
 * v + k * S^T z with z = +-1 from the record's sign bits (linear: a weighted
 * sum of many records needs S^T once).
 */
TQ_INTERNAL void tq_part_decode_rotated(const tq_quantizer *q, uint32_t p, const uint8_t *rec, tq_work *w, float *v,
                                        float *zcoef);
/** The inner-product estimate tq_score gives one full record (idx: max part dim bytes of scratch); *n2 (may be
 *  NULL) receives the squared norm the L2 metric uses. */
TQ_INTERNAL double tq_query_ip_record(const tq_query *pq, const uint8_t *rec, uint8_t *idx, double *n2);
/** Pi_p q and (QJL variants) S Pi_p q of a prepared query. */
TQ_INTERNAL const float *tq_query_rotated(const tq_query *pq, uint32_t p);
TQ_INTERNAL const float *tq_query_projected(const tq_query *pq, uint32_t p);
/** The quantizer a query was prepared for. */
TQ_INTERNAL const tq_quantizer *tq_query_quantizer(const tq_query *pq);

/**
 * The checks tq_encode makes of n rows before it writes anything: every value finite, every norm within
 * float32, and (for the rare rows of very large norm, tried once) factors that fit their storage. One scan
 * per row. Messages name the rows `what` row0, row0 + 1, ...
 */
TQ_INTERNAL tq_status tq_encode_check(const tq_quantizer *q, const float *x, size_t n, const char *what, size_t row0);
/**
 * tq_encode of n rows that passed tq_encode_check, on the calling thread. With idx non-NULL (single-part MSE
 * quantizers only) row i's indices go unpacked to idx + i * dim and the records' packed indices are not
 * written (the factors are).
 */
TQ_INTERNAL tq_status tq_encode_rows(const tq_quantizer *q, const float *x, size_t n, uint8_t *codes, uint8_t *idx);

/** Check a config without building anything (same errors as tq_quantizer_create). */
TQ_INTERNAL tq_status tq_config_validate(const tq_config *cfg);

#endif /* TQ_QUANTIZER_H */
