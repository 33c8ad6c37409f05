/*
 * test_codebook.c — the Lloyd-Max codebooks of src/core/codebook.c against
 * their specification:
 *   - the golden table of an independent Python/scipy implementation
 *     (tests/data/codebook_golden.h, from tools/gen/gen_codebook_golden.py);
 *   - known values (exact law at d = 128, Gaussian limit at d = 65536, the
 *     b = 1 closed form E|t| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)));
 *   - structure: exact symmetry, sorted, bounds are the documented float32
 *     midpoints, nearest-centroid search agrees with brute force;
 *   - the fixed-point property, each centroid re-derived as the conditional
 *     mean of its cell by a plain Simpson rule in t = sin(theta), sharing no
 *     code with the library;
 *   - a Monte Carlo estimate of E||x - x~||^2 from random unit vectors;
 *   - the cache (same pointer, safe from two threads) and the error paths.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "core/codebook.h"
#include "data/codebook_golden.h"
#include "tq.h"

#define PI_ 3.14159265358979323846

static const tq_codebook *get(uint32_t dim, uint32_t bits) {
    const tq_codebook *cb = NULL;
    tq_status s = tq_codebook_lookup(dim, bits, &cb);
    CHECK(s == TQ_OK && cb != NULL, "lookup(%u, %u) -> %s (%s)", dim, bits, tq_status_str(s), tq_last_error());
    return s == TQ_OK ? cb : NULL;
}

/* ------------------------------------------------------------- golden -- */

static void test_golden(void) {
    size_t n = sizeof tq_golden_cb / sizeof tq_golden_cb[0];
    int exact = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        const tq_golden_codebook *g = &tq_golden_cb[i];
        const tq_codebook *cb = get(g->dim, g->bits);
        if (!cb) continue;
        uint32_t L = 1u << g->bits, h = L / 2;
        CHECK(cb->dim == g->dim && cb->bits == g->bits && cb->levels == L, "header of (%u, %u)", g->dim, g->bits);
        for (uint32_t k = 0; k < h; k++) {
            double want = tq_golden_cb_pos[g->offset + k];
            CHECK(fabs(cb->centroids[h + k] - want) <= 1e-6 * want, "d=%u b=%u c[%u] = %.9g, golden %.9g", g->dim,
                  g->bits, h + k, cb->centroids[h + k], want);
            CHECK(fabs(cb->centroids[h - 1 - k] + want) <= 1e-6 * want, "d=%u b=%u c[%u] = %.9g, golden %.9g",
                  g->dim, g->bits, h - 1 - k, cb->centroids[h - 1 - k], -want);
            exact += cb->centroids[h + k] == (float)want;
            total++;
        }
        CHECK(fabs(cb->mse_unit - g->mse_unit) <= 1e-6 * g->mse_unit, "d=%u b=%u mse_unit %.12g, golden %.12g",
              g->dim, g->bits, cb->mse_unit, g->mse_unit);
    }
    /* both sides are accurate to ~1e-12, so float32 rounding should agree
     * everywhere but at a rare rounding tie */
    CHECK(exact >= total - 2, "only %d of %d golden centroids round to the same float32", exact, total);
}

/* ------------------------------------------------------- known values -- */

