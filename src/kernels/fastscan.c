/*
 * fastscan.c — the blocked layout, the query tables, the scalar sums kernel
 * (the specification of fastscan.h) and the record helpers.
 *
 * Layering note: unlike the other kernels this file also reads the inside of
 * a quantizer (quant/quantizer.h) for tq_fs_pack_records / tq_fs_query_lut,
 * so that a caller holding records needs nothing else.
 */
#include "fastscan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/pack.h"
#include "../core/rotation.h"
#include "../quant/quantizer.h"
#include "kernels.h"

uint32_t tq_fs_groups(uint32_t d, uint32_t bits) {
    if (d == 0 || d > TQ_MAX_DIM || (bits != 2 && bits != 4)) return 0;
    return bits == 4 ? d : (d + 1) / 2;
}

static uint32_t fs_pairs(uint32_t d, uint32_t bits) { return (tq_fs_groups(d, bits) + 1) / 2; }

size_t tq_fs_size(size_t n, uint32_t d, uint32_t bits) {
    uint32_t P = fs_pairs(d, bits);
    if (P == 0) return 0;
    size_t blocks = n / TQ_FS_BLOCK + (n % TQ_FS_BLOCK != 0), per = (size_t)P * 32, total;
    if (!tq_mul_size(blocks, per, &total)) return 0;
    return total;
}

size_t tq_fs_lut_size(uint32_t d, uint32_t bits) { return (size_t)fs_pairs(d, bits) * 32; }

/* The 4-bit nibble of group g of one vector (row of d indices). */
static inline uint32_t fs_nibble(const uint8_t *row, uint32_t d, uint32_t bits, uint32_t g) {
    if (bits == 4) return g < d ? row[g] & 15u : 0;
    uint32_t j = 2 * g;
    uint32_t a = j < d ? row[j] & 3u : 0, b = j + 1 < d ? row[j + 1] & 3u : 0;
    return a | b << 2;
}

static tq_status fs_check(const void *a, const void *b, size_t n, uint32_t d, uint32_t bits) {
    TQ_RETURN_IF(bits != 2 && bits != 4, TQ_ERR_INVALID_ARG, "fast scan needs bits 2 or 4, not %u", bits);
    TQ_RETURN_IF(d == 0 || d > TQ_MAX_DIM, TQ_ERR_INVALID_ARG, "fast scan: d = %u out of range", d);
    TQ_RETURN_IF(n > 0 && tq_fs_size(n, d, bits) == 0, TQ_ERR_INVALID_ARG, "fast scan: n = %zu is too large", n);
    TQ_RETURN_IF(n > 0 && (!a || !b), TQ_ERR_INVALID_ARG, "fast scan: NULL buffer");
    size_t cells;
    TQ_RETURN_IF(!tq_mul_size(n, d, &cells), TQ_ERR_INVALID_ARG, "fast scan: n x d overflows");
    return TQ_OK;
}

tq_status tq_fs_pack(const uint8_t *idx_rows, size_t n, uint32_t d, uint32_t bits, uint8_t *out) {
    TQ_FORWARD(fs_check(idx_rows, out, n, d, bits));
    uint32_t P = fs_pairs(d, bits), G2 = 2 * P;
    size_t nblocks = (n + TQ_FS_BLOCK - 1) / TQ_FS_BLOCK;
    /* per block: the 32 rows' nibbles, group by group (absent rows and groups 0), then the transpose into the
     * layout with fixed strides */
    uint8_t *nib = calloc((size_t)TQ_FS_BLOCK * G2, 1);
    TQ_RETURN_IF(!nib, TQ_ERR_NOMEM, "out of memory for fast-scan packing");
    for (size_t b = 0; b < nblocks; b++) {
        uint8_t *blk = out + b * (size_t)P * 32;
        for (uint32_t v = 0; v < TQ_FS_BLOCK; v++) {
            size_t i = b * TQ_FS_BLOCK + v;
            uint8_t *nv = nib + (size_t)v * G2;
            if (i >= n) {
                memset(nv, 0, G2);
                continue;
            }
            const uint8_t *row = idx_rows + i * (size_t)d;
            if (bits == 4) {
                for (uint32_t g = 0; g < d; g++) nv[g] = row[g] & 15u;
                for (uint32_t g = d; g < G2; g++) nv[g] = 0;
            } else {
                uint32_t full = d / 2;
                for (uint32_t g = 0; g < full; g++) nv[g] = (uint8_t)((row[2 * g] & 3u) | (row[2 * g + 1] & 3u) << 2);
                for (uint32_t g = full; g < G2; g++) nv[g] = (uint8_t)fs_nibble(row, d, bits, g);
            }
        }
        for (uint32_t p = 0; p < P; p++) {
            uint8_t *pr = blk + (size_t)p * 32;
            for (uint32_t t = 0; t < 16; t++) {
                const uint8_t *lo = nib + (size_t)t * G2, *hi = nib + (size_t)(t + 16) * G2;
                pr[t] = (uint8_t)(lo[2 * p] | hi[2 * p] << 4);
                pr[16 + t] = (uint8_t)(lo[2 * p + 1] | hi[2 * p + 1] << 4);
            }
        }
    }
    free(nib);
    return TQ_OK;
}

