/*
 * kernels_ref.c — the scalar reference kernels: the specification every SIMD
 * table is tested against (kernels.h says what must match bit for bit and
 * what within a tolerance). Plain C11, no intrinsics; the build uses
 * -ffp-contract=off so no compiler may fuse a multiply and an add here.
 */
#include <math.h>

#include "../core/pack.h"
#include "kernels.h"

static void fwht_ref(float *x, uint32_t len) {
    if (len < 2) return;
    for (uint32_t h = 1; h < len; h *= 2) {
        for (uint32_t i = 0; i < len; i += 2 * h) {
            float *a = x + i, *b = x + i + h;
            for (uint32_t j = 0; j < h; j++) {
                float u = a[j], v = b[j];
                a[j] = u + v;
                b[j] = u - v;
            }
        }
    }
    /* For len a power of four the scale is an exact power of two; otherwise
     * one rounding, which keeps the map within 1e-7 of orthogonal. */
    const float scale = (float)(1.0 / sqrt((double)len));
    for (uint32_t i = 0; i < len; i++) x[i] *= scale;
}

static void dense_forward_ref(const float *M, uint32_t dim, const float *x, float *y) {
    for (uint32_t i = 0; i < dim; i++) {
        const float *row = M + (size_t)i * dim;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        uint32_t j = 0;
        for (; j + 4 <= dim; j += 4) {
            s0 += (double)row[j] * (double)x[j];
            s1 += (double)row[j + 1] * (double)x[j + 1];
            s2 += (double)row[j + 2] * (double)x[j + 2];
            s3 += (double)row[j + 3] * (double)x[j + 3];
        }
        if (j < dim) s0 += (double)row[j] * (double)x[j];
        if (j + 1 < dim) s1 += (double)row[j + 1] * (double)x[j + 1];
        if (j + 2 < dim) s2 += (double)row[j + 2] * (double)x[j + 2];
        y[i] = (float)((s0 + s1) + (s2 + s3));
    }
}

static void nearest_ref(const float *bounds, uint32_t levels, const float *y, uint32_t d, uint8_t *idx) {
    for (uint32_t j = 0; j < d; j++) {
        /* binary search: the number of bounds strictly below y[j] */
        uint32_t lo = 0, hi = levels - 1;
        float v = y[j];
        while (lo < hi) {
            uint32_t mid = (lo + hi) >> 1;
            if (v > bounds[mid]) lo = mid + 1; else hi = mid;
        }
        idx[j] = (uint8_t)lo;
    }
}

/* Four interleaved double partial sums (lane j % 4), combined (s0+s1)+(s2+s3). */
static double ip_codes_ref(const float *q, const float *c, const uint8_t *packed, uint32_t d, uint32_t bits,
                           uint8_t *idx) {
    tq_unpack(packed, d, bits, idx);
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    uint32_t j = 0;
    for (; j + 4 <= d; j += 4) {
        s0 += (double)q[j] * c[idx[j]];
        s1 += (double)q[j + 1] * c[idx[j + 1]];
        s2 += (double)q[j + 2] * c[idx[j + 2]];
        s3 += (double)q[j + 3] * c[idx[j + 3]];
    }
    for (; j < d; j++) s0 += (double)q[j] * c[idx[j]];
    return (s0 + s1) + (s2 + s3);
}

static double ip_signs_ref(const float *p, const uint8_t *signs, uint32_t d) {
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    for (uint32_t i = 0; i < d; i++) {
        double v = p[i];
        s[i & 3] += ((signs[i >> 3] >> (i & 7)) & 1u) ? v : -v;
    }
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static double dot_f64_ref(const float *a, const float *b, uint32_t d) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    uint32_t j = 0;
    for (; j + 4 <= d; j += 4) {
        s0 += (double)a[j] * b[j];
        s1 += (double)a[j + 1] * b[j + 1];
        s2 += (double)a[j + 2] * b[j + 2];
        s3 += (double)a[j + 3] * b[j + 3];
    }
    for (; j < d; j++) s0 += (double)a[j] * b[j];
    return (s0 + s1) + (s2 + s3);
}

static void dot_f64_x4_ref(const float *const a[4], const float *const b[4], uint32_t d, double out[4]) {
    for (int r = 0; r < 4; r++) out[r] = dot_f64_ref(a[r], b[r], d);
}

static uint32_t absmax_bits_ref(const float *x, size_t n) { return tq_abs_bits_max(x, n); }

static void div_f32_ref(const float *x, double s, uint32_t d, float *out) {
    for (uint32_t j = 0; j < d; j++) out[j] = (float)((double)x[j] / s);
}

static void lookup_ref(const float *table, const uint8_t *idx, uint32_t d, float *out) {
    for (uint32_t j = 0; j < d; j++) out[j] = table[idx[j]];
}

static void kv_logits_ref(const tq_kv_part *parts, uint32_t np, uint32_t G, const uint8_t *codes, size_t stride,
                          size_t n, const float *bias, uint8_t *scratch, float *out, size_t ostride) {
    for (size_t t = 0; t < n; t++) {
        for (uint32_t g = 0; g < G; g++) {
            float v = bias[g];
            for (uint32_t p = 0; p < np; p++) {
                const tq_kv_part *pt = &parts[p];
                float dot = (float)ip_codes_ref(pt->q + (size_t)g * pt->d, pt->cent, codes + t * stride + pt->off,
                                                pt->d, pt->bits, scratch);
                v += pt->f[t] * dot;
            }
            out[g * ostride + t] = v;
        }
    }
}

static void kv_accum_ref(const float *w, uint32_t G, const float *cent, const uint8_t *codes, size_t stride, size_t n,
                         uint32_t d, uint32_t bits, uint8_t *scratch, float *acc) {
    for (size_t t = 0; t < n; t++) {
        tq_unpack(codes + t * stride, d, bits, scratch);
        for (uint32_t g = 0; g < G; g++) {
            float wg = w[g * n + t];
            float *a = acc + (size_t)g * d;
            for (uint32_t j = 0; j < d; j++) a[j] += wg * cent[scratch[j]];
        }
    }
}

static void f16_load_ref(const uint8_t *src, size_t stride, size_t n, float *out) {
    for (size_t t = 0; t < n; t++) out[t] = tq_f16_to_f32(tq_get_u16(src + t * stride));
}

static float softmax_block_ref(float *x, size_t n, float *m, double *sum) {
    float mx = *m;
    for (size_t t = 0; t < n; t++)
        if (x[t] > mx) mx = x[t];
    float rescale = *m == -INFINITY ? 0.0f : (float)exp((double)*m - (double)mx);
    double s = 0.0;
    for (size_t t = 0; t < n; t++) {
        x[t] = (float)exp((double)x[t] - (double)mx);
        s += x[t];
    }
    *m = mx;
    *sum = s;
    return rescale;
}

static const tq_kernel_table tq_ref_table = {
    "ref",      fwht_ref,   dense_forward_ref, nearest_ref, ip_codes_ref, ip_signs_ref,
    dot_f64_ref, div_f32_ref, lookup_ref,       kv_logits_ref, kv_accum_ref, f16_load_ref, softmax_block_ref,
    dot_f64_x4_ref, absmax_bits_ref,
};

const tq_kernel_table *tq_kernels_ref(void) { return &tq_ref_table; }
