/*
 * codebook.c — exact Lloyd-Max codebooks for one coordinate of a uniform unit
 * vector in R^d, and their process-wide cache.
 *
 * The law. t = x_1 for x uniform on S^{d-1} has density
 *     f(t) = (1 - t^2)^(alpha - 1) / B(1/2, alpha),   alpha = (d - 1) / 2,
 * on [-1, 1]: T = 2X - 1 with X ~ Beta(alpha, alpha). Two closed forms carry
 * the whole computation. With K = 1 / (2 alpha B(1/2, alpha)) and
 * w(t) = (1 - t^2)^alpha,
 *     G(t) = int_t^1 s f(s) ds = K w(t)                       (first moment)
 *     S(t) = P(T > t) = I_{(1-t)/2}(alpha, alpha) = K w(t) cf(t)   (tail)
 * where cf is the Numerical-Recipes continued fraction of the regularized
 * incomplete beta, evaluated with the modified Lentz method. For t >= 0 the
 * argument x = (1-t)/2 is <= 1/2 = (alpha+1)/(2 alpha+2), the side on which
 * the fraction converges, so no complement switch is ever needed; tails are
 * computed directly (relative accuracy, no 1 - (1 - tiny)), which is what
 * keeps large d (up to 65536, width ~1/sqrt(d)) exact. The prefactor is not
 * built from lgamma differences (they cancel catastrophically at large alpha:
 * lgamma(32767.5) ~ 3e5): log K needs only log Gamma(alpha+1/2) -
 * log Gamma(alpha), taken from the difference of two Stirling series (with
 * the recurrence below alpha = 10). No lgamma at all, so nothing touches
 * the non-thread-safe signgam.
 *
 * The iteration. The codebook is symmetric, so only the h = 2^b / 2 positive
 * centroids p_0 < ... < p_{h-1} are unknowns; cell k of the positive half is
 * [m_{k-1}, m_k] with m_{-1} = 0, m_k = (p_k + p_{k+1}) / 2, m_{h-1} = 1, and
 * the Lloyd map is T_k(p) = (G(lo) - G(hi)) / (S(lo) - S(hi)). Plain Lloyd
 * iteration contracts at a rate ~1 - O(4^-b), hopeless at b = 8, so we solve
 * p = T(p) by Newton's method: dT_k depends only on p_{k-1}, p_k, p_{k+1}
 * (dT_k/dhi = f(hi)(hi - T_k)/P_k, dT_k/dlo = f(lo)(T_k - lo)/P_k), so each
 * step is one tridiagonal solve. Steps are damped (the points must stay
 * ordered inside (0, 1) and the residual must shrink) with a plain Lloyd step
 * as the fallback. The start is the asymptotically optimal compander: point
 * density ∝ f^(1/3), which for this family is again the coordinate law, of
 * the real "dimension" d' = (d + 6) / 3 (alpha' = (d + 3) / 6), so the start
 * points are its (k + 1/2) / 2^b quantiles, found by bisection. Newton then
 * converges in a handful of steps for every (d, b) (b = 8, d = 65536 included).
 * Stop: max |step| <= 1e-13 / sqrt(d); a final plain Lloyd step is taken and
 * the result must move by less than 1e-10 / sqrt(d), a fixed point far below
 * float32 resolution, or the computation reports failure instead of
 * returning a codebook that is not one.
 *
 * Rounding rule (encode decisions depend on it, so it is part of the
 * contract): centroids[k] = (float) of the double centroid (round to nearest),
 * with centroids[L-1-k] = -centroids[k] exactly; bounds[k] =
 * (float)(((double)centroids[k] + (double)centroids[k+1]) / 2), i.e. the
 * correctly rounded midpoint of the two float32 centroids (the double sum
 * and halving are exact here), so bounds[L/2 - 1] = 0 and bounds are
 * symmetric too. mse_unit = 1 - d * sum_k P(cell k) c_k^2 in double, from the
 * double fixed point (the float32 rounding changes it only at second order).
 *
 * The cache: a small hash table of heap entries under one pthread mutex. An
 * entry is computed under the lock the first time its (d, b) is asked for and
 * never freed or moved, so the pointer handed out stays valid for the life of
 * the process and is the same on every call.
 */