tq_status tq_fs_unpack(const uint8_t *packed, size_t n, uint32_t d, uint32_t bits, uint8_t *idx_rows) {
    TQ_FORWARD(fs_check(packed, idx_rows, n, d, bits));
    uint32_t P = fs_pairs(d, bits);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *blk = packed + (i / TQ_FS_BLOCK) * (size_t)P * 32;
        uint32_t v = (uint32_t)(i % TQ_FS_BLOCK), t = v & 15u, shift = v < 16 ? 0 : 4;
        uint8_t *row = idx_rows + i * (size_t)d;
        for (uint32_t j = 0; j < d; j++) {
            uint32_t g = bits == 4 ? j : j / 2, p = g / 2;
            uint32_t nib = (blk[(size_t)p * 32 + (g & 1u) * 16 + t] >> shift) & 15u;
            row[j] = (uint8_t)(bits == 4 ? nib : (nib >> (2 * (j & 1u))) & 3u);
        }
    }
    return TQ_OK;
}

void tq_fs_set_row(uint8_t *packed, size_t i, uint32_t d, uint32_t bits, const uint8_t *row) {
    uint32_t P = fs_pairs(d, bits);
    uint8_t *blk = packed + (i / TQ_FS_BLOCK) * (size_t)P * 32;
    uint32_t v = (uint32_t)(i % TQ_FS_BLOCK), t = v & 15u, shift = v < 16 ? 0 : 4;
    uint8_t keep = (uint8_t)(v < 16 ? 0xF0 : 0x0F);
    for (uint32_t p = 0; p < P; p++) {
        uint8_t *pr = blk + (size_t)p * 32;
        pr[t] = (uint8_t)((pr[t] & keep) | fs_nibble(row, d, bits, 2 * p) << shift);
        pr[16 + t] = (uint8_t)((pr[16 + t] & keep) | fs_nibble(row, d, bits, 2 * p + 1) << shift);
    }
}

void tq_fs_get_row(const uint8_t *packed, size_t i, uint32_t d, uint32_t bits, uint8_t *row) {
    uint32_t P = fs_pairs(d, bits);
    const uint8_t *blk = packed + (i / TQ_FS_BLOCK) * (size_t)P * 32;
    uint32_t v = (uint32_t)(i % TQ_FS_BLOCK), t = v & 15u, shift = v < 16 ? 0 : 4;
    for (uint32_t j = 0; j < d; j++) {
        uint32_t g = bits == 4 ? j : j / 2, p = g / 2;
        uint32_t nib = (blk[(size_t)p * 32 + (g & 1u) * 16 + t] >> shift) & 15u;
        row[j] = (uint8_t)(bits == 4 ? nib : (nib >> (2 * (j & 1u))) & 3u);
    }
}

