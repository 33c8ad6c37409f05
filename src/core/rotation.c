/*
 * rotation.c — the random orthogonal maps Pi (see rotation.h for the maths).
 *
 * Everything here is specified down to the order of floating-point
 * operations, because a rotation decides codes and codes must be
 * bit-identical on every machine (DESIGN.md §4). Only + - * / and sqrt are
 * used (IEEE-exact), accumulation orders are written out, and the build uses
 * -ffp-contract=off. A SIMD version of forward/inverse must reproduce the
 * orders documented at tq_dense_forward_row / tq_dense_inverse_row.
 *
 * DENSE (Haar). Random numbers: A[i][j] = the (i*dim + j)-th tq_rng_gauss
 * draw of (seed, stream) — row-major fill. A = QR by Householder in double;
 * the stored matrix is M = Q * diag(sign(R_ii)) (sign(0) taken as +1), which
 * is exactly Haar (Mezzadri 2007); without the sign fix Q is not Haar.
 * The factorisation works on A^T, so every column of A is a contiguous row in
 * memory: each reflector is applied as one dot product and one axpy per row,
 * streaming through memory instead of striding down columns. Q is then formed
 * in place, backwards (the LAPACK dorg2r scheme), which again touches rows
 * only; the work buffer ends up holding Q^T. The dot products use four
 * partial sums (element k goes to sum k mod 4, combined as (s0+s1)+(s2+s3)):
 * a fixed order, and four times shorter dependency chains than a single sum.
 * Two rows share each pass over a reflector (same arithmetic per row, so no
 * bit changes). We chose unblocked Householder over blocked (WY) updates for
 * simplicity: it is a one-time cost per quantizer, measured on one AMD EPYC
 * core with gcc 12 -O2 at about 2.1 s for d = 1536 and 44 s for d = 4096 (the
 * O(d^3) flops dominate; a blocked or SIMD version may replace this loop as
 * long as it reproduces every rounding, which the golden tests check).
 *
 * HADAMARD. Per round r = 0..rounds-1 the draws are, in this order:
 *   signs: ceil(dim/32) tq_rng_u32 words; element i gets bit (i % 32) of word
 *          i / 32; bit 1 means -1. (Packing saves 31 of every 32 Philox words;
 *          a rotation is rebuilt from the seed, so this order is a format
 *          property and must never change.)
 *   perm:  perm[i] = i, then for i = dim-1 down to 1: j = tq_rng_below(i+1),
 *          swap(perm[i], perm[j]) (Fisher-Yates; uniform over permutations).
 * Forward round: t = D_r x; t = H_blocks t; out[i] = t[perm[i]]. The blocks
 * are the greedy power-of-two split of dim (largest power of two <= what is
 * left, from offset 0 upwards). The arithmetic is float32: sign flips and the
 * permutation are exact; the butterflies and the final 1/sqrt(len) scale
 * are the only roundings.
 */
#include "rotation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/kernels.h"
#include "rng.h"

#define TQ_DEFAULT_ROUNDS 2u

/* ---- small helpers ---- */

/* Dot product of n doubles in the documented order: four partial sums. */
static double tq_dot4_d(const double *a, const double *b, size_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += a[k] * b[k];
        s1 += a[k + 1] * b[k + 1];
        s2 += a[k + 2] * b[k + 2];
        s3 += a[k + 3] * b[k + 3];
    }
    if (k < n) s0 += a[k] * b[k];
    if (k + 1 < n) s1 += a[k + 1] * b[k + 1];
    if (k + 2 < n) s2 += a[k + 2] * b[k + 2];
    return (s0 + s1) + (s2 + s3);
}

static uint32_t tq_pow2_floor(uint32_t n) {
    uint32_t p = 1;
    while (p <= n / 2) p *= 2;
    return p;
}

/* ---- Walsh-Hadamard ---- */

/*
 * Iterative radix-2 butterflies, stride 1 first, unnormalised, then one scale
 * by (float)(1/sqrt(len)). For len a power of four that scale is an exact
 * power of two; otherwise it carries one rounding, which keeps the map within
 * 1e-7 of orthogonal. One final scale is cheaper than log2(len) per-stage
 * scalings and rounds once instead of log2(len) times.
 */
void tq_fwht(float *x, uint32_t len) { tq_kernels()->fwht(x, len); }