#include "codebook.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#define TQ_CB_HALF_MAX 128 /* h = 2^b / 2 for b = 8 */

/* ---------------------------------------------------------------- the law -- */

/*
 * log Gamma(a + 1/2) - log Gamma(a), a > 0, to ~1e-16 absolute. For a >= 10 it
 * is the difference of the two Stirling expansions,
 *     a log1p(1/(2a)) + log(a)/2 - 1/2 + phi(a + 1/2) - phi(a),
 * phi(x) = sum B_2k / (2k (2k-1) x^(2k-1)) (truncated after x^-13: error
 * < 1e-16 at x = 10); below, the recurrence Gamma(x+1) = x Gamma(x) moves a up.
 */
static double stirling_tail(double x) {
    double r = 1.0 / x, r2 = r * r;
    return r * (1.0 / 12 + r2 * (-1.0 / 360 + r2 * (1.0 / 1260 + r2 * (-1.0 / 1680 + r2 * (1.0 / 1188 +
               r2 * (-691.0 / 360360 + r2 * (1.0 / 156)))))));
}

static double log_gamma_half_ratio(double a) {
    double acc = 0.0;
    while (a < 10.0) {
        /* Gamma(a+1/2)/Gamma(a) = [Gamma(a+3/2)/Gamma(a+1)] * a / (a + 1/2) */
        acc += log(a / (a + 0.5));
        a += 1.0;
    }
    return acc + a * log1p(0.5 / a) + 0.5 * log(a) - 0.5 + (stirling_tail(a + 0.5) - stirling_tail(a));
}

double tq_sphere_abs_mean(uint32_t d) {
    /* E|u_1| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)) = exp(-log(Gamma(a+1/2)/Gamma(a))) / sqrt(pi), a = d/2 */
    return exp(-log_gamma_half_ratio(0.5 * d)) / sqrt(TQ_PI);
}

/* The law of dimension parameter alpha = (d - 1) / 2 (real: the start uses a
 * fractional one). */
typedef struct law {
    double alpha;
    double k;     /* K = 1 / (2 alpha B(1/2, alpha)) = Gamma(alpha+1/2) / (2 alpha sqrt(pi) Gamma(alpha)) */
} law;

static law law_make(double alpha) {
    law L;
    L.alpha = alpha;
    /* log sqrt(pi) = 0.5723649429247001 */
    L.k = exp(log_gamma_half_ratio(alpha) - 0.57236494292470008707) / (2.0 * alpha);
    return L;
}

/* log(1 - t^2) for 0 <= t < 1, accurate near both ends. */
static double log_one_minus_sq(double t) {
    return t < 0.5 ? log1p(-t * t) : log((1.0 - t) * (1.0 + t));
}

/*
 * The continued fraction of I_x(a, a) (NR betacf, modified Lentz), x <= 1/2.
 * Converges in O(sqrt(a)) terms at worst (x near 1/2, large a).
 */
static double beta_cf_sym(double a, double x) {
    const double tiny = 1e-300, eps = 2.0 * DBL_EPSILON;
    double qab = a + a, qap = a + 1.0, qam = a - 1.0;
    double c = 1.0, d = 1.0 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 200000; m++) {
        double m2 = 2.0 * m;
        double aa = m * (a - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) <= eps) break;
    }
    return h;
}

/* Everything the iteration needs at one boundary t in [0, 1]. */
typedef struct point {
    double w;     /* (1 - t^2)^alpha */
    double lw;    /* log(1 - t^2) (-inf at t = 1) */
    double tail;  /* S(t) = P(T > t) */
    double dens;  /* f(t) (only used for 0 < t < 1) */
} point;