static void test_known_values(void) {
    static const double exact128[4] = {0.3609, 0.1160, 0.0340, 0.0093};
    static const double gauss[4] = {0.3634, 0.1175, 0.03454, 0.009497};
    for (uint32_t b = 1; b <= 4; b++) {
        const tq_codebook *a = get(128, b), *z = get(TQ_MAX_DIM, b);
        if (!a || !z) continue;
        CHECK(fabs(a->mse_unit / exact128[b - 1] - 1.0) <= 0.005, "d=128 b=%u mse_unit %.6g, paper %.6g", b,
              a->mse_unit, exact128[b - 1]);
        CHECK(fabs(z->mse_unit / gauss[b - 1] - 1.0) <= 0.005, "d=65536 b=%u mse_unit %.6g, Gaussian %.6g", b,
              z->mse_unit, gauss[b - 1]);
    }
    /* b = 1: c = +-E|t| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)) */
    static const uint32_t dims[] = {2, 3, 4, 5, 8, 17, 64, 100, 128, 1000, 1536, 4096, 30000, 65536};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        uint32_t d = dims[i];
        const tq_codebook *cb = get(d, 1);
        if (!cb) continue;
        double want = exp(lgamma(0.5 * d) - lgamma(0.5 * (d + 1.0))) / sqrt(PI_);
        CHECK(fabs(cb->centroids[1] - want) <= 2e-7 * want, "d=%u b=1 c = %.9g, E|t| = %.9g", d, cb->centroids[1],
              want);
        CHECK(cb->centroids[0] == -cb->centroids[1], "d=%u b=1 not symmetric", d);
        /* mse_unit = 1 - d E|t|^2 */
        CHECK(fabs(cb->mse_unit - (1.0 - d * want * want)) <= 1e-9, "d=%u b=1 mse_unit %.12g vs %.12g", d,
              cb->mse_unit, 1.0 - d * want * want);
    }
    const tq_codebook *cb = get(TQ_MAX_DIM, 1);
    if (cb) CHECK_NEAR(cb->centroids[1] * sqrt((double)TQ_MAX_DIM), sqrt(2.0 / PI_), 1e-5);
    /* d = 3 is the uniform law: the codebook is the uniform quantizer of [-1, 1] */
    for (uint32_t b = 1; b <= 8; b++) {
        const tq_codebook *u = get(3, b);
        if (!u) continue;
        double worst = 0;
        for (uint32_t k = 0; k < u->levels; k++)
            worst = fmax(worst, fabs(u->centroids[k] - (-1.0 + (2.0 * k + 1.0) / u->levels)));
        CHECK(worst <= 1e-7, "d=3 b=%u not uniform (off by %.3g)", b, worst);
        CHECK(fabs(u->mse_unit - 3.0 / (3.0 * u->levels * u->levels)) <= 1e-12, "d=3 b=%u mse %.12g", b,
              u->mse_unit);
    }
    /* the paper's bounds 4^-b <= D_mse <= (sqrt(3) pi / 2) 4^-b (high dimensions), and monotonicity */
    static const uint32_t big[] = {64, 128, 1536, 65536};
    for (size_t i = 0; i < 4; i++) {
        double prev = 1.0;
        for (uint32_t b = 1; b <= 8; b++) {
            const tq_codebook *c = get(big[i], b);
            if (!c) continue;
            double lo = ldexp(1.0, -2 * (int)b), hi = sqrt(3.0) * PI_ / 2.0 * lo;
            CHECK(c->mse_unit >= lo && c->mse_unit <= hi, "d=%u b=%u mse %.6g outside [%.6g, %.6g]", big[i], b,
                  c->mse_unit, lo, hi);
            CHECK(c->mse_unit < prev, "d=%u b=%u mse %.6g not below b-1's %.6g", big[i], b, c->mse_unit, prev);
            prev = c->mse_unit;
        }
    }
}

/* ----------------------------------------------------------- structure -- */

static void check_structure(const tq_codebook *cb) {
    uint32_t L = cb->levels, d = cb->dim, b = cb->bits;
    int sym = 1, sorted = 1, mid = 1, inside = 1;
    for (uint32_t k = 0; k < L; k++) {
        sym &= cb->centroids[k] == -cb->centroids[L - 1 - k];
        inside &= cb->centroids[k] > -1.0f && cb->centroids[k] < 1.0f;
        if (k + 1 < L) {
            sorted &= cb->centroids[k] < cb->centroids[k + 1];
            /* the documented rule: the float32 rounding of the exact midpoint */
            float m = (float)(((double)cb->centroids[k] + (double)cb->centroids[k + 1]) / 2.0);
            mid &= cb->bounds[k] == m;
            mid &= cb->centroids[k] <= cb->bounds[k] && cb->bounds[k] <= cb->centroids[k + 1];
        }
    }
    CHECK(L == (1u << b), "d=%u b=%u levels %u", d, b, L);
    CHECK(sym, "d=%u b=%u centroids not exactly symmetric", d, b);
    CHECK(sorted, "d=%u b=%u centroids not strictly ascending", d, b);
    CHECK(inside, "d=%u b=%u centroid outside (-1, 1)", d, b);
    CHECK(mid, "d=%u b=%u bounds are not the float32 midpoints", d, b);
    CHECK(cb->bounds[L / 2 - 1] == 0.0f, "d=%u b=%u middle bound %.9g", d, b, cb->bounds[L / 2 - 1]);
    CHECK(cb->mse_unit > 0.0 && cb->mse_unit < 1.0, "d=%u b=%u mse_unit %.9g", d, b, cb->mse_unit);
}