static void tq_fwht_blocks(float *x, uint32_t dim) {
    void (*fwht)(float *, uint32_t) = tq_kernels()->fwht;
    uint32_t off = 0;
    while (off < dim) {
        uint32_t b = tq_pow2_floor(dim - off);
        fwht(x + off, b);
        off += b;
    }
}

/* ---- DENSE: Haar by Householder QR ---- */

/*
 * Apply H = I - t v v^T to rows j0..n-1 of At, positions k..k+len-1:
 * c -= (t * (v . c)) v, with v . c in the tq_dot4_d order. Two rows share each
 * pass over v (half the loads of v); every row gets exactly the arithmetic of
 * the one-row case, so the pairing does not change a bit.
 */
static void tq_reflect_rows(const double *v, double t, double *At, size_t n, size_t k, size_t j0) {
    const size_t len = n - k;
    size_t j = j0;
    for (; j + 2 <= n; j += 2) {
        double *c = At + j * n + k, *d = c + n;
        double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, b0 = 0.0, b1 = 0.0, b2 = 0.0, b3 = 0.0;
        size_t i = 0;
        for (; i + 4 <= len; i += 4) {
            a0 += v[i] * c[i];
            a1 += v[i + 1] * c[i + 1];
            a2 += v[i + 2] * c[i + 2];
            a3 += v[i + 3] * c[i + 3];
            b0 += v[i] * d[i];
            b1 += v[i + 1] * d[i + 1];
            b2 += v[i + 2] * d[i + 2];
            b3 += v[i + 3] * d[i + 3];
        }
        if (i < len) { a0 += v[i] * c[i]; b0 += v[i] * d[i]; }
        if (i + 1 < len) { a1 += v[i + 1] * c[i + 1]; b1 += v[i + 1] * d[i + 1]; }
        if (i + 2 < len) { a2 += v[i + 2] * c[i + 2]; b2 += v[i + 2] * d[i + 2]; }
        double wc = t * ((a0 + a1) + (a2 + a3));
        double wd = t * ((b0 + b1) + (b2 + b3));
        for (i = 0; i < len; i++) {
            c[i] -= wc * v[i];
            d[i] -= wd * v[i];
        }
    }
    if (j < n) {
        double *c = At + j * n + k;
        double w = t * tq_dot4_d(v, c, len);
        for (size_t i = 0; i < len; i++) c[i] -= w * v[i];
    }
}

/*
 * Householder QR of the n x n matrix A, given as At = A^T (row j = column j of
 * A, contiguous). On return At holds Q^T (row j = column j of Q) and rsign[k]
 * = sign(R_kk) in {+1, -1}. The reflector for column k is H_k = I - tau v v^T
 * with v[k] = 1 (LAPACK dlarfg convention), beta = -sign(alpha) * norm, so
 * that H_k x = beta e_k; R_kk = beta.
 */
static void tq_householder_q(double *At, size_t n, double *tau, double *rsign) {
    for (size_t k = 0; k < n; k++) {
        double *x = At + k * n + k; /* column k of A, rows k..n-1 */
        size_t len = n - k;
        double alpha = x[0];
        double xnorm2 = len > 1 ? tq_dot4_d(x + 1, x + 1, len - 1) : 0.0;
        double beta = alpha, t = 0.0;
        if (xnorm2 > 0.0) {
            double norm = sqrt(alpha * alpha + xnorm2);
            beta = alpha >= 0.0 ? -norm : norm;
            t = (beta - alpha) / beta;
            double inv = 1.0 / (alpha - beta);
            for (size_t i = 1; i < len; i++) x[i] *= inv;
        }
        tau[k] = t;
        rsign[k] = beta < 0.0 ? -1.0 : 1.0;
        x[0] = 1.0; /* v[k]; R_kk is only needed through its sign */
        if (t == 0.0) continue;
        tq_reflect_rows(x, t, At, n, k, k + 1); /* H_k on columns j > k */
    }
    /* Form Q = H_0 H_1 ... H_{n-1} in place, last reflector first (dorg2r):
     * before step k, rows j > k hold columns j of H_{k+1}...H_{n-1}, which are
     * zero in positions <= k, so H_k only needs positions k..n-1. */
    for (size_t k = n; k-- > 0;) {
        double *v = At + k * n + k;
        size_t len = n - k;
        double t = tau[k];
        if (t != 0.0) tq_reflect_rows(v, t, At, n, k, k + 1);
        /* Column k of Q is H_k e_k = e_k - tau v. */
        for (size_t i = 1; i < len; i++) v[i] = -t * v[i];
        v[0] = 1.0 - t;
        memset(At + k * n, 0, k * sizeof(double));
    }
}