/* The 16 exact entries of group g (double). */
static void fs_group_entries(const float *qrot, uint32_t d, uint32_t bits, const float *c, uint32_t g, double e[16]) {
    if (bits == 4) {
        for (uint32_t k = 0; k < 16; k++) e[k] = (double)qrot[g] * c[k];
    } else {
        uint32_t j = 2 * g;
        double qa = qrot[j], qb = j + 1 < d ? qrot[j + 1] : 0.0;
        for (uint32_t k = 0; k < 16; k++) e[k] = qa * c[k & 3u] + qb * c[k >> 2];
    }
}

tq_status tq_fs_lut(const float *qrot, uint32_t d, uint32_t bits, const float *centroids, uint8_t *lut,
                    float *offset, float *delta) {
    TQ_RETURN_IF(!qrot || !centroids || !lut || !offset || !delta, TQ_ERR_INVALID_ARG, "fast scan lut: NULL argument");
    TQ_RETURN_IF(tq_fs_groups(d, bits) == 0, TQ_ERR_INVALID_ARG, "fast scan lut: d = %u, bits = %u not supported", d,
                 bits);
    uint32_t G = tq_fs_groups(d, bits), P = fs_pairs(d, bits);
    double e[16], maxr = 0.0, off = 0.0;
    /* pass 1: per-group minimum (summed into the offset) and the largest range */
    for (uint32_t g = 0; g < G; g++) {
        fs_group_entries(qrot, d, bits, centroids, g, e);
        double lo = e[0], hi = e[0];
        for (uint32_t k = 1; k < 16; k++) {
            lo = e[k] < lo ? e[k] : lo;
            hi = e[k] > hi ? e[k] : hi;
        }
        TQ_RETURN_IF(!isfinite(lo) || !isfinite(hi), TQ_ERR_NONFINITE,
                     "fast scan lut: group %u has a non-finite value", g);
        off += lo;
        if (hi - lo > maxr) maxr = hi - lo;
    }
    TQ_RETURN_IF(!isfinite((float)off), TQ_ERR_NONFINITE, "fast scan lut: offset overflows float");
    float dl = (float)(maxr / 255.0);
    memset(lut, 0, (size_t)P * 32);
    if (dl > 0.0f) {
        /* pass 2: T = round-half-up((e - lo) / delta), clamped to 255 (reached only through the
         * rounding of delta to float) */
        double inv = 1.0 / (double)dl;
        for (uint32_t g = 0; g < G; g++) {
            fs_group_entries(qrot, d, bits, centroids, g, e);
            double lo = e[0];
            for (uint32_t k = 1; k < 16; k++) lo = e[k] < lo ? e[k] : lo;
            for (uint32_t k = 0; k < 16; k++) {
                double t = (e[k] - lo) * inv + 0.5; /* >= 0.5 */
                lut[(size_t)g * 16 + k] = (uint8_t)(t >= 255.0 ? 255u : (uint32_t)t);
            }
        }
    } else {
        dl = 0.0f; /* also when maxr / 255 underflows float: every entry 0, every score the offset */
    }
    *offset = (float)off;
    *delta = dl;
    return TQ_OK;
}

/*
 * The specification: S_v = sum over pairs p of T_2p[lo nibble] + T_2p+1[...]
 * in the layout of fastscan.h, accumulated in uint32 (no overflow:
 * S <= 255 * 2P <= 255 * 65536).
 */
void tq_fs_sums_ref(const uint8_t *packed, size_t nblocks, uint32_t npairs, const uint8_t *lut, uint32_t *sums) {
    for (size_t b = 0; b < nblocks; b++) {
        const uint8_t *blk = packed + b * (size_t)npairs * 32;
        uint32_t *s = sums + b * TQ_FS_BLOCK;
        for (uint32_t v = 0; v < TQ_FS_BLOCK; v++) s[v] = 0;
        for (uint32_t p = 0; p < npairs; p++) {
            const uint8_t *pr = blk + (size_t)p * 32, *t0 = lut + (size_t)p * 32, *t1 = t0 + 16;
            for (uint32_t t = 0; t < 16; t++) {
                uint32_t a = pr[t], c = pr[16 + t];
                s[t] += (uint32_t)t0[a & 15u] + t1[c & 15u];
                s[16 + t] += (uint32_t)t0[a >> 4] + t1[c >> 4];
            }
        }
    }
}