static point law_point(const law *L, double t) {
    point P;
    if (t <= 0.0) {
        P.w = 1.0, P.lw = 0.0, P.tail = 0.5, P.dens = 2.0 * L->alpha * L->k;
        return P;
    }
    if (t >= 1.0) {
        P.w = 0.0, P.lw = -INFINITY, P.tail = 0.0, P.dens = 0.0;
        return P;
    }
    P.lw = log_one_minus_sq(t);
    P.w = exp(L->alpha * P.lw);
    P.tail = L->k * P.w * beta_cf_sym(L->alpha, 0.5 * (1.0 - t));
    P.dens = 2.0 * L->alpha * L->k * exp((L->alpha - 1.0) * P.lw);
    return P;
}

/* Mass and conditional mean of the cell [lo, hi], 0 <= lo < hi <= 1. */
static void cell_stats(const law *L, const point *lo, const point *hi, double *mass, double *mean) {
    double pm = lo->tail - hi->tail;
    /* G(lo) - G(hi) = K w_lo (1 - (w_hi / w_lo)), without cancellation */
    double gm = hi->w == 0.0 ? L->k * lo->w : -L->k * lo->w * expm1(L->alpha * (hi->lw - lo->lw));
    *mass = pm;
    *mean = pm > 0.0 ? gm / pm : 0.0;
}

/* ------------------------------------------------------------ the solver -- */

typedef struct state {
    double p[TQ_CB_HALF_MAX];     /* positive centroids, ascending */
    double tmap[TQ_CB_HALF_MAX];  /* T(p) */
    double mass[TQ_CB_HALF_MAX];  /* P(cell k), positive half */
    double sub[TQ_CB_HALF_MAX], diag[TQ_CB_HALF_MAX], sup[TQ_CB_HALF_MAX]; /* I - dT/dp */
    double res;                   /* max |p - T(p)| */
} state;

/* Evaluate T, the cell masses, the residual and (if jac) the Jacobian of p - T(p). */
static void lloyd_eval(const law *L, uint32_t h, state *s, int jac) {
    point lo = law_point(L, 0.0);
    s->res = 0.0;
    for (uint32_t k = 0; k < h; k++) {
        double mhi = k + 1 < h ? 0.5 * (s->p[k] + s->p[k + 1]) : 1.0;
        double mlo = k > 0 ? 0.5 * (s->p[k - 1] + s->p[k]) : 0.0;
        point hi = law_point(L, mhi);
        double mass, mean;
        cell_stats(L, &lo, &hi, &mass, &mean);
        s->mass[k] = mass;
        s->tmap[k] = mean;
        double r = fabs(s->p[k] - mean);
        if (!(r <= s->res)) s->res = r; /* NaN-safe: NaN wins */
        if (jac) {
            double dlo = k > 0 && mass > 0.0 ? 0.5 * lo.dens * (mean - mlo) / mass : 0.0;
            double dhi = k + 1 < h && mass > 0.0 ? 0.5 * hi.dens * (mhi - mean) / mass : 0.0;
            s->sub[k] = -dlo;
            s->diag[k] = 1.0 - dlo - dhi;
            s->sup[k] = -dhi;
        }
        lo = hi;
    }
}

/* Solve the tridiagonal system (sub, diag, sup) x = rhs in place (Thomas). */
static int tridiag_solve(uint32_t n, const double *sub, const double *diag, const double *sup, double *x) {
    double cp[TQ_CB_HALF_MAX];
    double den = diag[0];
    if (!(fabs(den) > 0.0)) return 0;
    cp[0] = sup[0] / den;
    x[0] /= den;
    for (uint32_t i = 1; i < n; i++) {
        den = diag[i] - sub[i] * cp[i - 1];
        if (!(fabs(den) > 0.0)) return 0;
        cp[i] = sup[i] / den;
        x[i] = (x[i] - sub[i] * x[i - 1]) / den;
    }
    for (uint32_t i = n - 1; i-- > 0;) x[i] -= cp[i] * x[i + 1];
    return 1;
}