static tq_status tq_dense_init(tq_rotation *rot, uint32_t dim, uint64_t seed, uint64_t stream) {
    size_t n = dim, nn, bytes_d, bytes_f;
    TQ_RETURN_IF(!tq_mul_size(n, n, &nn) || !tq_mul_size(nn, sizeof(double), &bytes_d) ||
                     !tq_mul_size(nn, sizeof(float), &bytes_f),
                 TQ_ERR_SIZE, "dense rotation: dim %u overflows size_t", dim);
    double *At = malloc(bytes_d);
    double *tau = malloc(n * sizeof(double));
    double *rsign = malloc(n * sizeof(double));
    float *M = malloc(bytes_f);
    if (!At || !tau || !rsign || !M) {
        free(At);
        free(tau);
        free(rsign);
        free(M);
        return tq_fail(TQ_ERR_NOMEM, "dense rotation: cannot allocate %zu bytes for dim %u", bytes_d + bytes_f,
                       dim);
    }
    /* Row-major fill of A, stored transposed: A[i][j] -> At[j][i]. */
    tq_rng rng;
    tq_rng_init(&rng, seed, stream);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) At[j * n + i] = tq_rng_gauss(&rng);

    tq_householder_q(At, n, tau, rsign);

    /* M[i][j] = Q[i][j] * sign(R_jj) = At[j][i] * rsign[j]; transpose in tiles
     * so both sides stay in cache. The sign flip is exact. */
    const size_t tile = 32;
    for (size_t i0 = 0; i0 < n; i0 += tile)
        for (size_t j0 = 0; j0 < n; j0 += tile)
            for (size_t i = i0; i < i0 + tile && i < n; i++)
                for (size_t j = j0; j < j0 + tile && j < n; j++)
                    M[i * n + j] = (float)(At[j * n + i] * rsign[j]);

    free(At);
    free(tau);
    free(rsign);
    rot->matrix = M;
    return TQ_OK;
}

/*
 * y_i = sum_j M[i][j] x_j in double, products and sums in the tq_dot4_d
 * order (element j to partial sum j mod 4, then (s0+s1)+(s2+s3)), rounded to
 * float once at the end.
 */
static void tq_dense_forward_row(const float *M, uint32_t dim, const float *x, float *y) {
    tq_kernels()->dense_forward(M, dim, x, y); /* the order above is the ref kernel's */
}

/*
 * x_j = sum_i M[i][j] y_i in double, summed over i = 0, 1, ..., dim-1 in
 * order (one running sum per j), rounded to float at the end. Walking M by
 * rows keeps the reads contiguous; columns are done in chunks so the running
 * sums live on the stack (no allocation in a void function).
 */
static void tq_dense_inverse_row(const float *M, uint32_t dim, const float *y, float *x) {
    enum { CHUNK = 256 };
    double acc[CHUNK];
    for (uint32_t j0 = 0; j0 < dim; j0 += CHUNK) {
        uint32_t w = dim - j0 < CHUNK ? dim - j0 : CHUNK;
        for (uint32_t j = 0; j < w; j++) acc[j] = 0.0;
        for (uint32_t i = 0; i < dim; i++) {
            const float *row = M + (size_t)i * dim + j0;
            double yi = (double)y[i];
            for (uint32_t j = 0; j < w; j++) acc[j] += (double)row[j] * yi;
        }
        for (uint32_t j = 0; j < w; j++) x[j0 + j] = (float)acc[j];
    }
}

/* ---- HADAMARD ---- */