/* xorshift64* — any RNG will do for the tests */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static double rng_unit(uint64_t *s) { return ((rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static double rng_gauss(uint64_t *s) {
    double u = rng_unit(s), v = rng_unit(s);
    return sqrt(-2.0 * log(u)) * cos(2.0 * PI_ * v);
}

static void test_structure(void) {
    static const uint32_t dims[] = {2, 3, 4, 5, 7, 8, 31, 64, 100, 128, 200, 384, 768, 1536, 3072, 4096, 65535, 65536};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        for (uint32_t b = 1; b <= 8; b++) {
            const tq_codebook *cb = get(dims[i], b);
            if (cb) check_structure(cb);
        }
    /* nearest-centroid search vs brute force: they may differ only on a tie */
    uint64_t s = 0x9e3779b97f4a7c15ull;
    static const uint32_t nd[] = {2, 64, 1536};
    for (size_t i = 0; i < 3; i++)
        for (uint32_t b = 1; b <= 8; b++) {
            const tq_codebook *cb = get(nd[i], b);
            if (!cb) continue;
            int bad = 0;
            for (int r = 0; r < 2000; r++) {
                float v = (float)((2.0 * rng_unit(&s) - 1.0) * (r & 1 ? 1.0 : 4.0 / sqrt((double)nd[i])));
                if (r == 0) v = cb->bounds[0];
                if (r == 2) v = -2.0f;
                if (r == 4) v = 2.0f;
                uint32_t k = tq_codebook_nearest(cb, v), best = 0;
                for (uint32_t j = 1; j < cb->levels; j++)
                    if (fabs(v - (double)cb->centroids[j]) < fabs(v - (double)cb->centroids[best])) best = j;
                double dk = fabs(v - (double)cb->centroids[k]), db = fabs(v - (double)cb->centroids[best]);
                /* a float32 bound sits within half an ulp of the true midpoint */
                bad += !(k < cb->levels && dk <= db + 1.2e-7 * fabs(v));
            }
            CHECK(bad == 0, "d=%u b=%u: %d nearest-centroid disagreements", nd[i], b, bad);
        }
}

/* -------------------------------------------------------- fixed point -- */

/* int_{th0}^{th1} sin(th)^m cos(th)^(d-2) dth, m = 0 or 1, composite Simpson */
static double simpson(uint32_t d, int m, double th0, double th1) {
    const int n = 4000;
    double hstep = (th1 - th0) / n, acc = 0.0;
    for (int i = 0; i <= n; i++) {
        double th = th0 + i * hstep;
        double v = pow(cos(th), (double)d - 2.0) * (m ? sin(th) : 1.0);
        acc += v * (i == 0 || i == n ? 1.0 : (i & 1 ? 4.0 : 2.0));
    }
    return acc * hstep / 3.0;
}

static void test_fixed_point(void) {
    static const uint32_t cases[][2] = {{2, 1}, {2, 3}, {2, 8}, {3, 4}, {8, 5}, {64, 4}, {128, 8},
                                        {1536, 6}, {65536, 4}, {65536, 8}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t d = cases[i][0], b = cases[i][1];
        const tq_codebook *cb = get(d, b);
        if (!cb) continue;
        uint32_t L = cb->levels, h = L / 2;
        double worst = 0.0;
        for (uint32_t k = 0; k < h; k++) {
            /* positive-half cell [lo, hi] of centroid c[h + k], with the stored bounds */
            double lo = k == 0 ? 0.0 : cb->bounds[h + k - 1];
            double th0 = asin(lo);
            double th1 = k + 1 < h ? asin((double)cb->bounds[h + k]) : fmin(PI_ / 2, th0 + 40.0 / sqrt((double)d));
            double mean = simpson(d, 1, th0, th1) / simpson(d, 0, th0, th1);
            double c = cb->centroids[h + k];
            worst = fmax(worst, fabs(mean - c) / c);
        }
        CHECK(worst <= 1e-6, "d=%u b=%u: a centroid is off its cell's conditional mean by %.3g (relative)", d, b,
              worst);
    }
}

/* ------------------------------------------------------- Monte Carlo -- */

static void test_monte_carlo(void) {
    const uint32_t d = 64, b = 2;
    const int n = 20000;
    const tq_codebook *cb = get(d, b);
    if (!cb) return;
    uint64_t s = 12345;
    double g[64], sum = 0.0;
    for (int i = 0; i < n; i++) {
        double nn = 0.0;
        for (uint32_t j = 0; j < d; j++) g[j] = rng_gauss(&s), nn += g[j] * g[j];
        nn = sqrt(nn);
        double err = 0.0;
        for (uint32_t j = 0; j < d; j++) {
            double t = g[j] / nn;
            double e = t - cb->centroids[tq_codebook_nearest(cb, (float)t)];
            err += e * e;
        }
        sum += err; /* ||x - x~||^2 of one unit vector = d * mean of (t - Q(t))^2 */
    }
    double emp = sum / n;
    CHECK(fabs(emp / cb->mse_unit - 1.0) <= 0.02, "Monte Carlo E||x-x~||^2 = %.6g, mse_unit %.6g", emp, cb->mse_unit);
}

/* -------------------------------------------------------------- cache -- */

#define NKEYS 24
static uint32_t key_dim(int i) { return 1000u + 8u * (uint32_t)(i / 3); } /* same hash bucket per bits */
static uint32_t key_bits(int i) { return 6u + (uint32_t)(i % 3); }

typedef struct worker {
    const tq_codebook *got[NKEYS];
    int ok;
} worker;

static void *worker_run(void *arg) {
    worker *w = arg;
    w->ok = 1;
    for (int i = 0; i < NKEYS; i++) {
        if (tq_codebook_lookup(key_dim(i), key_bits(i), &w->got[i]) != TQ_OK) w->ok = 0;
    }
    return NULL;
}

static void test_cache(void) {
    const tq_codebook *a = get(777, 5), *b = get(777, 5);
    CHECK(a != NULL && a == b, "two lookups of (777, 5) gave different pointers");
    tq_codebook fresh;
    CHECK_OK(tq_codebook_compute(777, 5, &fresh));
    if (a) {
        CHECK(memcmp(a->centroids, fresh.centroids, sizeof fresh.centroids) == 0 &&
                  memcmp(a->bounds, fresh.bounds, sizeof fresh.bounds) == 0 && a->mse_unit == fresh.mse_unit,
              "cached and recomputed codebooks differ");
    }
    float c[256];
    double mse = -1;
    CHECK_OK(tq_codebook_get(777, 5, c, &mse));
    if (a) CHECK(memcmp(c, a->centroids, 32 * sizeof(float)) == 0 && mse == a->mse_unit, "tq_codebook_get differs");
    CHECK_OK(tq_codebook_get(777, 5, c, NULL));

    /* two threads race on the same fresh keys */
    worker w[2];
    pthread_t th[2];
    int started[2];
    for (int t = 0; t < 2; t++) started[t] = pthread_create(&th[t], NULL, worker_run, &w[t]) == 0;
    for (int t = 0; t < 2; t++)
        if (started[t]) pthread_join(th[t], NULL);
    CHECK(started[0] && started[1], "pthread_create failed");
    if (started[0] && started[1]) {
        CHECK(w[0].ok && w[1].ok, "a lookup failed in a thread");
        int same = 1;
        for (int i = 0; i < NKEYS; i++) {
            const tq_codebook *again = get(key_dim(i), key_bits(i));
            same &= w[0].got[i] == w[1].got[i] && w[0].got[i] == again && again != NULL &&
                    again->dim == key_dim(i) && again->bits == key_bits(i);
        }
        CHECK(same, "threads saw different codebook pointers");
    }
}

/* ------------------------------------------------------------- errors -- */

static void test_errors(void) {
    const tq_codebook *cb = NULL;
    tq_codebook tmp;
    float c[256];
    CHECK_STATUS(tq_codebook_lookup(0, 4, &cb), TQ_ERR_DIM);
    CHECK(tq_last_error()[0] != '\0', "no message for dim 0");
    CHECK_STATUS(tq_codebook_lookup(1, 4, &cb), TQ_ERR_DIM);
    CHECK_STATUS(tq_codebook_lookup(TQ_MAX_DIM + 1, 4, &cb), TQ_ERR_DIM);
    CHECK_STATUS(tq_codebook_lookup(0xffffffffu, 4, &cb), TQ_ERR_DIM);
    CHECK_STATUS(tq_codebook_lookup(64, 0, &cb), TQ_ERR_BITS);
    CHECK(tq_last_error()[0] != '\0', "no message for bits 0");
    CHECK_STATUS(tq_codebook_lookup(64, 9, &cb), TQ_ERR_BITS);
    CHECK_STATUS(tq_codebook_lookup(64, 0xffffffffu, &cb), TQ_ERR_BITS);
    CHECK(cb == NULL, "failed lookups wrote the output");
    CHECK_STATUS(tq_codebook_lookup(64, 4, NULL), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_codebook_compute(1, 4, &tmp), TQ_ERR_DIM);
    CHECK_STATUS(tq_codebook_compute(64, 9, &tmp), TQ_ERR_BITS);
    CHECK_STATUS(tq_codebook_compute(64, 4, NULL), TQ_ERR_INVALID_ARG);
    CHECK_STATUS(tq_codebook_get(0, 4, c, NULL), TQ_ERR_DIM);
    CHECK_STATUS(tq_codebook_get(64, 9, c, NULL), TQ_ERR_BITS);
    CHECK_STATUS(tq_codebook_get(64, 4, NULL, NULL), TQ_ERR_INVALID_ARG);
    CHECK_OK(tq_codebook_get(64, 4, c, NULL));
    CHECK(tq_last_error()[0] == '\0', "message left after a successful tq_codebook_get");
    CHECK_OK(tq_codebook_lookup(2, 1, &cb));
    CHECK_OK(tq_codebook_lookup(TQ_MAX_DIM, 8, &cb));
}

/* E|u_1| on S^{d-1}: exact small cases (d=1: 1, d=2: 2/pi, d=3: 1/2, d=5: 3/8) and the
 * large-d expansion sqrt(2/(pi d)) (1 + 1/(4d) + 1/(32 d^2)). */
static void test_sphere_abs_mean(void) {
    CHECK_NEAR(tq_sphere_abs_mean(1), 1.0, 1e-15);
    CHECK_NEAR(tq_sphere_abs_mean(2), 2.0 / TQ_PI, 1e-15);
    CHECK_NEAR(tq_sphere_abs_mean(3), 0.5, 1e-15);
    CHECK_NEAR(tq_sphere_abs_mean(5), 0.375, 1e-15);
    const uint32_t ds[] = {1000, 65536};
    for (int i = 0; i < 2; i++) {
        double d = ds[i], want = sqrt(2.0 / (TQ_PI * d)) * (1.0 + 1.0 / (4 * d) + 1.0 / (32 * d * d));
        CHECK(fabs(tq_sphere_abs_mean(ds[i]) / want - 1.0) < 1e-9, "E|u_1| at d=%u", ds[i]);
    }
}

int main(void) {
    test_sphere_abs_mean();
    test_errors();
    test_golden();
    test_known_values();
    test_structure();
    test_fixed_point();
    test_monte_carlo();
    test_cache();
    return CHECK_DONE();
}