tq_fs_sums_fn tq_fs_sums_active(void) {
    /* the scan of the ISA whose table runs (the tables were chosen from CPUID, so the kernel can run) */
    const tq_kernel_table *k = tq_kernels();
    tq_fs_sums_fn fn = tq_fs_sums_neon();
    if (fn && k == tq_kernels_neon()) return fn;
    tq_fs_sums_fn f512 = tq_fs_sums_avx512(), f2 = tq_fs_sums_avx2();
    if (f512 && k == tq_kernels_avx512()) return f512;
    if (f2 && (k == tq_kernels_avx2() || k == tq_kernels_avx512())) return f2;
    return tq_fs_sums_ref;
}

tq_status tq_fs_scan(const uint8_t *packed, size_t n, uint32_t d, uint32_t bits, const uint8_t *lut, float offset,
                     float delta, float *out) {
    TQ_FORWARD(fs_check(packed, out, n, d, bits));
    TQ_RETURN_IF(n > 0 && !lut, TQ_ERR_INVALID_ARG, "fast scan: NULL table");
    enum { CHUNK = 16 }; /* blocks per kernel call */
    uint32_t sums[CHUNK * TQ_FS_BLOCK];
    uint32_t P = fs_pairs(d, bits);
    tq_fs_sums_fn f = tq_fs_sums_active();
    size_t nblocks = (n + TQ_FS_BLOCK - 1) / TQ_FS_BLOCK;
    for (size_t b = 0; b < nblocks; b += CHUNK) {
        size_t nb = nblocks - b < CHUNK ? nblocks - b : CHUNK;
        f(packed + b * (size_t)P * 32, nb, P, lut, sums);
        size_t base = b * TQ_FS_BLOCK, m = nb * TQ_FS_BLOCK;
        if (m > n - base) m = n - base;
        for (size_t i = 0; i < m; i++) out[base + i] = offset + delta * (float)sums[i];
    }
    return TQ_OK;
}

tq_fs_sums4_fn tq_fs_sums4_active(void) {
    tq_fs_sums4_fn f = tq_fs_sums4_avx512();
    return f && tq_kernels() == tq_kernels_avx512() ? f : NULL;
}

tq_status tq_fs_scan_multi(const uint8_t *packed, size_t n, uint32_t d, uint32_t bits, uint32_t nq,
                           const uint8_t *const *luts, const float *offset, const float *delta, float *const *out) {
    TQ_RETURN_IF(nq > TQ_FS_MAX_QUERIES, TQ_ERR_INVALID_ARG, "fast scan: %u queries at once (at most %d)", nq,
                 TQ_FS_MAX_QUERIES);
    tq_fs_sums4_fn f4 = tq_fs_sums4_active();
    if (!f4 || nq < 2) {
        for (uint32_t q = 0; q < nq; q++) TQ_FORWARD(tq_fs_scan(packed, n, d, bits, luts[q], offset[q], delta[q], out[q]));
        return TQ_OK;
    }
    for (uint32_t q = 0; q < nq; q++) {
        TQ_FORWARD(fs_check(packed, out[q], n, d, bits));
        TQ_RETURN_IF(n > 0 && !luts[q], TQ_ERR_INVALID_ARG, "fast scan: NULL table");
    }
    enum { CHUNK = 8 }; /* blocks per kernel call */
    uint32_t sums[TQ_FS_MAX_QUERIES][CHUNK * TQ_FS_BLOCK];
    uint32_t *sp[TQ_FS_MAX_QUERIES];
    for (uint32_t q = 0; q < nq; q++) sp[q] = sums[q];
    uint32_t P = fs_pairs(d, bits);
    size_t nblocks = (n + TQ_FS_BLOCK - 1) / TQ_FS_BLOCK;
    for (size_t b = 0; b < nblocks; b += CHUNK) {
        size_t nb = nblocks - b < CHUNK ? nblocks - b : CHUNK;
        f4(packed + b * (size_t)P * 32, nb, P, luts, nq, sp);
        size_t base = b * TQ_FS_BLOCK, m = nb * TQ_FS_BLOCK;
        if (m > n - base) m = n - base;
        for (uint32_t q = 0; q < nq; q++)
            for (size_t i = 0; i < m; i++) out[q][base + i] = offset[q] + delta[q] * (float)sums[q][i];
    }
    return TQ_OK;
}