static tq_status tq_hadamard_init(tq_rotation *rot, uint32_t dim, uint32_t rounds, uint64_t seed,
                                  uint64_t stream) {
    size_t count, sbytes, pbytes;
    TQ_RETURN_IF(!tq_mul_size(rounds, dim, &count) || !tq_mul_size(count, sizeof(uint32_t), &pbytes),
                 TQ_ERR_SIZE, "hadamard rotation: %u rounds x dim %u overflows size_t", rounds, dim);
    sbytes = pbytes; /* one sign-bit mask (0 or 0x80000000) per element */
    uint32_t *signs = malloc(sbytes);
    uint32_t *perms = malloc(pbytes);
    if (!signs || !perms) {
        free(signs);
        free(perms);
        return tq_fail(TQ_ERR_NOMEM, "hadamard rotation: cannot allocate %zu bytes", sbytes + pbytes);
    }
    tq_rng rng;
    tq_rng_init(&rng, seed, stream);
    for (uint32_t r = 0; r < rounds; r++) {
        uint32_t *s = signs + (size_t)r * dim;
        uint32_t *p = perms + (size_t)r * dim;
        for (uint32_t i = 0; i < dim; i += 32) {
            uint32_t word = tq_rng_u32(&rng);
            for (uint32_t b = 0; b < 32 && i + b < dim; b++) s[i + b] = ((word >> b) & 1u) << 31;
        }
        for (uint32_t i = 0; i < dim; i++) p[i] = i;
        for (uint32_t i = dim - 1; i >= 1; i--) {
            uint32_t j = tq_rng_below(&rng, i + 1);
            uint32_t tmp = p[i];
            p[i] = p[j];
            p[j] = tmp;
        }
    }
    rot->signs = signs;
    rot->perms = perms;
    return TQ_OK;
}

/* out[i] = in[i] with its sign bit flipped where s[i] (0 or 0x80000000) says (exactly what negation does,
 * -0.0 included), vectorizable. in and out may be the same. */
static void flip_signs(const float *in, const uint32_t *s, uint32_t dim, float *out) {
    for (uint32_t i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &in[i], 4);
        u ^= s[i];
        memcpy(&out[i], &u, 4);
    }
}

/* out[i] = in[p[i]], flipped by s[i] when s is not NULL (the next round's D folded into this round's P). Eight
 * loads before eight stores: the compiler cannot move a load above a store it cannot prove apart, and a
 * strict load-store alternation runs at about half the speed. */
static void permute(const float *restrict in, const uint32_t *restrict p, const uint32_t *restrict s, uint32_t dim,
                    float *restrict out) {
    uint32_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        uint32_t u[8];
        for (int k = 0; k < 8; k++) memcpy(&u[k], &in[p[i + k]], 4);
        if (s)
            for (int k = 0; k < 8; k++) u[k] ^= s[i + k];
        memcpy(out + i, u, sizeof u);
    }
    for (; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &in[p[i]], 4);
        if (s) u ^= s[i];
        memcpy(&out[i], &u, 4);
    }
}

/*
 * One row through all rounds, x <- P_r H D_r x. Round r works in buffer b_r, the scratch t or out, chosen so
 * that the last round's P lands in out: b_r = t when R - 1 - r is even. Each P_r also applies D_{r+1}, so the
 * signs of every round but the first cost no pass of their own. in may equal out: it is read completely
 * (the first D) before out is written otherwise.
 */
static void tq_hadamard_forward_row(const tq_rotation *rot, const float *in, float *out, float *t) {
    const uint32_t dim = rot->dim, R = rot->rounds;
    float *b = (R - 1) % 2 == 0 ? t : out;
    flip_signs(in, rot->signs, dim, b);
    for (uint32_t r = 0; r < R; r++) {
        float *next = b == t ? out : t;
        tq_fwht_blocks(b, dim);
        permute(b, rot->perms + (size_t)r * dim, r + 1 < R ? rot->signs + (size_t)(r + 1) * dim : NULL, dim, next);
        b = next;
    }
}

/* The transpose: rounds in reverse, each P^T, then H (symmetric), then D. */
static void tq_hadamard_inverse_row(const tq_rotation *rot, const float *in, float *out, float *t) {
    const uint32_t dim = rot->dim;
    const float *cur = in;
    for (uint32_t r = rot->rounds; r-- > 0;) {
        const uint32_t *s = rot->signs + (size_t)r * dim;
        const uint32_t *p = rot->perms + (size_t)r * dim;
        for (uint32_t i = 0; i < dim; i++) t[p[i]] = cur[i];
        tq_fwht_blocks(t, dim);
        flip_signs(t, s, dim, out);
        cur = out;
    }
}