static int ordered_inside(const double *p, uint32_t h) {
    if (!(p[0] > 0.0) || !(p[h - 1] < 1.0)) return 0;
    for (uint32_t k = 1; k < h; k++)
        if (!(p[k] > p[k - 1])) return 0;
    return 1;
}

/* Start: the (k + 1/2)/L quantiles of the law with alpha' = (d + 3) / 6. */
static void lloyd_start(uint32_t dim, uint32_t h, double *p) {
    law C = law_make(((double)dim + 3.0) / 6.0);
    double lo = 0.0;
    for (uint32_t k = 0; k < h; k++) {
        double target = 0.5 - (k + 0.5) / (2.0 * h); /* tail probability */
        double a = lo, b = 1.0;
        for (int it = 0; it < 48; it++) {
            double mid = 0.5 * (a + b);
            if (law_point(&C, mid).tail > target) a = mid; else b = mid;
        }
        p[k] = 0.5 * (a + b);
        lo = a;
    }
}

/* Solve for the positive half. Returns 0 if no fixed point was reached. */
static int lloyd_solve(uint32_t dim, uint32_t h, state *s, int *iters) {
    law L = law_make(0.5 * ((double)dim - 1.0));
    const double scale = 1.0 / sqrt((double)dim);
    const double tol = 1e-13 * scale;
    lloyd_start(dim, h, s->p);
    int it = 0, done = 0;
    for (; it < 200 && !done; it++) {
        lloyd_eval(&L, h, s, 1);
        if (!(s->res == s->res)) return 0;
        if (s->res <= tol) break;
        double step[TQ_CB_HALF_MAX] = {0}, trial[TQ_CB_HALF_MAX], base[TQ_CB_HALF_MAX];
        for (uint32_t k = 0; k < h; k++) step[k] = s->tmap[k] - s->p[k], base[k] = s->p[k];
        double res0 = s->res;
        int accepted = 0;
        if (tridiag_solve(h, s->sub, s->diag, s->sup, step)) {
            double stepmax = 0.0, lam = 1.0;
            for (uint32_t k = 0; k < h; k++) stepmax = fmax(stepmax, fabs(step[k]));
            for (int ls = 0; ls < 40; ls++, lam *= 0.5) {
                for (uint32_t k = 0; k < h; k++) trial[k] = base[k] + lam * step[k];
                if (!ordered_inside(trial, h)) continue;
                for (uint32_t k = 0; k < h; k++) s->p[k] = trial[k];
                lloyd_eval(&L, h, s, 0);
                /* accept a shrinking residual; at the noise floor accept any tiny step */
                if (s->res < res0 || lam * stepmax <= tol) {
                    accepted = 1;
                    break;
                }
            }
            if (accepted && lam * stepmax <= tol) done = 1;
        }
        if (!accepted) {
            /* Lloyd step from base: always keeps the points ordered inside (0, 1) */
            for (uint32_t k = 0; k < h; k++) s->p[k] = base[k];
            lloyd_eval(&L, h, s, 0);
            for (uint32_t k = 0; k < h; k++) s->p[k] = s->tmap[k];
        }
    }
    *iters = it;
    /* Final plain Lloyd step: p must already be its fixed point. */
    lloyd_eval(&L, h, s, 0);
    double moved = 0.0;
    for (uint32_t k = 0; k < h; k++) moved = fmax(moved, fabs(s->tmap[k] - s->p[k]));
    if (!(moved <= 1e-10 * scale)) return 0;
    for (uint32_t k = 0; k < h; k++) s->p[k] = s->tmap[k];
    lloyd_eval(&L, h, s, 0); /* masses of the final cells */
    return ordered_inside(s->p, h);
}