/* ---------------------------------------------------------------- records */

static tq_status fs_check_quantizer(const tq_quantizer *q) {
    TQ_RETURN_IF(!q, TQ_ERR_INVALID_ARG, "NULL quantizer");
    TQ_RETURN_IF(q->nparts != 1 || q->cfg.outlier_count != 0, TQ_ERR_INVALID_ARG,
                 "fast scan needs a quantizer without an outlier split");
    TQ_RETURN_IF(q->cfg.variant != TQ_VARIANT_MSE, TQ_ERR_INVALID_ARG, "fast scan needs the MSE variant");
    const tq_part *pt = &q->part[0];
    TQ_RETURN_IF(pt->mse_bits != 2 && pt->mse_bits != 4, TQ_ERR_INVALID_ARG, "fast scan needs 2 or 4 bits, not %u",
                 pt->mse_bits);
    TQ_RETURN_IF(pt->nfactors < 1, TQ_ERR_INVALID_ARG, "fast scan: the record has no scale");
    return TQ_OK;
}

tq_status tq_fs_pack_records(const tq_quantizer *q, const uint8_t *codes, size_t n, uint8_t *out, float *scales) {
    TQ_FORWARD(fs_check_quantizer(q));
    const tq_part *pt = &q->part[0];
    uint32_t d = pt->dim, bits = pt->mse_bits;
    TQ_FORWARD(fs_check(codes, out, n, d, bits));
    size_t total;
    TQ_RETURN_IF(!tq_mul_size(n, q->code_size, &total), TQ_ERR_SIZE, "n = %zu records overflow", n);
    /* unpack 32 records at a time and pack their block */
    size_t rows_bytes = (size_t)TQ_FS_BLOCK * d;
    uint8_t *rows = malloc(rows_bytes);
    TQ_RETURN_IF(!rows, TQ_ERR_NOMEM, "out of memory for fast-scan packing");
    size_t blk_bytes = tq_fs_size(TQ_FS_BLOCK, d, bits);
    tq_status s = TQ_OK;
    for (size_t b = 0; b * TQ_FS_BLOCK < n && s == TQ_OK; b++) {
        size_t i0 = b * TQ_FS_BLOCK, m = n - i0 < TQ_FS_BLOCK ? n - i0 : TQ_FS_BLOCK;
        for (size_t v = 0; v < m; v++) {
            const uint8_t *rec = codes + (i0 + v) * q->code_size + pt->offset;
            tq_unpack(rec + pt->off_idx, d, bits, rows + v * d);
            if (scales) scales[i0 + v] = tq_get_f32(rec);
        }
        s = tq_fs_pack(rows, m, d, bits, out + b * blk_bytes);
    }
    free(rows);
    return s;
}

tq_status tq_fs_query_lut(const tq_quantizer *q, const float *query, uint8_t *lut, float *offset, float *delta) {
    TQ_FORWARD(fs_check_quantizer(q));
    TQ_RETURN_IF(!query, TQ_ERR_INVALID_ARG, "NULL query");
    const tq_part *pt = &q->part[0];
    uint32_t d = pt->dim;
    for (uint32_t j = 0; j < d; j++)
        TQ_RETURN_IF(!isfinite(query[j]), TQ_ERR_NONFINITE, "query channel %u is not finite", j);
    float *buf = malloc(((size_t)3 * d + 16) * sizeof(float));
    TQ_RETURN_IF(!buf, TQ_ERR_NOMEM, "out of memory for a fast-scan query");
    tq_rotation_forward(&pt->rot, query, buf, 1, buf + d);
    tq_status s = tq_fs_lut(buf, d, pt->mse_bits, pt->cb.centroids, lut, offset, delta);
    free(buf);
    return s;
}