/* ---- public (internal) face ---- */

tq_status tq_rotation_init(tq_rotation *rot, tq_rotation_kind kind, uint32_t dim, uint32_t rounds, uint64_t seed,
                           uint64_t stream) {
    TQ_RETURN_IF(rot == NULL, TQ_ERR_INVALID_ARG, "rotation: NULL output");
    memset(rot, 0, sizeof *rot);
    TQ_RETURN_IF(kind != TQ_ROTATION_NONE && kind != TQ_ROTATION_DENSE && kind != TQ_ROTATION_HADAMARD,
                 TQ_ERR_INVALID_ARG, "rotation: unknown kind %d", (int)kind);
    TQ_RETURN_IF(dim == 0, TQ_ERR_DIM, "rotation: dim must be >= 1");
    TQ_RETURN_IF(dim > TQ_MAX_DIM, TQ_ERR_DIM, "rotation: dim %u exceeds TQ_MAX_DIM (%u)", dim, TQ_MAX_DIM);
    TQ_RETURN_IF(kind == TQ_ROTATION_DENSE && dim > TQ_MAX_DENSE_DIM, TQ_ERR_DIM,
                 "dense rotation: dim %u exceeds TQ_MAX_DENSE_DIM (%u); use the Hadamard rotation", dim,
                 TQ_MAX_DENSE_DIM);
    /* rounds only means something for HADAMARD; other kinds ignore it. */
    if (kind == TQ_ROTATION_HADAMARD) {
        if (rounds == 0) rounds = TQ_DEFAULT_ROUNDS;
        TQ_RETURN_IF(rounds > TQ_MAX_ROUNDS, TQ_ERR_INVALID_ARG, "hadamard rotation: rounds %u outside 1..%u",
                     rounds, TQ_MAX_ROUNDS);
    } else {
        rounds = 0;
    }

    tq_rotation tmp = {.kind = kind, .dim = dim, .rounds = rounds, .matrix = NULL, .signs = NULL, .perms = NULL};
    if (kind == TQ_ROTATION_DENSE) TQ_FORWARD(tq_dense_init(&tmp, dim, seed, stream));
    if (kind == TQ_ROTATION_HADAMARD) TQ_FORWARD(tq_hadamard_init(&tmp, dim, rounds, seed, stream));
    *rot = tmp;
    return TQ_OK;
}

void tq_rotation_release(tq_rotation *rot) {
    if (rot == NULL) return;
    free(rot->matrix);
    free(rot->signs);
    free(rot->perms);
    memset(rot, 0, sizeof *rot);
}

void tq_rotation_forward(const tq_rotation *rot, const float *in, float *out, size_t n, float *scratch) {
    if (rot == NULL || rot->dim == 0) return;
    const size_t dim = rot->dim;
    for (size_t r = 0; r < n; r++) {
        const float *x = in + r * dim;
        float *y = out + r * dim;
        switch (rot->kind) {
        case TQ_ROTATION_DENSE:
            if (x == y) {
                memcpy(scratch, x, dim * sizeof(float));
                x = scratch;
            }
            tq_dense_forward_row(rot->matrix, rot->dim, x, y);
            break;
        case TQ_ROTATION_HADAMARD:
            tq_hadamard_forward_row(rot, x, y, scratch);
            break;
        default:
            if (x != y) memcpy(y, x, dim * sizeof(float));
            break;
        }
    }
}

void tq_rotation_inverse(const tq_rotation *rot, const float *in, float *out, size_t n, float *scratch) {
    if (rot == NULL || rot->dim == 0) return;
    const size_t dim = rot->dim;
    for (size_t r = 0; r < n; r++) {
        const float *y = in + r * dim;
        float *x = out + r * dim;
        switch (rot->kind) {
        case TQ_ROTATION_DENSE:
            if (x == y) {
                memcpy(scratch, y, dim * sizeof(float));
                y = scratch;
            }
            tq_dense_inverse_row(rot->matrix, rot->dim, y, x);
            break;
        case TQ_ROTATION_HADAMARD:
            tq_hadamard_inverse_row(rot, y, x, scratch);
            break;
        default:
            if (x != y) memcpy(x, y, dim * sizeof(float));
            break;
        }
    }
}