/* ------------------------------------------------------------- compute -- */

static tq_status check_args(uint32_t dim, uint32_t bits) {
    TQ_RETURN_IF(dim < 2 || dim > TQ_MAX_DIM, TQ_ERR_DIM, "codebook: dim %u outside 2..%u", dim,
                 (unsigned)TQ_MAX_DIM);
    TQ_RETURN_IF(bits < 1 || bits > TQ_MAX_BITS, TQ_ERR_BITS, "codebook: bits %u outside 1..%u", bits,
                 (unsigned)TQ_MAX_BITS);
    return TQ_OK;
}

tq_status tq_codebook_compute(uint32_t dim, uint32_t bits, tq_codebook *cb) {
    TQ_RETURN_IF(cb == NULL, TQ_ERR_INVALID_ARG, "codebook: NULL output");
    TQ_FORWARD(check_args(dim, bits));
    const uint32_t levels = 1u << bits, h = levels / 2;
    state *s = malloc(sizeof *s);
    TQ_RETURN_IF(s == NULL, TQ_ERR_NOMEM, "codebook: out of memory");
    int iters = 0;
    if (!lloyd_solve(dim, h, s, &iters)) {
        free(s);
        return tq_fail(TQ_ERR_STATE, "codebook: Lloyd-Max iteration did not converge for dim %u, bits %u",
                       dim, bits);
    }
    memset(cb, 0, sizeof *cb);
    cb->dim = dim;
    cb->bits = bits;
    cb->levels = levels;
    double acc = 0.0;
    for (uint32_t k = 0; k < h; k++) {
        float c = (float)s->p[k];
        cb->centroids[h + k] = c;
        cb->centroids[h - 1 - k] = -c;
        acc += s->mass[k] * s->p[k] * s->p[k];
    }
    for (uint32_t k = 0; k + 1 < levels; k++)
        cb->bounds[k] = (float)(((double)cb->centroids[k] + (double)cb->centroids[k + 1]) / 2.0);
    cb->mse_unit = 1.0 - (double)dim * 2.0 * acc;
    free(s);
    return TQ_OK;
}

/* ----------------------------------------------------------------- cache -- */

typedef struct cache_entry {
    struct cache_entry *next;
    tq_codebook cb;
} cache_entry;

#define TQ_CB_BUCKETS 64
static cache_entry *tq_cb_table[TQ_CB_BUCKETS];
static pthread_mutex_t tq_cb_lock = PTHREAD_MUTEX_INITIALIZER;

tq_status tq_codebook_lookup(uint32_t dim, uint32_t bits, const tq_codebook **out) {
    TQ_RETURN_IF(out == NULL, TQ_ERR_INVALID_ARG, "codebook: NULL output");
    TQ_FORWARD(check_args(dim, bits));
    uint32_t slot = (dim * 8u + (bits - 1u)) % TQ_CB_BUCKETS;
    tq_status st = TQ_OK;
    if (pthread_mutex_lock(&tq_cb_lock) != 0) return tq_fail(TQ_ERR_STATE, "codebook: cannot lock cache");
    cache_entry *e = tq_cb_table[slot];
    while (e != NULL && !(e->cb.dim == dim && e->cb.bits == bits)) e = e->next;
    if (e == NULL) {
        e = malloc(sizeof *e);
        if (e == NULL) {
            st = tq_fail(TQ_ERR_NOMEM, "codebook: out of memory");
        } else if ((st = tq_codebook_compute(dim, bits, &e->cb)) != TQ_OK) {
            free(e);
            e = NULL;
        } else {
            e->next = tq_cb_table[slot];
            tq_cb_table[slot] = e;
        }
    }
    pthread_mutex_unlock(&tq_cb_lock);
    if (e != NULL) *out = &e->cb;
    return st;
}
